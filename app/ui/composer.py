"""The message input: Enter (or Ctrl+Enter, per Preferences) sends, Shift+Enter always starts a
new line; it grows with its text."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QSizePolicy


class MessageInput(QPlainTextEdit):
    submitted = Signal()
    imagePasted = Signal(QImage)  # an image pasted into the box goes with the message (vision models)

    MAX_LINES = 10

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("messageInput")
        self.setAccessibleName("Message")
        self.setAccessibleDescription("What you send to the model")
        self.send_with = "enter"
        self.setPlaceholderText("Message the model — Enter sends, Shift+Enter adds a line")
        self.setTabChangesFocus(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().contentsChanged.connect(self._fit_height)
        self._fit_height()

    def _fit_height(self) -> None:
        """Two lines when empty, growing with the text up to MAX_LINES, then scrolling."""
        line = self.fontMetrics().lineSpacing()
        lines = max(2, min(self.MAX_LINES, int(self.document().size().height())))
        margins = self.contentsMargins()
        frame = int(self.document().documentMargin() * 2) + margins.top() + margins.bottom()
        self.setFixedHeight(lines * line + frame)

    def set_send_with(self, mode: str) -> None:
        """ "enter": Enter sends; "ctrl+enter": Enter adds a line and Ctrl+Enter sends."""
        self.send_with = mode
        self.setPlaceholderText(
            "Message the model — Ctrl+Enter sends, Enter adds a line"
            if mode == "ctrl+enter"
            else "Message the model — Enter sends, Shift+Enter adds a line"
        )

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return source.hasImage() or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        if source.hasImage():
            image = source.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.imagePasted.emit(image)
                return
        super().insertFromMimeData(source)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            mods = event.modifiers()
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            elif self.send_with == "enter" or mods & Qt.KeyboardModifier.ControlModifier:
                self.submitted.emit()
            else:
                self.insertPlainText("\n")
            event.accept()
            return
        super().keyPressEvent(event)
