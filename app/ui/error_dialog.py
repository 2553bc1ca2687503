"""The dialog for errors nothing else caught: plain words first, the traceback tucked away.

People who hit a bug need three things: to know their work is safe, a way to keep going,
and something to paste into a bug report. A raw traceback gives none of them, so the
main text is a sentence, the details (the redacted traceback ``app.logs`` produced) sit
in a collapsed box, "Copy details" puts them and the log file's path on the clipboard.

:class:`ErrorReporter` is the thread-safe front door: ``app.logs.install_excepthook`` may
call it from any thread; its signal brings the details to the GUI thread, and errors
that arrive while the dialog is open are added to it instead of stacking up dialogs.

API::

    reporter = ErrorReporter(log_path: str | Path | None, parent: QObject | None = None)
    install_excepthook(reporter.report.emit)      # report = Signal(str)
    ErrorDialog(details: str, log_path: str | Path | None = None, parent=None)
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import APP_NAME

__all__ = ["ErrorDialog", "ErrorReporter"]

HEADLINE = "Something went wrong"
EXPLANATION = (
    f"{APP_NAME} ran into a problem it did not expect. Your conversations are saved, and you "
    f"can usually keep working. If something now looks wrong, close {APP_NAME} and start it again."
)
REPORT_HINT = "To report it, copy the details and paste them into your bug report."

_SEPARATOR = "\n" + "-" * 60 + "\n"


def _named(widget, name: str, human: str | None = None):
    """objectName for tests; a human accessible name where the widget has no text of its own
    (a label or a button speaks its text, never the identifier)."""
    widget.setObjectName(name)
    if human:
        widget.setAccessibleName(human)
    return widget


class ErrorDialog(QDialog):
    """ "Something went wrong", a collapsible details box and "Copy details"."""

    def __init__(self, details: str, log_path: str | Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        _named(self, "errorDialog", "Something went wrong")
        self.setWindowTitle(f"{APP_NAME} — {HEADLINE}")
        self.setMinimumWidth(480)
        self._log_path = str(log_path) if log_path else ""
        self._count = 1

        layout = QVBoxLayout(self)
        self.headline = _named(QLabel(HEADLINE), "errorHeadline")
        font = self.headline.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.headline.setFont(font)
        layout.addWidget(self.headline)

        self.message = _named(QLabel(EXPLANATION + "\n\n" + REPORT_HINT), "errorMessage")
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.message)

        self.log_label = _named(QLabel(), "errorLogPath")
        self.log_label.setWordWrap(True)
        self.log_label.setTextFormat(Qt.TextFormat.PlainText)
        self.log_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log_label.setText(
            f"Details were also written to the log file:\n{self._log_path}" if self._log_path else ""
        )
        self.log_label.setVisible(bool(self._log_path))
        layout.addWidget(self.log_label)

        row = QHBoxLayout()
        self.toggle = _named(QToolButton(), "errorDetailsToggle")
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setText("Show details")
        self.toggle.toggled.connect(self._show_details)
        row.addWidget(self.toggle)
        row.addStretch(1)
        layout.addLayout(row)

        self.details = _named(QPlainTextEdit(), "errorDetails", "Error details")
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details.setPlainText(details)
        self.details.setMinimumHeight(180)
        self.details.hide()
        layout.addWidget(self.details, 1)

        self.copied_label = _named(QLabel(""), "errorCopied")
        layout.addWidget(self.copied_label)

        buttons = QDialogButtonBox()
        self.copy_button = _named(QPushButton("Copy details"), "errorCopyButton")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = _named(buttons.addButton(QDialogButtonBox.StandardButton.Close), "errorCloseButton")
        self.close_button.setDefault(True)
        buttons.rejected.connect(self.reject)
        self.copy_button.clicked.connect(self.copy_details)
        layout.addWidget(buttons)

    def details_text(self) -> str:
        """What "Copy details" copies: version, the log file's path and every traceback."""
        from app import __version__

        head = f"{APP_NAME} {__version__}"
        if self._log_path:
            head += f"\nLog file: {self._log_path}"
        return f"{head}\n\n{self.details.toPlainText()}"

    @Slot()
    def copy_details(self) -> None:
        QGuiApplication.clipboard().setText(self.details_text())
        self.copied_label.setText("Copied to the clipboard.")

    def add_details(self, details: str) -> None:
        """Another error while this dialog is open: keep them all, say how many."""
        self._count += 1
        self.details.appendPlainText(_SEPARATOR + details)
        self.headline.setText(f"{HEADLINE} ({self._count} errors)")

    def _show_details(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.toggle.setText("Hide details" if shown else "Show details")
        self.adjustSize()


class ErrorReporter(QObject):
    """Receives error details from any thread and shows one :class:`ErrorDialog` at a time.

    Create it in the GUI thread; ``report.emit`` is then safe to call from any thread
    (Qt queues the signal to this object's thread).
    """

    report = Signal(str)
    shown = Signal(object)  # the ErrorDialog, once visible (tests, and a window that wants to know)

    def __init__(self, log_path: str | Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.log_path = log_path
        self.dialog: ErrorDialog | None = None
        self.report.connect(self._show, Qt.ConnectionType.QueuedConnection)

    @Slot(str)
    def _show(self, details: str) -> None:
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.add_details(details)
            return
        # No parent: the active window may be a dialog that is about to close (and would
        # take this one with it), or the very window whose code just failed.
        self.dialog = ErrorDialog(details, self.log_path)
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog.destroyed.connect(self._forget)
        self.dialog.show()
        self.dialog.raise_()
        self.shown.emit(self.dialog)

    def _forget(self, *_args) -> None:
        self.dialog = None
