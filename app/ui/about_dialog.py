"""About Hearth: version, the licenses of what ships inside it, and where its files live.

The licenses are not decoration: PySide6/Qt is LGPL-3.0, which obliges us to tell people
it is inside and under which terms, and a downloaded model comes with its own license
(the demo model's is read from its GGUF header, ``general.license``, so it stays right if
the bundled model changes). The folder list answers "where are my chats?" and "how do I
free the disk space?", and "Open data folder" opens the file manager there.

:func:`collect_about_info` gathers everything (package metadata, one small GGUF header
read, the folder paths) so the dialog itself only draws; the dialog takes an ``open_url``
callable so tests can check the folder it opens without starting a file manager.

API::

    AboutDialog(info: AboutInfo | None = None, parent=None,
                open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl)  # objectName "aboutDialog"
    collect_about_info() -> AboutInfo
    AboutInfo(version, qt_version, components: list[Component], folders: list[tuple[str, Path]], demo_model: Component | None)
    Component(name, version, license, url)
"""

from __future__ import annotations

import email.message
import html
import importlib.metadata
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, qVersion
from PySide6.QtGui import QDesktopServices, QIcon
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app import APP_NAME, __version__, paths
from app.ui.plain import open_web_link

__all__ = ["AboutDialog", "AboutInfo", "Component", "collect_about_info", "spdx"]


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    license: str  # an SPDX expression where known
    url: str = ""


@dataclass
class AboutInfo:
    version: str
    qt_version: str
    components: list[Component] = field(default_factory=list)
    folders: list[tuple[str, Path]] = field(default_factory=list)  # (label, path); the first is "the data folder"
    demo_model: Component | None = None


# (shown name, distribution whose version to show, license, project page). Only what the
# packaged app contains; licenses checked against each project's own metadata.
BUNDLED: tuple[tuple[str, str | None, str, str], ...] = (
    ("Python", None, "PSF-2.0", "https://www.python.org/"),
    ("Qt", None, "LGPL-3.0-only", "https://www.qt.io/"),
    ("PySide6 (Qt for Python)", "PySide6_Essentials", "LGPL-3.0-only", "https://wiki.qt.io/Qt_for_Python"),
    ("Shiboken6", "shiboken6", "LGPL-3.0-only", "https://wiki.qt.io/Qt_for_Python"),
    ("llama.cpp and ggml", None, "MIT", "https://github.com/ggml-org/llama.cpp"),
    ("llama-cpp-python", "llama_cpp_python", "MIT", "https://github.com/abetlen/llama-cpp-python"),
    ("huggingface_hub", "huggingface_hub", "Apache-2.0", "https://github.com/huggingface/huggingface_hub"),
    ("markdown-it-py", "markdown-it-py", "MIT", "https://github.com/executablebooks/markdown-it-py"),
    ("mdit-py-plugins", "mdit-py-plugins", "MIT", "https://github.com/executablebooks/mdit-py-plugins"),
    ("Pygments", "Pygments", "BSD-2-Clause", "https://pygments.org/"),
    ("Jinja2", "Jinja2", "BSD-3-Clause", "https://palletsprojects.com/p/jinja/"),
    ("NumPy", "numpy", "BSD-3-Clause", "https://numpy.org/"),
    ("keyring", "keyring", "MIT", "https://github.com/jaraco/keyring"),
    ("platformdirs", "platformdirs", "MIT", "https://github.com/tox-dev/platformdirs"),
    ("httpx2", "httpx2", "BSD-3-Clause", "https://pypi.org/project/httpx2/"),
    ("pypdf", "pypdf", "BSD-3-Clause", "https://github.com/py-pdf/pypdf"),
    ("python-docx", "python-docx", "MIT", "https://github.com/python-openxml/python-docx"),
    ("lxml (with libxml2 and libxslt, MIT)", "lxml", "BSD-3-Clause", "https://lxml.de/"),
)

# GGUF ``general.license`` values are free text, usually Hugging Face's lower-case ids.
_SPDX = {
    "apache-2.0": "Apache-2.0",
    "mit": "MIT",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "cc-by-4.0": "CC-BY-4.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "cc-by-nc-4.0": "CC-BY-NC-4.0",
    "gpl-3.0": "GPL-3.0",
    "lgpl-3.0": "LGPL-3.0",
    "mpl-2.0": "MPL-2.0",
    "openrail": "OpenRAIL",
    "llama2": "Llama 2 Community License",
    "llama3": "Llama 3 Community License",
    "llama3.1": "Llama 3.1 Community License",
    "llama3.2": "Llama 3.2 Community License",
    "gemma": "Gemma Terms of Use",
    "other": "other (see the model card)",
}


def spdx(value: str) -> str:
    """A GGUF/Hub license id as people read it (``apache-2.0`` -> ``Apache-2.0``)."""
    value = value.strip()
    return _SPDX.get(value.lower(), value)


def _version(distribution: str | None) -> str:
    if distribution is None:
        return ""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _demo_component() -> Component | None:
    """The demo model's row, its license from the GGUF header (else its package metadata)."""
    from app.core.demo import DEMO_DISTRIBUTION, DEMO_NAME, find_demo_model
    from app.core.gguf import GGUFError, read_gguf

    path = find_demo_model()
    if path is None:
        return None
    license_ = ""
    try:
        value = read_gguf(path).kv.get("general.license")
        if isinstance(value, str) and value.strip():
            license_ = spdx(value)
    except (GGUFError, OSError):
        pass
    if not license_:
        try:
            meta = importlib.metadata.metadata(DEMO_DISTRIBUTION)
            # the PackageMetadata protocol lacks get(); the object is an email Message
            license_ = (meta.get("License") if isinstance(meta, email.message.Message) else None) or ""
        except importlib.metadata.PackageNotFoundError:
            pass
    return Component(
        DEMO_NAME,
        _version(DEMO_DISTRIBUTION),
        license_ or "unknown",
        "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
    )


def collect_about_info() -> AboutInfo:
    """Everything the About dialog shows (reads package metadata and the demo model's header)."""
    components = []
    for name, distribution, license_, url in BUNDLED:
        if name == "Python":
            version = platform.python_version()
        elif name == "Qt":
            version = qVersion()
        elif distribution is None:
            version = "bundled"  # compiled into llama-cpp-python's libraries
        else:
            version = _version(distribution)
        components.append(Component(name, version, license_, url))
    folders = [
        ("Data (conversations, library)", paths.data_dir()),
        ("Models", paths.models_dir()),
        ("Settings", paths.config_dir()),
        ("Logs", paths.log_dir()),
        ("Cache", paths.cache_dir()),
    ]
    return AboutInfo(__version__, qVersion(), components, folders, _demo_component())


def _named(widget, name: str, human: str | None = None):
    """objectName for tests; a human accessible name where the widget has no text of its own
    (a label or a button speaks its text, never the identifier)."""
    widget.setObjectName(name)
    if human:
        widget.setAccessibleName(human)
    return widget


class AboutDialog(QDialog):
    """Version, bundled components and their licenses, data folders, "Open data folder"."""

    def __init__(
        self,
        info: AboutInfo | None = None,
        parent: QWidget | None = None,
        open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl,
    ) -> None:
        super().__init__(parent)
        _named(self, "aboutDialog", "About Hearth")
        self.info = info or collect_about_info()
        self._open_url = open_url
        self.setWindowTitle(f"About {APP_NAME}")
        self.setMinimumWidth(560)
        self.resize(640, 720)
        layout = QVBoxLayout(self)

        head = QHBoxLayout()
        icon = QLabel()
        app_icon = QIcon.fromTheme("hearth", self.windowIcon())
        if not app_icon.isNull():
            icon.setPixmap(app_icon.pixmap(64, 64))
        head.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        title = QVBoxLayout()
        self.title_label = _named(QLabel(f"{APP_NAME} {self.info.version}"), "aboutTitle")
        font = self.title_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.title_label.setFont(font)
        title.addWidget(self.title_label)
        blurb = QLabel(
            "Chat with language models that run entirely on your own computer. Nothing you type leaves the machine."
        )
        blurb.setWordWrap(True)
        title.addWidget(blurb)
        head.addLayout(title, 1)
        layout.addLayout(head)

        self.licenses = _named(QTextBrowser(), "aboutLicenses", "Bundled components and their licenses")
        self.licenses.setOpenExternalLinks(False)
        self.licenses.setOpenLinks(False)
        # Package metadata names these links: only http(s) ones are opened, and only on a click.
        self.licenses.anchorClicked.connect(lambda url: open_web_link(url, self._open_url))
        self.licenses.setHtml(self._licenses_html())
        self.licenses.setMinimumHeight(220)
        layout.addWidget(self.licenses, 1)

        folders = QGroupBox("Where Hearth keeps your files")
        form = QFormLayout(folders)
        self.folder_labels: dict[str, QLabel] = {}
        for label, path in self.info.folders:
            value = QLabel(str(path))
            value.setTextFormat(Qt.TextFormat.PlainText)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setWordWrap(True)
            form.addRow(label + ":", value)
            self.folder_labels[label] = value
        layout.addWidget(folders)

        self.notice = _named(QLabel(""), "aboutNotice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        layout.addWidget(self.notice)

        buttons = QDialogButtonBox()
        self.open_data_button = _named(QPushButton("Open data folder"), "openDataFolderButton")
        self.open_data_button.setEnabled(bool(self.info.folders))
        buttons.addButton(self.open_data_button, QDialogButtonBox.ButtonRole.ActionRole)
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.setDefault(True)
        buttons.rejected.connect(self.reject)
        self.open_data_button.clicked.connect(self.open_data_folder)
        layout.addWidget(buttons)

    def _licenses_html(self) -> str:
        rows = []
        components = list(self.info.components)
        for c in components:
            name = f'<a href="{html.escape(c.url)}">{html.escape(c.name)}</a>' if c.url else html.escape(c.name)
            rows.append(f"<tr><td>{name}</td><td>{html.escape(c.version)}</td><td>{html.escape(c.license)}</td></tr>")
        demo = self.info.demo_model
        if demo is not None:
            model_html = (
                f"<p><b>Demo model</b>: {html.escape(demo.name)} — license <b>{html.escape(demo.license)}</b>"
                + (f' (<a href="{html.escape(demo.url)}">model card</a>)' if demo.url else "")
                + ".</p>"
            )
        else:
            model_html = "<p>The demo model is not installed. Models you download keep their own licenses: see each model's page.</p>"
        return (
            f"<p>{APP_NAME} {html.escape(self.info.version)} is free software under the MIT license. "
            "It includes these components, each under its own license:</p>"
            "<table cellspacing='0' cellpadding='3'>"
            "<tr><th align='left'>Component</th><th align='left'>Version</th><th align='left'>License</th></tr>"
            + "".join(rows)
            + "</table>"
            + model_html
            + "<p>Qt and PySide6 are used under the GNU LGPL version 3 as shared libraries, which you may "
            "replace with your own builds of the same version.</p>"
        )

    def licenses_text(self) -> str:
        """The license list as plain text (what a screen reader and the tests read)."""
        return self.licenses.toPlainText()

    def data_folder(self) -> Path | None:
        return self.info.folders[0][1] if self.info.folders else None

    def open_data_folder(self) -> None:
        folder = self.data_folder()
        if folder is None:
            return
        if not self._open_url(QUrl.fromLocalFile(str(folder))):
            self.notice.setText(f"Could not open a file manager. The folder is:\n{folder}")
            self.notice.show()
