"""Untrusted text is shown as text, and only web links ever leave the app.

Much of what Hearth shows comes from outside: document passages, GGUF metadata such as
``general.name``, file names, conversation titles from an import, preset descriptions,
server messages. Qt decides *by looking at the text* whether a label, a message box or a
tooltip is rich text (``Qt::mightBeRichText``: does the first line start with something
like a tag?). So a model named ``<a href="file:///…">x</a>`` would become a link, and a
message box follows links of any scheme through ``QDesktopServices``. These helpers keep
that decision out of the untrusted text's hands:

- :func:`as_plain` gives a string that Qt's automatic detection shows literally: unchanged
  when Qt would treat it as plain anyway, else escaped HTML (so existing callers that pass
  text to ``QMessageBox.question`` or ``setToolTip`` keep working unchanged);
  :func:`plain_tip` is the same for tooltips (and ``None``).
- :func:`make_plain` forces plain text on a widget and every label inside it (a message
  box's text *and* informative text), and turns off following links.
- :func:`ask` is ``QMessageBox.question`` with Yes/No, defaulting to No, on plain text.
- :func:`open_web_link` is the one way a clicked link is opened: http and https only.

No I/O here; the opener is injectable so tests can record what would have been opened.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import overload

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtGui import Qt as QtGuiNamespace
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

log = logging.getLogger(__name__)

__all__ = ["WEB_SCHEMES", "as_plain", "ask", "is_web_link", "make_plain", "open_web_link", "plain_tip"]

# The only schemes a click may hand to the desktop: file:, smb:, javascript:, custom URL
# handlers and the like could open local files, mount shares or start programs.
WEB_SCHEMES = frozenset({"http", "https"})


def as_plain(text: str) -> str:
    """``text`` in a form that Qt's automatic format detection shows character for character.

    Text Qt already takes as plain is returned as is (so it stays selectable and comparable);
    text that would be taken as HTML is escaped and wrapped so that it renders as itself.
    """
    if not text or not QtGuiNamespace.mightBeRichText(text):
        return text
    return "<qt>" + html.escape(text).replace("\n", "<br>") + "</qt>"


@overload
def plain_tip(text: str) -> str: ...
@overload
def plain_tip(text: None) -> None: ...
@overload
def plain_tip(text: str | None) -> str | None: ...
def plain_tip(text: str | None) -> str | None:
    """A tooltip that shows ``text`` literally (``None`` and "" mean no tooltip)."""
    return as_plain(text) if text else text


def make_plain(widget: QWidget) -> QWidget:
    """Show ``widget``'s text as plain text and follow no links, including the labels inside
    it (a message box builds its informative-text label only when that text is set, so call
    this after setting the texts)."""
    if isinstance(widget, QMessageBox):
        widget.setTextFormat(Qt.TextFormat.PlainText)
    labels = widget.findChildren(QLabel)
    if isinstance(widget, QLabel):
        labels.append(widget)
    for label in labels:
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setOpenExternalLinks(False)
    return widget


def ask(parent: QWidget | None, title: str, text: str) -> bool:
    """A Yes/No question (No is the default) whose text may hold untrusted names."""
    answer = QMessageBox.question(
        parent,
        title,
        as_plain(text),
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def is_web_link(url: QUrl | str) -> bool:
    """Whether ``url`` is an absolute http(s) link with a host, the only kind opened."""
    url = QUrl(url) if isinstance(url, str) else url
    return url.isValid() and url.scheme().lower() in WEB_SCHEMES and bool(url.host())


def open_web_link(url: QUrl | str, opener: Callable[[QUrl], object] | None = None) -> bool:
    """Open a link the user clicked in their browser, if it is an http(s) link.

    Anything else (file:, smb:, javascript:, a relative link…) is refused and logged; the
    return value says whether it was handed on. Call it only from a click handler.
    """
    url = QUrl(url) if isinstance(url, str) else url
    if not is_web_link(url):
        log.info("Not opening a link with the scheme %r: only http and https links are opened.", url.scheme())
        return False
    open_url = opener if opener is not None else QDesktopServices.openUrl
    return bool(open_url(url))
