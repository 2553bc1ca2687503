"""The notebook (completion mode): one text the person writes and the model continues.

Continue (Ctrl+Enter) sends the whole text, with no chat template, and the continuation
streams in at the end, tinted so the model's words stand apart; Stop (Esc) ends it, what
was written stays; Undo last continuation (Ctrl+Alt+Z) takes it back. The text is plain
text (a QPlainTextEdit: nothing in it is ever rendered), saved as the person types.
Drawing only: the NotebookController (app/session/notebook.py) does the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QTextEdit, QVBoxLayout, QWidget

from app.ui.a11y import announce, named

if TYPE_CHECKING:
    from app.session.notebook import NotebookController


class NotebookView(QWidget):
    SAVE_DELAY_MS = 500  # the text is saved after a pause in typing (and on Continue)

    def __init__(self, controller: NotebookController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        named(self, "notebookView", "Notebook")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.hint = QLabel(
            "Notebook — the model continues your text as it is, with no chat template (completion mode). "
            "Write a beginning and press Continue."
        )
        self.hint.setObjectName("notebookHint")
        self.hint.setTextFormat(Qt.TextFormat.PlainText)
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        self.editor = named(
            QPlainTextEdit(),
            "notebookText",
            "Notebook text",
            "Your text; the model's continuations are added at the end (Ctrl+Enter continues)",
        )
        self.editor.setPlaceholderText("Once upon a time…")
        self.editor.setTabChangesFocus(True)
        layout.addWidget(self.editor, 1)
        row = QHBoxLayout()
        self.continue_button = named(
            QPushButton("Continue"), "notebookContinue", "Continue", "The model continues the text (Ctrl+Enter)"
        )
        self.continue_button.setToolTip("The model continues the text (Ctrl+Enter)")
        self.stop_button = named(QPushButton("Stop"), "notebookStop", "Stop", "Stop the continuation (Esc)")
        self.stop_button.setToolTip("Stop the continuation (Esc)")
        self.stop_button.setEnabled(False)
        self.undo_button = named(
            QPushButton("Undo last continuation"),
            "notebookUndo",
            "Undo last continuation",
            "Take back what the model wrote last (Ctrl+Alt+Z)",
        )
        self.undo_button.setToolTip("Take back what the model wrote last (Ctrl+Alt+Z)")
        self.undo_button.setEnabled(False)
        for button in (self.continue_button, self.stop_button, self.undo_button):
            row.addWidget(button)
        self.status = QLabel("")
        self.status.setObjectName("notebookStatus")
        self.status.setTextFormat(Qt.TextFormat.PlainText)  # engine messages are not markup
        self.status.setWordWrap(True)
        row.addWidget(self.status, 1)
        layout.addLayout(row)

        self._filling = False  # text put in by the program, not typed
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(self.SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_text)
        self.editor.textChanged.connect(self._typed)
        self.continue_button.clicked.connect(self.continue_text)
        self.stop_button.clicked.connect(controller.stop)
        self.undo_button.clicked.connect(controller.undo)
        controller.textAppended.connect(self._append)
        controller.textReplaced.connect(self._replace)
        controller.generatingChanged.connect(self._generating)
        controller.statusText.connect(self.status.setText)
        controller.problem.connect(self._problem)
        controller.undoAvailable.connect(self.undo_button.setEnabled)

    # -- intents ----------------------------------------------------------------------------

    def continue_text(self) -> bool:
        self._save_timer.stop()
        return self.controller.continue_text(self.editor.toPlainText())

    def save_text(self) -> None:
        """Hand the text to the controller now (it saves what changed)."""
        self._save_timer.stop()
        if not self.controller.generating:
            self.controller.set_text(self.editor.toPlainText())
            self._tint()

    def show_notebook(self) -> None:
        """Show the open notebook's text (a notebook was opened)."""
        self._replace(self.controller.text())
        self.status.setText("")
        self._generating(self.controller.generating)
        self.undo_button.setEnabled(self.controller.can_undo())

    # -- drawing ----------------------------------------------------------------------------

    def _typed(self) -> None:
        if not self._filling:
            self._save_timer.start()

    def _append(self, text: str) -> None:
        self._filling = True
        try:
            bar = self.editor.verticalScrollBar()
            follow = bar.value() >= bar.maximum() - 4
            cursor = QTextCursor(self.editor.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(text)
            if follow:
                bar.setValue(bar.maximum())
        finally:
            self._filling = False
        self._tint(streaming=True)

    def _replace(self, text: str) -> None:
        self._save_timer.stop()
        self._filling = True
        try:
            self.editor.setPlainText(text)
            self.editor.moveCursor(QTextCursor.MoveOperation.End)
        finally:
            self._filling = False
        self._tint()

    def _tint(self, streaming: bool = False) -> None:
        """The model's continuations get a soft background (a mark, never part of the text)."""
        spans = self.controller.continuation_spans()
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(255, 214, 102, 70))
        selections = []
        for start, end in spans:
            selection = QTextEdit.ExtraSelection()
            cursor = QTextCursor(self.editor.document())
            cursor.setPosition(min(start, self.editor.document().characterCount() - 1))
            cursor.setPosition(min(end, self.editor.document().characterCount() - 1), QTextCursor.MoveMode.KeepAnchor)
            selection.cursor = cursor
            selection.format = fmt
            selections.append(selection)
        self.editor.setExtraSelections(selections)

    def _generating(self, on: bool) -> None:
        self.editor.setReadOnly(on)  # nothing typed meanwhile can be lost or interleaved
        self.continue_button.setEnabled(not on)
        self.stop_button.setEnabled(on)
        if not on:
            self._tint()
            if self.isVisible():
                announce(self.editor, f"Continuation finished. {self.status.text()}")

    def _problem(self, text: str) -> None:
        self.status.setText(text)
        announce(self.status, text, assertive=True)
