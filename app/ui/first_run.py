"""The welcome screen shown instead of an empty chat while the library has no models.

An empty chat window with a disabled Send button tells a newcomer nothing. This screen
says in one paragraph what Hearth is, and offers the three ways to get a model: the demo
model (when it is installed), a GGUF file already on disk, or the download manager. It
only emits intents; the main window decides what each one does.

API::

    FirstRunWidget(demo_available: bool | None = None, download_available: bool = True, parent=None)
        # objectName "firstRun"; demo_available=None asks app.core.demo.find_demo_model()
    signals: useDemo(), addModel(), download()
    set_demo_available(bool), set_download_available(bool)
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app import APP_NAME

__all__ = ["FirstRunWidget"]

INTRO = (
    f"{APP_NAME} lets you chat with AI language models that run entirely on your own computer. "
    "There is no account and no cloud: nothing you type leaves this machine, and once you have a "
    "model it works without an internet connection. To start, pick a model: the small demo model "
    "to try things out, a model file (.gguf) you already have, or one to download."
)


def _named(widget, name: str, human: str | None = None):
    """objectName for tests; a human accessible name where the widget has no text of its own
    (a label or a button speaks its text, never the identifier)."""
    widget.setObjectName(name)
    if human:
        widget.setAccessibleName(human)
    return widget


class FirstRunWidget(QFrame):
    useDemo = Signal()
    _demoFound = Signal(bool)  # from the lookup thread
    addModel = Signal()
    download = Signal()

    def __init__(
        self, demo_available: bool | None = None, download_available: bool = True, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        _named(self, "firstRun", "Welcome")
        # None: looked up when the page is first shown. Reading the installed packages' file
        # lists costs ~40 ms, and a window that opens on a chat never shows this page.
        self._demo_known = demo_available is not None
        self._demoFound.connect(self.set_demo_available)

        outer = QVBoxLayout(self)
        outer.addStretch(1)
        column = QVBoxLayout()
        column.setSpacing(12)

        icon = QApplication.windowIcon() if QApplication.instance() else QIcon()
        self.icon_label = QLabel()
        if not icon.isNull():
            self.icon_label.setPixmap(icon.pixmap(96, 96))
        self.icon_label.setFixedHeight(104)
        self.icon_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        column.addWidget(self.icon_label)

        self.title = _named(QLabel(f"Welcome to {APP_NAME}"), "firstRunTitle")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        self.title.setFont(font)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        column.addWidget(self.title)

        self.intro = _named(QLabel(INTRO), "firstRunIntro")
        self.intro.setWordWrap(True)
        self.intro.setTextFormat(Qt.TextFormat.PlainText)
        self.intro.setAlignment(Qt.AlignmentFlag.AlignCenter)
        column.addWidget(self.intro)

        self.demo_button = self._button(
            "Use the demo model", "useDemoButton", "SmolLM2 135M Instruct: small and quick, good for trying Hearth out"
        )
        self.add_button = self._button(
            "Add a model file…",
            "addModelFileButton",
            "Choose a .gguf model file on this computer (it stays where it is)",
        )
        self.download_button = self._button(
            "Download a model", "downloadModelButton", "Search Hugging Face for a model and download it"
        )
        for button in (self.demo_button, self.add_button, self.download_button):
            column.addWidget(button, 0, Qt.AlignmentFlag.AlignHCenter)
        self.demo_button.clicked.connect(self.useDemo)
        self.add_button.clicked.connect(self.addModel)
        self.download_button.clicked.connect(self.download)

        self.hint = _named(QLabel("You can also drop a .gguf file onto this window."), "firstRunHint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setEnabled(False)  # drawn greyed: a hint, not an action
        self.hint.setWordWrap(True)  # wraps instead of being cut at a large font size
        column.addWidget(self.hint)

        holder = self._holder = QWidget()
        holder.setLayout(column)
        self._fit_width()
        # Centred with stretches, not an alignment flag: an aligned item gets its plain size
        # hint, which ignores the wrapped paragraph's height and squeezes the column.
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(holder, 4)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)

        self.set_demo_available(bool(demo_available))
        self.set_download_available(download_available)

    def _fit_width(self) -> None:
        """A readable column: 560 px at ordinary sizes, wider in step with a larger font."""
        self._holder.setMaximumWidth(max(560, 30 * self._holder.fontMetrics().horizontalAdvance("M")))

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_width()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(event)
        if not self._demo_known:
            self._demo_known = True
            QTimer.singleShot(0, self._look_for_demo)

    def _look_for_demo(self) -> None:
        """After the first paint, on a thread: importlib.metadata and the installed files' list
        take tens of milliseconds, and this screen is a new user's first frame. The button
        appears when the answer comes (queued to the GUI thread)."""
        import threading  # noqa: PLC0415

        from app.core.demo import find_demo_model  # noqa: PLC0415

        threading.Thread(
            target=lambda: self._demoFound.emit(find_demo_model() is not None), name="find-demo", daemon=True
        ).start()

    def _button(self, text: str, name: str, tip: str) -> QPushButton:
        button = _named(QPushButton(text), name)
        button.setToolTip(tip)
        button.setMinimumWidth(260)
        button.setMinimumHeight(36)
        return button

    def set_demo_available(self, available: bool) -> None:
        """The demo button only exists for people who have the demo model installed."""
        self.demo_button.setVisible(available)
        self.demo_button.setDefault(available)
        self.add_button.setDefault(not available)

    def set_download_available(self, available: bool) -> None:
        self.download_button.setEnabled(available)
        self.download_button.setToolTip(
            "Search Hugging Face for a model and download it"
            if available
            else "Downloading is not available in this copy of Hearth"
        )
