"""The conversation as one read-only rich-text document, markdown rendered as replies stream.

API:
    ChatView(parent=None, *, open_url=None)     objectName/accessibleName "chatView"
        add_message(message)                    a new message at the end (a reply still
                                                streaming has state STREAMING)
        append_text(text)                       streamed text for the last message
        finish_message(message)                 the last message ended: note, stats line
        show_conversation(messages)             replace everything (renders the newest first,
                                                older messages as the user scrolls up)
        load_earlier() -> int / load_all()      render older messages now (e.g. before a search)
        last_reply_text() -> str                the last reply's answer as markdown
        copy_last_reply() -> bool               …onto the clipboard
        scroll_to_bottom(), is_following()      follow-bottom state
        message_at(pos) -> Message | None       the message under a viewport point
        link_target_at(pos) -> str              the web link under a point ("" if none)
        build_context_menu(pos) -> QMenu        Copy / Select All + copy code, copy message
                                                as Markdown or plain text
        toPlainText()                           all rendered text (QTextBrowser's)
        copied(str)                             signal: what was put on the clipboard, in words
        open_url                                attribute: called with the QUrl of a clicked web
                                                link (QDesktopServices.openUrl by default)
        markdown                                attribute: markdown -> HTML (the shared
                                                render_markdown; tests wrap it to count calls)
        refused_resources                       what the document asked to load (and did not get)
        jump_button                             the "Jump to latest" button (objectName
                                                "jumpToLatest"), shown while not at the bottom

Why one document: appending at the end of a QTextDocument costs the same whatever is above,
and selection, copy and search work across messages for free. A message occupies a range of
blocks that starts at a tracked QTextCursor (Qt moves it when text is inserted before it, as
when older messages are loaded on top).

Streaming: ``stream_markdown.ReplyStream`` cuts the reply into finished blocks and an
unfinished tail. Each finished block is rendered once and inserted once: the document keeps
its HTML, nothing re-parses it. Per batch only the tail's range is removed and rendered again,
inside one edit block (one layout pass). Long code blocks and tables are finished in parts of
a few lines/rows as they grow, so the tail stays small too. So a batch costs about the same
at the start of a reply and deep into a 300-line code block, at the end of an empty
conversation or of a thousand-message one. Most batches only add a few plain words to the
tail's last line: those are appended to the document as text, with no markdown render and no
block removed or inserted (``_append_plain``), because with llama.cpp on every core each
millisecond the GUI process spends per token is taken from generation.

Long conversations: ``show_conversation`` renders the newest messages only (up to 40, or
about 24,000 characters); older ones are rendered in chunks of 20 above them when the user
scrolls to the top (or clicks the "earlier messages" line), keeping the view where it was.

Safety: model output is untrusted. The shared renderer (markdown-it "js-default") escapes raw
HTML; ``qt_html`` drops any ``<img>``; and ``loadResource`` refuses everything with a blank
1×1 image, because returning nothing is not enough: QTextDocument then reads local files
itself and Qt's image handler loads the ``src`` path directly. Links are never followed by the
view (``setOpenLinks(False)``); only a click on an http(s) link calls ``open_url`` (through
``plain.open_web_link``), and hovering shows the real target as plain text. The view's own
actions (copy code, toggle reasoning) are links with a per-view random scheme, so a model
cannot write a link that triggers them.
"""

from __future__ import annotations

import bisect
import html
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from PySide6.QtCore import QByteArray, QEvent, QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QContextMenuEvent,
    QDesktopServices,
    QGuiApplication,
    QHelpEvent,
    QImage,
    QResizeEvent,
    QShowEvent,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)
from PySide6.QtWidgets import QMenu, QTextBrowser, QTextEdit, QToolButton, QToolTip, QWidget

from app.core.adapters import describe as describe_adapters
from app.core.conversation import Message, MessageState, Role
from app.core.response_format import check_note, pretty_reply
from app.ui.plain import WEB_SCHEMES, open_web_link, plain_tip
from app.ui.stream_markdown import (
    REASONING,
    Block,
    ReplyStream,
    code_part_html,
    qt_html,
    split_reasoning,
    table_part_html,
)

_STATE_NOTES = {
    MessageState.STOPPED: "⏹ stopped",
    MessageState.INTERRUPTED: "⚠ interrupted — the engine stopped before the reply was finished",
    MessageState.FAILED: "⚠ failed",
}
_FINISH_NOTES = {"length": "cut off at the token limit", "context_full": "the context is full"}
_GREY = "#8a8a8a"
# (role, dark palette) -> (name colour, block tint); the tint is for the person's own turns
_SPEAKER_COLOURS = {
    (Role.USER, False): ("#1a4f9c", "#eaf1fb"),
    (Role.USER, True): ("#8cb8ff", "#243348"),
    (Role.ASSISTANT, False): ("#2e6b30", ""),
    (Role.ASSISTANT, True): ("#8fd694", ""),
    (Role.SYSTEM, False): ("#6b6b6b", "#f2f2f2"),
    (Role.SYSTEM, True): ("#b0b0b0", "#333336"),
}
_ZWSP = "\u200b"
# Block property marking a reply's reasoning blocks, so they can be hidden and shown again.
_REASONING_PROP = QTextFormat.Property.UserProperty + 1
_WEB_SCHEMES = WEB_SCHEMES  # the only links handed to the desktop: http and https
# Opening a conversation renders only its newest messages, up to these limits: enough to fill
# a tall window, few enough to open fast. Older ones are rendered in smaller chunks as the user
# scrolls up (a chunk of 20 costs ~15-30 ms: no visible hitch).
_OPEN_MESSAGES = 40
_OPEN_CHARS = 24_000
_CHUNK_MESSAGES = 20
_CHUNK_CHARS = 12_000
_BOTTOM_SLACK = 8  # px: "at the bottom" despite rounding and the document margin
# Streamed text that can be appended to the tail as plain text (ChatView._append_plain):
# letters, digits, single spaces and sentence punctuation; no markdown, entity or link syntax.
_PLAIN_WORDS = re.compile(r"(?:[^\W_]|[ .,!?'\"-])+")
_PLAIN_BEFORE = frozenset(".,!?'\"")  # what may precede them (besides letters and digits)
# A line whose kind more words cannot change: a word and a space after its first character
# (so not "1" before ". item", "-" before " item" or "# " before a title's first word).
_SETTLED_LINE = re.compile(r"\s*\S+ +.*\w", re.S)
_LINKISH = re.compile(r"www\.|://|@", re.I)  # bare URLs and e-mail addresses become links
_SPACES = re.compile(r" {2,}")
# Languages whose Pygments lexers are loaded ahead of time (see _warm_up_renderer).
_COMMON_LANGUAGES = (
    "python",
    "javascript",
    "typescript",
    "bash",
    "sh",
    "json",
    "c",
    "cpp",
    "rust",
    "go",
    "java",
    "html",
    "css",
    "sql",
    "yaml",
    "toml",
    "diff",
)
_warm_up_started = False


def _warm_up_renderer() -> None:
    """Load the highlighter's formatter and common lexers on a background thread, once.

    The first code block in a language costs an import (the first Python block ~60 ms with
    the formatter): done on the GUI thread mid-stream, that is a visible hitch. Here it runs
    while the app is idle; the GUI thread only shares the interpreter in short slices.
    """
    global _warm_up_started
    if _warm_up_started:
        return
    _warm_up_started = True

    def work() -> None:
        from app.core.markdown_html import render_markdown

        for language in _COMMON_LANGUAGES:
            render_markdown(f"```{language}\nx = 1\n```")

    threading.Thread(target=work, name="markdown-warm-up", daemon=True).start()


def _render_markdown(text: str, code_style: str) -> str:
    """markdown-it and Pygments are imported when the first message is drawn, not at start
    (the window's first frame does not need them); the lexers then load on a thread."""
    from app.core.markdown_html import render_markdown

    _warm_up_renderer()
    return render_markdown(text, code_style=code_style)


@dataclass
class _Entry:
    message: Message
    start: QTextCursor | None = None  # the message's first block, once rendered
    blocks: list[Block] | None = None  # its blocks, once rendered (Copy looks code up here)


@dataclass
class _Live:
    """The reply being streamed: what of it is in the document, and where the tail starts."""

    entry: _Entry
    stream: ReplyStream
    # Where the tail starts (the end of the last finished block), counted from the end of
    # the document: loading older messages on top does not change it, and a QTextCursor
    # would move along with text inserted at its own position.
    tail_from_end: int
    # The format of the block the tail hangs on. Removing the tail can leave that block with
    # the tail's first block format (an empty block after a table takes a code block's
    # background), so it is put back after each removal.
    anchor_format: QTextBlockFormat
    rendered: int = 0  # how many of stream.blocks are in the document
    generation: int = 0
    label_done: bool = False
    # The markdown of the tail as it is in the document (None: no tail there), so a batch
    # that only adds plain words to it can be appended as text (see _append_plain).
    tail_text: str | None = None


class ChatView(QTextBrowser):
    copied = Signal(str)  # a plain-words note of what went onto the clipboard
    # intents for the session, from the context menu: message id
    editRequested = Signal(str)
    deleteRequested = Signal(str)
    regenerateRequested = Signal()
    sourceRequested = Signal(str, int)  # message id, source number: show the passage
    variantRequested = Signal(str, int)  # message id, -1 / +1: show the previous / next variant
    continueRequested = Signal(str)  # message id: a new chat with the turns up to it
    rateRequested = Signal(str, object)  # message id, +1 / -1 / None (take the rating back)
    preferRequested = Signal(str, bool)  # message id, whether it is the better version

    def __init__(self, parent: QWidget | None = None, *, open_url: Callable[[QUrl], object] | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setAccessibleName("Conversation")
        self.setAccessibleDescription("The messages of this chat; Alt+Up and Alt+Down move from message to message")
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)  # an undo stack per streamed batch only costs memory
        self.open_url: Callable[[QUrl], object] = open_url or QDesktopServices.openUrl
        # The markdown renderer; tests wrap it to count calls. Dark palettes get a dark style.
        dark = self.palette().base().color().lightness() < 128
        self._code_style = "monokai" if dark else "default"
        self.markdown: Callable[[str], str] = lambda text: _render_markdown(text, self._code_style)
        self.refused_resources: list[str] = []  # what the document asked for (and did not get)
        # (number, how many) of a message among its variants (regenerated replies, edits);
        # the window points this at the open conversation.
        self.variant_position: Callable[[Message], tuple[int, int]] = lambda message: (1, 1)
        self._scheme = "hearth-" + secrets.token_hex(6)
        self._blank_image = QImage(1, 1, QImage.Format.Format_ARGB32)
        self._blank_image.fill(Qt.GlobalColor.transparent)

        self._entries: list[_Entry] = []
        self._by_id: dict[str, _Entry] = {}
        self._first_rendered = 0  # entries before this index are not in the document yet
        self._live: _Live | None = None
        self._stick = True  # follow new text: the user is at the bottom
        self._adjusting = False  # our own scrolling, not the user's

        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)
        self.anchorClicked.connect(self._on_anchor)

        self.jump_button = QToolButton(self)
        self.jump_button.setObjectName("jumpToLatest")
        self.jump_button.setAccessibleName("Jump to latest")
        self.jump_button.setText("↓ Jump to latest")
        self.jump_button.setToolTip("Scroll to the newest text and follow it again")
        self.jump_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.jump_button.clicked.connect(self.scroll_to_bottom)
        self.jump_button.hide()

        self._reset_document()

    # -- public API ----------------------------------------------------------------------------

    def add_message(self, message: Message) -> None:
        if self._live is not None:
            self._end_live(None)
        entry = _Entry(message)
        self._entries.append(entry)
        self._by_id[message.id] = entry
        if message.role is Role.ASSISTANT and message.state is MessageState.STREAMING:
            self._start_live(entry)
        else:
            self._render_at_end(entry)

    def append_text(self, text: str) -> None:
        """Add streamed text to the last message."""
        if not text:
            return
        if self._live is None:
            # text for a reply that is not streaming here (the view was reloaded mid-reply):
            # stream it on from what the record holds
            entry = self._entries[-1] if self._entries else None
            if entry is None or entry.message.role is not Role.ASSISTANT or entry.start is None:
                return
            recorded = entry.message.text.endswith(text)  # the session updates it first
            self._restart_live(entry)
            if recorded:
                return
        assert self._live is not None
        self._live.stream.feed(text)
        if not self._append_plain(self._live):
            self._update_live()

    def finish_message(self, message: Message) -> None:
        live = self._live
        if live is not None and live.entry.message.id == message.id:
            live.entry.message = message
            self._end_live(message)
            return
        entry = self._by_id.get(message.id)
        if entry is None or entry is not self._entries[-1] or entry.start is None:
            return
        entry.message = message
        cursor = self._end_cursor()
        cursor.beginEditBlock()
        self._insert_after(cursor, self._footer_html(message))
        cursor.endEditBlock()

    def show_conversation(self, messages: list[Message]) -> None:
        self._live = None
        self._entries = [_Entry(m) for m in messages]
        self._by_id = {e.message.id: e for e in self._entries}
        self._reset_document()
        budget_chars = 0
        first = len(self._entries)
        while first > 0 and len(self._entries) - first < _OPEN_MESSAGES and budget_chars < _OPEN_CHARS:
            first -= 1
            budget_chars += len(self._entries[first].message.text)
        self._first_rendered = len(self._entries)
        self._render_before(self._entries[first:])
        self._stick = True
        self.scroll_to_bottom()
        QTimer.singleShot(0, self._fill_viewport)

    def load_earlier(self) -> int:
        """Render the next chunk of older messages above the others; the view stays put."""
        if self._first_rendered == 0:
            return 0
        first = self._first_rendered
        chars = 0
        while first > 0 and self._first_rendered - first < _CHUNK_MESSAGES and chars < _CHUNK_CHARS:
            first -= 1
            chars += len(self._entries[first].message.text)
        bar = self.verticalScrollBar()
        old_max, old_value = bar.maximum(), bar.value()
        count = self._first_rendered - first
        self._render_before(self._entries[first : self._first_rendered])
        if not self._stick:
            self._adjusting = True
            bar.setValue(old_value + bar.maximum() - old_max)
            self._adjusting = False
        return count

    def load_all(self) -> None:
        while self.load_earlier():
            pass

    def highlight(self, terms: list[str]) -> int:
        """Mark every occurrence of the search terms (all messages rendered first) and
        scroll to the first; returns how many were marked."""
        self.load_all()
        selections = []
        fmt = QTextCharFormat()
        fmt.setBackground(QColor("#ffe082"))
        fmt.setForeground(QColor("#000000"))
        for term in (t for t in terms if t.strip()):
            cursor = QTextCursor(self.document())
            while True:
                cursor = self.document().find(term.strip(), cursor)
                if cursor.isNull():
                    break
                selection = QTextEdit.ExtraSelection()
                selection.cursor = cursor
                selection.format = fmt
                selections.append(selection)
        self.setExtraSelections(selections)
        if selections:
            self._stick = False
            self.setTextCursor(QTextCursor(selections[0].cursor.block()))
            self.ensureCursorVisible()
        return len(selections)

    def last_reply_text(self) -> str:
        """The newest reply's answer as markdown (its reasoning left out), or ""."""
        for entry in reversed(self._entries):
            if entry.message.role is Role.ASSISTANT:
                return self._answer_markdown(entry)
        return ""

    def copy_last_reply(self) -> bool:
        text = self.last_reply_text()
        if text:
            self._to_clipboard(text, "Reply copied as Markdown")
        return bool(text)

    def is_following(self) -> bool:
        return self._stick

    def scroll_to_bottom(self) -> None:
        self._stick = True
        bar = self.verticalScrollBar()
        self._adjusting = True
        bar.setValue(bar.maximum())
        self._adjusting = False
        self._update_jump_button()

    def message_at(self, pos: QPoint) -> Message | None:
        """The message under a point of the viewport."""
        entry = self._entry_at(self.cursorForPosition(pos).position())
        return entry.message if entry else None

    def message_spans(self) -> list[tuple[Message, int, int]]:
        """The rendered messages, oldest first, each with its document range [start, end)
        (keyboard navigation selects one)."""
        spans: list[tuple[Message, int, int]] = []
        end = self._doc_end()
        for entry in reversed(self._entries[self._first_rendered :]):
            if entry.start is None:
                continue
            start = entry.start.position()
            spans.append((entry.message, start, max(start, end)))
            end = start - 1
        spans.reverse()
        return spans

    def link_target_at(self, pos: QPoint) -> str:
        """The web link under a point of the viewport ("" if none): what hovering shows."""
        href = self.anchorAt(pos)
        return href if href and QUrl(href).scheme().lower() in _WEB_SCHEMES else ""

    # -- Qt overrides --------------------------------------------------------------------------

    def loadResource(self, type: int, name: QUrl | str):  # noqa: A002 - Qt's signature
        """Nothing is ever loaded. A blank image, not None: with None Qt reads local files."""
        self.refused_resources.append(name.toString() if isinstance(name, QUrl) else QUrl(name).toString())
        if type == QTextDocument.ResourceType.ImageResource:
            return self._blank_image
        return QByteArray()

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            help_event = cast(QHelpEvent, event)  # a ToolTip event is a QHelpEvent; the stubs say QEvent
            target = self.link_target_at(help_event.pos())
            if target:
                QToolTip.showText(help_event.globalPos(), plain_tip(target), self.viewport())
                return True
        return super().viewportEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        menu = self.build_context_menu(event.pos())
        menu.exec(event.globalPos())
        menu.deleteLater()

    def build_context_menu(self, pos: QPoint) -> QMenu:
        """The standard menu (Copy, Select All, Copy Link Location) plus message actions."""
        menu = self.createStandardContextMenu(pos)
        doc_pos = self.cursorForPosition(pos).position()
        entry = self._entry_at(doc_pos)
        code = self._code_at(doc_pos)
        if code is not None or entry is not None:
            menu.addSeparator()
        if code is not None:
            action = QAction("Copy code block", menu)
            action.setObjectName("copyCodeAction")
            action.triggered.connect(lambda: self._to_clipboard(code, "Code copied"))
            menu.addAction(action)
        if entry is not None:
            for name, label, as_text in (
                ("copyMarkdownAction", "Copy message as Markdown", False),
                ("copyPlainAction", "Copy message as plain text", True),
            ):
                action = QAction(label, menu)
                action.setObjectName(name)
                action.triggered.connect(lambda _=False, e=entry, t=as_text: self._copy_message(e, t))
                menu.addAction(action)
            if self._live is None:  # no edits while a reply is being written
                message = entry.message
                menu.addSeparator()
                if message.role is Role.USER:
                    action = QAction("Edit and resend…", menu)
                    action.setObjectName("editMessageAction")
                    action.triggered.connect(lambda _=False, mid=message.id: self.editRequested.emit(mid))
                    menu.addAction(action)
                if message.role is Role.ASSISTANT and self._entries and self._entries[-1] is entry:
                    action = QAction("Regenerate reply", menu)
                    action.setObjectName("regenerateAction")
                    action.triggered.connect(self.regenerateRequested)
                    menu.addAction(action)
                if message.role is Role.ASSISTANT:
                    self._add_rating_actions(menu, message)
                action = QAction("Continue in a new chat from here", menu)
                action.setObjectName("continueInNewChatAction")
                action.setToolTip("A new conversation with the turns up to this message; this one stays as it is")
                action.triggered.connect(lambda _=False, mid=message.id: self.continueRequested.emit(mid))
                menu.addAction(action)
                action = QAction("Delete message", menu)
                action.setObjectName("deleteMessageAction")
                action.triggered.connect(lambda _=False, mid=message.id: self.deleteRequested.emit(mid))
                menu.addAction(action)
        return menu

    def _add_rating_actions(self, menu: QMenu, message: Message) -> None:
        """Good reply / Bad reply / Prefer this version: checkable, a second click takes it back."""
        for name, label, value in (("rateGoodAction", "Good reply", 1), ("rateBadAction", "Bad reply", -1)):
            action = QAction(label, menu)
            action.setObjectName(name)
            action.setCheckable(True)
            action.setChecked(message.rating == value)
            action.triggered.connect(
                lambda checked, mid=message.id, v=value: self.rateRequested.emit(mid, v if checked else None)
            )
            menu.addAction(action)
        if self.variant_position(message)[1] > 1:
            action = QAction("Prefer this version", menu)
            action.setObjectName("preferVersionAction")
            action.setCheckable(True)
            action.setChecked(message.preferred)
            action.triggered.connect(lambda checked, mid=message.id: self.preferRequested.emit(mid, checked))
            menu.addAction(action)

    def refresh_message(self, message: Message) -> None:
        """Draw one message again where it is (its rating changed), keeping the scroll place."""
        entry = self._by_id.get(message.id)
        if entry is None or entry.start is None or (self._live is not None and self._live.entry is entry):
            return
        entry.message = message
        bar = self.verticalScrollBar()
        value = bar.value()
        self._adjusting = True
        try:
            start, end = self._entry_range(entry)
            selection = self.textCursor()
            selected = selection.hasSelection() and start <= selection.selectionStart() <= end
            cursor = QTextCursor(self.document())
            cursor.beginEditBlock()
            cursor.setPosition(start - 1)
            cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            self._render_entry(cursor, entry)
            cursor.endEditBlock()
            if selected:  # chosen with Alt+Up/Down: it stays chosen (the next Alt+G acts on it)
                start, end = self._entry_range(entry)
                selection = QTextCursor(self.document())
                selection.setPosition(start)
                selection.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
                self.setTextCursor(selection)
            bar.setValue(value)
        finally:
            self._adjusting = False

    def changeEvent(self, event: QEvent) -> None:
        """A live theme switch: pick the matching code colours and redraw (not mid-stream)."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            style = "monokai" if self.palette().base().color().lightness() < 128 else "default"
            if style != self._code_style:
                self._code_style = style
                if self._live is None and self._entries:
                    self.show_conversation([entry.message for entry in self._entries])

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_jump_button()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._fill_viewport)

    # -- rendering -----------------------------------------------------------------------------

    def _reset_document(self) -> None:
        """An empty document with the top block: the place for "show earlier messages"."""
        self.document().clear()
        self._first_rendered = 0

    def _doc_end(self) -> int:
        return self.document().characterCount() - 1

    def _end_cursor(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def _insert_after(self, cursor: QTextCursor, fragment: str) -> int:
        """Insert HTML as new blocks after the block that ``cursor`` ends; returns where the
        first of them starts. ``insertHtml`` merges a fragment's first block into the current
        one and loses its format (a heading would become a plain line), so the fragment starts
        with a throwaway character that takes that merge and is then removed."""
        pos = cursor.position()
        cursor.insertHtml(f"<p>{_ZWSP}</p>{fragment}")
        eraser = QTextCursor(cursor.document())
        eraser.setPosition(pos)
        eraser.setPosition(pos + 1, QTextCursor.MoveMode.KeepAnchor)
        eraser.removeSelectedText()
        return pos + 1

    def _tracked(self, pos: int) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.setPosition(pos)
        return cursor

    def _render_at_end(self, entry: _Entry) -> None:
        cursor = self._end_cursor()
        cursor.beginEditBlock()
        self._render_entry(cursor, entry)
        cursor.endEditBlock()

    def _render_before(self, entries: list[_Entry]) -> None:
        """Render entries (older than all rendered ones) right after the top block."""
        if not entries:
            return
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.Start)
        cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock)
        cursor.beginEditBlock()
        for entry in entries:
            self._render_entry(cursor, entry)
        self._first_rendered = self._entries.index(entries[0])
        self._set_top_text(cursor)
        cursor.endEditBlock()

    def _render_entry(self, cursor: QTextCursor, entry: _Entry) -> None:
        """Insert a finished message at the cursor (the end of a block); cursor ends after it."""
        message = entry.message
        start = self._insert_after(cursor, self._header_html(message))
        entry.start = self._tracked(start)
        if message.role is not Role.ASSISTANT:
            self._insert_after(cursor, _user_html(message.text, self._speaker(message)[1]) + self._footer_html(message))
            return
        stream = ReplyStream()
        stream.feed(pretty_reply(message.text, message.stats) or message.text)
        stream.close()
        entry.blocks = stream.blocks
        reasoning = [(i, b) for i, b in enumerate(stream.blocks) if b.kind == REASONING]
        if reasoning:
            first = self._insert_after(cursor, self._reasoning_label_html(message.id, expanded=False))
            self._insert_after(cursor, "".join(self._block_html(message.id, i, b) for i, b in reasoning))
            self._mark_reasoning(first, cursor.position(), visible=False)
        answer = "".join(self._block_html(message.id, i, b) for i, b in enumerate(stream.blocks) if b.kind != REASONING)
        footer = self._footer_html(message)
        if answer or footer:
            self._insert_after(cursor, answer + footer)

    def _set_top_text(self, cursor: QTextCursor) -> None:
        top = QTextCursor(self.document())
        top.movePosition(QTextCursor.MoveOperation.Start)
        top.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
        top.removeSelectedText()
        if self._first_rendered:
            n = self._first_rendered
            label = f"↑ {n:,} earlier message{'s' if n != 1 else ''} — scroll up or click to show"
            top.insertHtml(f'<a href="{self._scheme}:earlier" style="color: {_GREY}">{html.escape(label)}</a>')

    def _speaker(self, message: Message) -> tuple[str, str]:
        """(label colour, block tint) for who wrote ``message``, for this view's light or dark
        palette: the person's turns are blue and tinted, the model's green on the plain page."""
        dark = self._code_style == "monokai"
        return _SPEAKER_COLOURS[(message.role, dark)]

    def _header_html(self, message: Message) -> str:
        """Who speaks, at a glance: a larger bold name above each turn, in the speaker's colour."""
        who = "You" if message.role is Role.USER else (message.model or "Assistant")
        if message.role is Role.SYSTEM:
            who = "System"
        colour = self._speaker(message)[0]
        return (
            f'<p style="margin-top: 16px; margin-bottom: 3px; color: {colour}; font-size: large">'
            f"<b>{html.escape(who)}</b></p>" + self._images_html(message)
        )

    def _images_html(self, message: Message) -> str:
        """The person's attached images, as thumbnails (document resources under this view's
        random scheme: nothing is loaded from anywhere, and a model cannot point at them)."""
        tags = []
        for i, image in enumerate(message.images):
            url = QUrl(f"{self._scheme}-image:{message.id}/{i}")
            thumb = QImage.fromData(image.data)
            if thumb.isNull():
                continue
            thumb = thumb.scaled(
                160, 160, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
            self.document().addResource(QTextDocument.ResourceType.ImageResource, url, thumb)
            alt = html.escape(image.name or f"image {i + 1}", quote=True)
            tags.append(f'<img src="{url.toString()}" width="{thumb.width()}" height="{thumb.height()}" alt="{alt}"> ')
        return f'<p style="margin-top: 2px; margin-bottom: 2px">{"".join(tags)}</p>' if tags else ""

    def _block_html(self, message_id: str, index: int, block: Block) -> str:
        if block.part and (block.is_code and not block.code_lines() or block.text.count("\n") < 2):
            return ""  # a part of a fence or table with no line of its own yet
        body = qt_html(self.markdown(block.highlight_source()))
        if block.is_code:
            body = code_part_html(body, block)
        elif block.widths:
            body = table_part_html(body, block)
        if block.is_code and block.part == 0:
            lang = html.escape(block.fence or "code")
            body = (
                f'<p style="margin-top: 6px; margin-bottom: 0px; color: {_GREY}; font-size: small">'
                f'{lang}&nbsp;&nbsp;<a href="{self._scheme}:copy-code/{message_id}/{index}">Copy</a></p>' + body
            )
        if block.kind == REASONING:
            body = f'<div style="color: {_GREY}">{body}</div>'
        return body

    def _reasoning_label_html(self, message_id: str, *, expanded: bool) -> str:
        arrow = "▾" if expanded else "▸"
        return (
            f'<p style="margin-top: 2px; margin-bottom: 2px"><a href="{self._scheme}:reasoning/{message_id}" '
            f'style="color: {_GREY}; text-decoration: none">{arrow} Reasoning</a></p>'
        )

    def _variants_html(self, message: Message) -> str:
        """‹ 2/3 › under a message that has variants; an arrow is a link only where it leads somewhere."""
        number, count = self.variant_position(message)
        if count < 2 or message.state is MessageState.STREAMING:
            return ""
        # bigger and bolder than the small grey line around them: they are click targets
        look = "font-size: large; font-weight: bold"

        def arrow(glyph: str, step: str, enabled: bool, what: str) -> str:
            if not enabled:
                return f'<span style="color: {_GREY}; {look}">&nbsp;{glyph}&nbsp;</span>'
            return (
                f'<a href="{self._scheme}:variant/{message.id}/{step}" style="text-decoration: none; {look}" '
                f'title="{what} version">&nbsp;{glyph}&nbsp;</a>'
            )

        return (
            arrow("‹", "prev", number > 1, "Previous")
            + f"&nbsp;{number}/{count}&nbsp;"
            + arrow("›", "next", number < count, "Next")
        )

    def _rating_html(self, message: Message) -> str:
        """Good · Bad (and Prefer this version among versions) under a finished reply: links,
        the chosen one bold and coloured; clicking it again takes it back."""
        if message.state is MessageState.STREAMING:
            return ""

        def link(action: str, label: str, on: bool, colour: str, title: str) -> str:
            look = f"color: {colour}; font-weight: bold" if on else f"color: {_GREY}"
            return (
                f'<a href="{self._scheme}:{action}/{message.id}/{"off" if on else "on"}" '
                f'style="{look}" title="{html.escape(title)}">{label}</a>'
            )

        parts = [
            link(
                "rate-good",
                "Good",
                message.rating == 1,
                "#2e7d32",
                "Rated good: click to take back" if message.rating == 1 else "Good reply",
            ),
            link(
                "rate-bad",
                "Bad",
                message.rating == -1,
                "#c62828",
                "Rated bad: click to take back" if message.rating == -1 else "Bad reply",
            ),
        ]
        if self.variant_position(message)[1] > 1:
            label = "Preferred version" if message.preferred else "Prefer this version"
            parts.append(
                link(
                    "prefer",
                    label,
                    message.preferred,
                    "#1565c0",
                    "This version is the better one" if message.preferred else "Prefer this version",
                )
            )
        return " · ".join(parts)

    def _footer_html(self, message: Message) -> str:
        variants = self._variants_html(message)
        if message.role is not Role.ASSISTANT:
            if not variants:
                return ""
            return f'<p style="margin-top: 2px; color: {_GREY}; font-size: small">{variants}</p>'
        out = ""
        note = _STATE_NOTES.get(message.state)
        empty = (message.stats or {}).get("empty_reason") if isinstance(message.stats, dict) else None
        if isinstance(empty, str) and not message.text.strip():
            note = empty  # a reply that ended with nothing says why, where the reply would be
        if note:
            out += f'<p style="margin-top: 4px; color: #b06000"><i>{html.escape(note)}</i></p>'
        rating = self._rating_html(message)
        parts = ([variants] if variants else []) + ([rating] if rating else [])
        parts += [html.escape(p) for p in _stats_parts(message)]
        if message.state is not MessageState.STREAMING:
            link = f'style="color: {_GREY}"'
            parts.append(f'<a href="{self._scheme}:copy-md/{message.id}" {link}>Copy</a>')
            parts.append(f'<a href="{self._scheme}:copy-text/{message.id}" {link}>Copy as text</a>')
        if parts:
            out += f'<p style="margin-top: 2px; color: {_GREY}; font-size: small">' + " · ".join(parts) + "</p>"
        sources = (message.stats or {}).get("sources") or []
        if sources:
            links = []
            for src in sources:
                colour = "#1565c0" if src.get("cited") else _GREY
                note = "" if src.get("cited") else " (retrieved, not cited)"
                links.append(
                    f'<a href="{self._scheme}:source/{message.id}/{int(src["number"])}" style="color: {colour}">'
                    f"[{int(src['number'])}] {html.escape(str(src.get('label', '')))}</a>{html.escape(note)}"
                )
            out += '<p style="margin-top: 2px; font-size: small">Sources: ' + " · ".join(links) + "</p>"
        return out

    def _mark_reasoning(self, start: int, end: int, *, visible: bool) -> None:
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        fmt = QTextBlockFormat()
        fmt.setProperty(_REASONING_PROP, True)
        cursor.mergeBlockFormat(fmt)
        if not visible:
            self._set_blocks_visible(start, end, False, skip_first=True)

    def _set_blocks_visible(self, start: int, end: int, visible: bool, *, skip_first: bool = False) -> None:
        """Hide or show the reasoning blocks in [start, end]; the first (the label) stays."""
        doc = self.document()
        block = doc.findBlock(start)
        if skip_first:
            block = block.next()
        changed_from = block.position() if block.isValid() else start
        while block.isValid() and block.position() <= end:
            if block.blockFormat().hasProperty(_REASONING_PROP) and not _is_label(block):
                block.setVisible(visible)
            block = block.next()
        doc.markContentsDirty(changed_from, max(0, end - changed_from))

    # -- streaming -----------------------------------------------------------------------------

    def _start_live(self, entry: _Entry) -> None:
        cursor = self._end_cursor()
        cursor.beginEditBlock()
        start = self._insert_after(cursor, self._header_html(entry.message))
        cursor.endEditBlock()
        entry.start = self._tracked(start)
        self._live = _Live(entry, ReplyStream(in_parts=True), self._doc_end() - cursor.position(), cursor.blockFormat())
        if entry.message.text:
            self._live.stream.feed(entry.message.text)
            self._update_live()
        else:
            self._follow()

    def _restart_live(self, entry: _Entry) -> None:
        """Streamed text for a message that was rendered as finished: stream it from here."""
        assert entry.start is not None
        cursor = self._end_cursor()
        cursor.setPosition(entry.start.position(), QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        entry.start = None
        self._start_live(entry)

    def _update_live(self) -> None:
        live = self._live
        assert live is not None
        stream = live.stream
        message_id = live.entry.message.id
        doc_cursor = QTextCursor(self.document())
        doc_cursor.beginEditBlock()
        if live.generation != stream.generation:  # an orphan </think>: render it all again
            live.generation = stream.generation
            live.rendered = 0
            live.label_done = False
            # the body starts after the header block; (a cursor there would have moved
            # along with the first insertion at its position)
            assert live.entry.start is not None
            header = self.document().findBlock(live.entry.start.position())
            live.tail_from_end = self._doc_end() - (header.position() + header.length() - 1)
            live.anchor_format = header.blockFormat()
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._doc_end() - live.tail_from_end)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        cursor.setBlockFormat(live.anchor_format)
        if stream.has_reasoning and not live.label_done:
            self._insert_after(cursor, self._reasoning_label_html(message_id, expanded=True))
            self._mark_reasoning(cursor.block().position(), cursor.position(), visible=True)
            live.label_done = True
        new = stream.blocks[live.rendered :]
        for index, block in enumerate(new, start=live.rendered):
            start = self._insert_after(cursor, self._block_html(message_id, index, block))
            if block.kind == REASONING:
                self._mark_reasoning(start, cursor.position(), visible=True)
        live.rendered = len(stream.blocks)
        tail_start = cursor.position()
        live.anchor_format = cursor.blockFormat()
        tail = stream.tail()
        if tail is not None:
            start = self._insert_after(cursor, self._block_html(message_id, live.rendered, tail))
            if tail.kind == REASONING:
                self._mark_reasoning(start, cursor.position(), visible=True)
        live.tail_from_end = self._doc_end() - tail_start
        live.tail_text = tail.text if tail is not None else None
        doc_cursor.endEditBlock()
        self._follow()

    def _append_plain(self, live: _Live) -> bool:
        """Show a batch that only adds plain words to the tail's last line as text appended
        to the document, without rendering the tail again; False if it needs a render.

        Most batches of a reply are a few words inside a paragraph. Rendering the tail again
        (markdown, HTML parsing, removing and inserting blocks) is what the GUI process spends
        most of its time per token on, and with llama.cpp on every core that time is taken
        from generation. The words are plain when they hold no markdown punctuation, the line
        they extend is already a paragraph, heading or list item with a word in it, and the
        character before them is a letter, digit or sentence punctuation (not a closing
        ``*``, backtick or link bracket, whose format the new text would take on). The tail is
        rendered in full at the next batch that does not qualify, and each finished block is
        inserted from its rendered HTML, so the document ends up exactly as rendered.
        """
        stream = live.stream
        old = live.tail_text
        if old is None or live.generation != stream.generation or live.rendered != len(stream.blocks):
            return False
        if stream.has_reasoning and not live.label_done:
            return False
        tail = stream.tail()
        if tail is None or tail.is_code or tail.widths or not tail.text.startswith(old):
            return False
        added = tail.text[len(old) :]
        if not added:
            return True  # held back (a possible tag) or blank: nothing new to show yet
        head = old.rstrip(" ")
        line = head[head.rfind("\n") + 1 :]
        if (
            not _PLAIN_WORDS.fullmatch(added)
            or not head
            or not (head[-1].isalnum() or head[-1] in _PLAIN_BEFORE)
            or not _SETTLED_LINE.match(line)
            or _LINKISH.search(line + added)
            or "|" in line  # a table row: the document's end is after the table, not in it
            or "```" in old
            or "~~~" in old
        ):
            return False
        # HTML shows a run of spaces as one, and a paragraph's trailing spaces not at all.
        text = _SPACES.sub(" ", old[len(head) :] + added).rstrip(" ")
        if text:
            cursor = self._end_cursor()
            cursor.insertText(text)
            live.tail_from_end += len(text)
        live.tail_text = tail.text
        self._follow()
        return True

    def _end_live(self, message: Message | None) -> None:
        """The reply is over: its last block is finished, then the note and stats follow."""
        live = self._live
        assert live is not None
        shown = (pretty_reply(message.text, message.stats) or message.text) if message is not None else None
        if shown is not None and shown != live.stream.text:
            # the record differs from what streamed (e.g. a reply finished without batches, or
            # a structured reply that is shown pretty-printed)
            live.stream = ReplyStream(in_parts=True)
            live.stream.feed(shown)
            live.generation = -1
        live.stream.close()
        self._update_live()
        self._live = None
        live.entry.blocks = live.stream.blocks
        cursor = self._end_cursor()
        cursor.beginEditBlock()
        if message is not None:
            footer = self._footer_html(message)
            if footer:
                self._insert_after(cursor, footer)
        if live.stream.has_reasoning:
            self._set_reasoning_visible(live.entry, False)
        cursor.endEditBlock()
        self._follow()

    # -- follow the bottom ---------------------------------------------------------------------

    def _at_bottom(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - _BOTTOM_SLACK

    def _follow(self) -> None:
        if self._stick:
            bar = self.verticalScrollBar()
            self._adjusting = True
            bar.setValue(bar.maximum())
            self._adjusting = False
        self._update_jump_button()

    def _on_scrolled(self, value: int) -> None:
        if not self._adjusting:
            self._stick = self._at_bottom()
            if value <= self.verticalScrollBar().minimum() and self._first_rendered:
                QTimer.singleShot(0, self.load_earlier)
        self._update_jump_button()

    def _on_range_changed(self, _minimum: int, _maximum: int) -> None:
        self._follow()

    def _fill_viewport(self) -> None:
        """Older messages until the view can scroll (a short chunk may not fill a tall window).
        Only when shown: a hidden view has no real height yet."""
        while self.isVisible() and self._first_rendered and self.verticalScrollBar().maximum() == 0:
            self.load_earlier()

    def _update_jump_button(self) -> None:
        show = not self._at_bottom()
        if show != self.jump_button.isVisible():
            self.jump_button.setVisible(show)
            if show:
                self._place_jump_button()
                self.jump_button.raise_()

    def _place_jump_button(self) -> None:
        button = self.jump_button
        button.adjustSize()
        area = self.viewport().geometry()
        button.move(area.right() - button.width() - 12, area.bottom() - button.height() - 12)

    # -- actions -------------------------------------------------------------------------------

    def _on_anchor(self, url: QUrl) -> None:
        scheme = url.scheme().lower()
        if scheme == self._scheme:
            self._internal_action(url.path())
        elif scheme in _WEB_SCHEMES:
            open_web_link(url, self.open_url)
        # anything else (a relative link, an unknown scheme) is not followed at all

    def _internal_action(self, path: str) -> None:
        action, _, rest = path.partition("/")
        if action == "earlier":
            self.load_earlier()
            return
        message_id, _, index = rest.partition("/")
        entry = self._by_id.get(message_id)
        if entry is None:
            return
        if action == "copy-code" and index.isdigit():
            code = self._fence_code(entry, int(index))
            if code is not None:
                self._to_clipboard(code, "Code copied")
        elif action == "copy-md":
            self._copy_message(entry, False)
        elif action == "copy-text":
            self._copy_message(entry, True)
        elif action == "reasoning":
            self._toggle_reasoning(entry)
        elif action == "source" and index.isdigit():
            self.sourceRequested.emit(message_id, int(index))
        elif action == "variant" and index in ("prev", "next"):
            self.variantRequested.emit(message_id, -1 if index == "prev" else 1)
        elif action in ("rate-good", "rate-bad") and index in ("on", "off"):
            self.rateRequested.emit(message_id, None if index == "off" else (1 if action == "rate-good" else -1))
        elif action == "prefer" and index in ("on", "off"):
            self.preferRequested.emit(message_id, index == "on")

    def _fence_code(self, entry: _Entry, index: int) -> str | None:
        """The raw code of the fence whose first block is at index: all of its parts."""
        live = self._live
        if live is not None and live.entry is entry:
            blocks = list(live.stream.blocks)
            tail = live.stream.tail()
            if tail is not None:
                blocks.append(tail)
        else:
            blocks = entry.blocks or []
        if not (0 <= index < len(blocks)) or not blocks[index].is_code or blocks[index].part:
            return None
        lines: list[str] = []
        for block in blocks[index:]:
            lines += block.code_lines()
            if block.last:
                break
        return "\n".join(lines)

    def _answer_markdown(self, entry: _Entry) -> str:
        live = self._live
        if live is not None and live.entry is entry:
            return live.stream.answer_text
        if entry.message.role is not Role.ASSISTANT:
            return entry.message.text
        return split_reasoning(entry.message.text)[1]

    def _copy_message(self, entry: _Entry, as_text: bool) -> None:
        text = self._answer_markdown(entry)
        if as_text and entry.message.role is Role.ASSISTANT:
            from app.core.markdown_html import render_plain

            self._to_clipboard(render_plain(text), "Message copied as plain text")
        else:
            self._to_clipboard(text, "Message copied as plain text" if as_text else "Message copied as Markdown")

    def _to_clipboard(self, text: str, note: str) -> None:
        QGuiApplication.clipboard().setText(text)
        self.copied.emit(note)

    def _entry_range(self, entry: _Entry) -> tuple[int, int]:
        assert entry.start is not None
        index = self._entries.index(entry)
        end = self._end_cursor().position()
        for later in self._entries[index + 1 :]:
            if later.start is not None:
                end = later.start.position() - 1
                break
        return entry.start.position(), end

    def _set_reasoning_visible(self, entry: _Entry, visible: bool) -> None:
        if entry.start is None:
            return
        start, end = self._entry_range(entry)
        doc = self.document()
        block = doc.findBlock(start)
        while block.isValid() and block.position() <= end:
            if _is_label(block):
                cursor = QTextCursor(block)  # the arrow, first character of the label
                cursor.movePosition(QTextCursor.MoveOperation.NextCharacter, QTextCursor.MoveMode.KeepAnchor)
                cursor.insertText("▾" if visible else "▸", cursor.charFormat())
                self._set_blocks_visible(block.position(), end, visible, skip_first=True)
                return
            block = block.next()

    def _toggle_reasoning(self, entry: _Entry) -> None:
        if entry.start is None:
            return
        start, end = self._entry_range(entry)
        block = self.document().findBlock(start)
        while block.isValid() and block.position() <= end:
            if block.blockFormat().hasProperty(_REASONING_PROP) and not _is_label(block):
                self._set_reasoning_visible(entry, not block.isVisible())
                return
            block = block.next()

    def _entry_at(self, pos: int) -> _Entry | None:
        rendered = self._entries[self._first_rendered :]
        starts = [e.start.position() if e.start is not None else 0 for e in rendered]
        i = bisect.bisect_right(starts, pos) - 1
        return rendered[i] if i >= 0 else None

    def _code_at(self, pos: int) -> str | None:
        """The code block under a position: the run of <pre> blocks around it."""
        block = self.document().findBlock(pos)
        if not block.blockFormat().nonBreakableLines():
            return None
        first = block
        while first.previous().isValid() and first.previous().blockFormat().nonBreakableLines():
            first = first.previous()
        lines = []
        while first.isValid() and first.blockFormat().nonBreakableLines():
            lines.append(first.text())
            first = first.next()
        return "\n".join(lines).replace("\u2028", "\n")


def _is_label(block) -> bool:
    text = block.text()
    return block.blockFormat().hasProperty(_REASONING_PROP) and text.endswith("Reasoning") and text[:1] in "▾▸"


def _user_html(text: str, tint: str = "") -> str:
    """The person's words as they typed them, on a tinted block (so their turns stand apart)."""
    background = f"; background-color: {tint}" if tint else ""
    return f'<p style="white-space: pre-wrap; margin-top: 0px{background}">{html.escape(text)}</p>'


def _stats_parts(message: Message) -> list[str]:
    stats = message.stats or {}
    parts: list[str] = []
    if stats.get("tokens"):
        parts.append(f"{stats['tokens']:,} tokens")
    if stats.get("tokens_per_s"):
        parts.append(f"{stats['tokens_per_s']:.1f} tokens/s")
    if stats.get("ttft") is not None:
        parts.append(f"first token {stats['ttft']:.2f} s")
    if stats and message.model:
        parts.append(message.model)
    adapters = describe_adapters(stats.get("adapters"))
    if adapters:
        parts.append(f"adapters: {adapters}")
    note = _FINISH_NOTES.get(str(stats.get("finish_reason")))
    if note:
        parts.append(note)
    checked = check_note(stats)  # structured output: whether the reply has the format asked for
    if checked:
        parts.append(checked)
    return parts
