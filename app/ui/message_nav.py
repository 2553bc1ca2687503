"""Moving through the chat message by message, from the keyboard.

Alt+Up / Alt+Down (Chat > Previous message / Next message) select the whole of the previous or
next message in the chat view and give the view the focus, so a screen reader reads the
selection and Ctrl+C copies it; the message is also announced ("You, message 3 of 8: …").
Alt+R reads the selected message again, Ctrl+Shift+M copies it as Markdown.

API:
    MessageNavigator(view)
        move(step) -> Message | None     -1 previous, +1 next (from the selection, or from the
                                          end of the chat when nothing is selected)
        last() -> Message | None          the newest message
        current() -> Message | None       the message the view's cursor is in
        read_current() -> str             announce it again; the text said
        copy_current() -> bool            its markdown onto the clipboard
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QGuiApplication, QTextCursor

from app.core.conversation import Message, Role
from app.ui.a11y import announce
from app.ui.chat_view import ChatView


def _speaker(message: Message) -> str:
    if message.role is Role.USER:
        return "You"
    if message.role is Role.SYSTEM:
        return "System"
    return message.model or "Assistant"


def _answer(message: Message) -> str:
    if message.role is not Role.ASSISTANT:
        return message.text
    from app.ui.stream_markdown import split_reasoning

    return split_reasoning(message.text)[1]


class MessageNavigator(QObject):
    def __init__(self, view: ChatView) -> None:
        super().__init__(view)
        self.view = view
        self._index: int | None = None  # in message_spans(), while the selection is ours

    def _current_index(self, spans) -> int | None:
        cursor = self.view.textCursor()
        if not cursor.hasSelection():
            return None
        pos = cursor.selectionStart()
        index = None
        for i, (_message, start, _end) in enumerate(spans):
            if start <= pos:
                index = i
        return index

    def current(self) -> Message | None:
        spans = self.view.message_spans()
        index = self._current_index(spans)
        return spans[index][0] if index is not None else None

    def move(self, step: int) -> Message | None:
        spans = self.view.message_spans()
        index = self._current_index(spans)
        # nothing selected yet: start at the newest message, whichever way
        target = len(spans) - 1 if index is None else index + step
        if target < 0 and self.view.load_earlier():  # older messages are rendered on demand
            return self.move_to_first_before(spans[0][0].id if spans else None)
        if not spans or not 0 <= target < len(spans):
            announce(self.view, "No earlier message" if step < 0 else "No later message")
            return None
        return self._select(spans, target)

    def move_to_first_before(self, message_id: str | None) -> Message | None:
        spans = self.view.message_spans()
        ids = [m.id for m, _s, _e in spans]
        target = ids.index(message_id) - 1 if message_id in ids else len(spans) - 1
        return self._select(spans, max(target, 0)) if spans else None

    def last(self) -> Message | None:
        spans = self.view.message_spans()
        return self._select(spans, len(spans) - 1) if spans else None

    def _select(self, spans, index: int) -> Message:
        message, start, end = spans[index]
        cursor = QTextCursor(self.view.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        self.view.setTextCursor(cursor)
        self.view.ensureCursorVisible()
        self.view.setFocus()
        self._say(message, index, len(spans))
        return message

    def _say(self, message: Message, index: int, count: int) -> str:
        from app.core.markdown_html import render_plain

        text = render_plain(_answer(message)).strip() if message.role is Role.ASSISTANT else message.text
        rated = {1: ", rated good", -1: ", rated bad"}.get(message.rating or 0, "")
        rated += ", the preferred version" if message.preferred else ""
        said = f"{_speaker(message)}, message {index + 1} of {count}{rated}: {text or 'no text'}"
        announce(self.view, said)
        return said

    def read_current(self) -> str:
        spans = self.view.message_spans()
        index = self._current_index(spans)
        if index is None:
            announce(self.view, "No message selected: Alt+Up selects the last one")
            return ""
        return self._say(spans[index][0], index, len(spans))

    def copy_current(self) -> bool:
        message = self.current()
        if message is None:
            return False
        QGuiApplication.clipboard().setText(_answer(message))
        self.view.copied.emit("Message copied as Markdown")
        return True
