"""The conversation as a read-only rich text view.

Streaming appends only the new text at the end of the document, so the cost of a batch
does not grow with the conversation. Model output is inserted as plain text (never parsed
as HTML), and the view never follows links or loads resources by itself.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QTextBrowser

from app.core.conversation import Message, MessageState, Role

_STATE_NOTES = {
    MessageState.STOPPED: "⏹ stopped",
    MessageState.INTERRUPTED: "⚠ interrupted — the engine stopped before the reply was finished",
    MessageState.FAILED: "⚠ failed",
}


class ChatView(QTextBrowser):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setAccessibleName("chatView")
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)  # an undo stack per streamed batch only costs memory
        self._body = QTextCharFormat()
        self._header = QTextCharFormat()
        self._header.setFontWeight(QFont.Weight.Bold)
        self._note = QTextCharFormat()
        self._note.setFontItalic(True)
        self._note.setForeground(QColor("#888888"))
        self._empty = True

    def _end_cursor(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def _at_bottom(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - 4

    def _follow(self, was_at_bottom: bool) -> None:
        if was_at_bottom:
            bar = self.verticalScrollBar()
            bar.setValue(bar.maximum())

    def add_message(self, message: Message) -> None:
        follow = self._at_bottom()
        cursor = self._end_cursor()
        if not self._empty:
            cursor.insertBlock()
            cursor.insertBlock()
        self._empty = False
        who = "You" if message.role is Role.USER else (message.model or "Assistant")
        cursor.insertText(who, self._header)
        cursor.insertBlock()
        cursor.insertText(message.text, self._body)
        if message.state in _STATE_NOTES:
            self._insert_note(cursor, message.state)
        self._follow(follow)

    def append_text(self, text: str) -> None:
        """Add streamed text to the last message."""
        follow = self._at_bottom()
        self._end_cursor().insertText(text, self._body)
        self._follow(follow)

    def finish_message(self, message: Message) -> None:
        if message.state in _STATE_NOTES:
            follow = self._at_bottom()
            self._insert_note(self._end_cursor(), message.state)
            self._follow(follow)

    def _insert_note(self, cursor: QTextCursor, state: MessageState) -> None:
        cursor.insertBlock()
        cursor.insertText(_STATE_NOTES[state], self._note)
        cursor.setCharFormat(self._body)

    def show_conversation(self, messages: list[Message]) -> None:
        self.clear()
        self._empty = True
        for message in messages:
            self.add_message(message)
