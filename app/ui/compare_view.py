"""View > Compare…: one prompt, 2–4 contenders (a model × a preset or the current settings),
their replies side by side with their speed and memory, a blind vote, and any column
continued as a chat. The logic is app/session/compare.py; this window draws it.

API:
    CompareWindow(controller, parent)   objectName "compareWindow"
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.session.compare import CURRENT, LABELS, MAX_CONTENDERS, Column, CompareController, Contender
from app.ui.a11y import announce, named


def stats_line(column: Column) -> str:
    """Tokens, tok/s, time to first token, load time and peak RAM, in words for the column."""
    stats = column.stats
    parts = [f"{stats.get('tokens', 0)} tokens"]
    rate = stats.get("tokens_per_s")
    parts.append(f"{rate:.1f} tok/s" if isinstance(rate, (int, float)) else "tok/s n/a")
    ttft = stats.get("ttft")
    parts.append(f"first token {ttft:.2f} s" if isinstance(ttft, (int, float)) else "first token n/a")
    if column.remote:
        parts.append("load n/a")
    elif column.load_seconds is None:
        parts.append("already loaded")
    else:
        parts.append(f"load {column.load_seconds:.2f} s")
    parts.append(f"peak RAM {column.peak_rss / 2**20:,.0f} MB" if column.peak_rss else "peak RAM n/a")
    return " · ".join(parts)


class _ContenderRow(QWidget):
    def __init__(self, index: int, models: list[tuple[str, str]], presets: list[str], current: str | None) -> None:
        super().__init__()
        number = index + 1  # numbers, not letters: in blind mode the columns' letters are drawn at random
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(f"{number}:")
        self.model = named(QComboBox(), f"compareModel{number}", f"Contender {number} model")
        for path, name in models:
            self.model.addItem(name, path)
        at = self.model.findData(current) if current else -1
        self.model.setCurrentIndex(max(at, 0))
        self.preset = named(QComboBox(), f"comparePreset{number}", f"Contender {number} preset")
        self.preset.addItem("Current settings", CURRENT)
        for name in presets:
            self.preset.addItem(name, name)
        self.label.setBuddy(self.model)
        layout.addWidget(self.label)
        layout.addWidget(self.model, 2)
        layout.addWidget(self.preset, 1)

    def contender(self) -> Contender | None:
        path = self.model.currentData()
        return Contender(path, self.preset.currentData() or CURRENT) if path else None


class _ColumnView(QFrame):
    def __init__(self, index: int) -> None:
        super().__init__()
        letter = LABELS[index]
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        self.title = named(QLabel(letter), f"compareTitle{letter}", f"Column {letter}")
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # model names come from files and servers
        self.title.setWordWrap(True)
        self.state = named(QLabel("Waiting"), f"compareState{letter}", f"Column {letter} state")
        self.state.setTextFormat(Qt.TextFormat.PlainText)  # errors may quote a server's words
        self.state.setWordWrap(True)
        self.text = named(QPlainTextEdit(), f"compareText{letter}", f"Reply {letter}")
        self.text.setReadOnly(True)  # plain text: model output is never rendered as HTML here
        self.text.setTabChangesFocus(True)
        self.stats = named(QLabel(""), f"compareStats{letter}", f"Reply {letter} statistics")
        self.stats.setTextFormat(Qt.TextFormat.PlainText)
        self.stats.setWordWrap(True)
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.stats.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.vote = named(QPushButton(f"{letter} is better"), f"compareVote{letter}", f"{letter} is better")
        self.carry_on = named(
            QPushButton("Continue in chat"), f"compareContinue{letter}", f"Continue reply {letter} in the chat"
        )
        self.vote.setEnabled(False)
        self.carry_on.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.vote)
        buttons.addWidget(self.carry_on)
        for widget in (self.title, self.state, self.text, self.stats):
            layout.addWidget(widget)
        layout.addLayout(buttons)


class CompareWindow(QDialog):
    def __init__(self, controller: CompareController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareWindow")
        self.setWindowTitle("Compare models and settings")
        self.setModal(False)
        self.resize(1100, 700)
        self.controller = controller
        layout = QVBoxLayout(self)

        self.rows_box = QVBoxLayout()
        self.rows: list[_ContenderRow] = []
        layout.addWidget(QLabel("Contenders (a model and a preset or the current settings each):"))
        layout.addLayout(self.rows_box)
        row_buttons = QHBoxLayout()
        self.add_button = named(QPushButton("Add contender"), "compareAdd", "Add a contender")
        self.remove_button = named(QPushButton("Remove last"), "compareRemove", "Remove the last contender")
        self.add_button.clicked.connect(self._add_row)
        self.remove_button.clicked.connect(self._remove_row)
        row_buttons.addWidget(self.add_button)
        row_buttons.addWidget(self.remove_button)
        row_buttons.addStretch(1)
        layout.addLayout(row_buttons)

        self.prompt = named(QPlainTextEdit(), "comparePrompt", "Prompt for every contender")
        self.prompt.setPlaceholderText("Type one prompt for every contender…")
        self.prompt.setTabChangesFocus(True)
        self.prompt.setMaximumHeight(90)
        layout.addWidget(self.prompt)
        options = QHBoxLayout()
        self.rerun = named(
            QCheckBox("Re-run the last turn of the open conversation instead"),
            "compareRerun",
            "Re-run the last turn of the open conversation",
        )
        self.blind = named(
            QCheckBox("Blind: shuffle and hide the names until I vote"),
            "compareBlind",
            "Blind mode: columns in a random order, names hidden until the vote",
        )
        self.start_button = named(QPushButton("Compare"), "compareStart", "Start the comparison")
        self.start_button.setToolTip("Run every contender on the prompt (Ctrl+Enter)")
        self.stop_button = named(QPushButton("Stop"), "compareStop", "Stop the comparison")
        self.stop_button.setEnabled(False)
        self.rerun.toggled.connect(lambda on: self.prompt.setEnabled(not on))
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(controller.stop)
        for widget in (self.rerun, self.blind):
            options.addWidget(widget)
        options.addStretch(1)
        options.addWidget(self.start_button)
        options.addWidget(self.stop_button)
        layout.addLayout(options)
        self.progress = named(QLabel(""), "compareProgress", "Comparison progress")
        self.progress.setTextFormat(Qt.TextFormat.PlainText)
        self.progress.setWordWrap(True)
        layout.addWidget(self.progress)

        self.columns_box = QGridLayout()
        layout.addLayout(self.columns_box, 1)
        self.columns: list[_ColumnView] = []

        shortcut = QShortcut(QKeySequence("Ctrl+Return"), self)
        shortcut.setWhatsThis("Compare window: start the comparison")
        shortcut.activated.connect(self.start)
        controller.columnsReset.connect(self._reset_columns)
        controller.columnText.connect(self._on_text)
        controller.columnChanged.connect(self._on_changed)
        controller.progress.connect(self._on_progress)
        controller.runningChanged.connect(self._on_running)
        controller.saved.connect(lambda _id: self._enable_results())
        controller.voted.connect(self._on_voted)
        controller.problem.connect(self._on_problem)
        self.refresh_choices()

    # -- contenders -------------------------------------------------------------------------

    def refresh_choices(self) -> None:
        """Fill the pickers anew (models or presets changed); two rows to start with."""
        wanted = max(len(self.rows), 2)
        while self.rows:
            self._remove_row(force=True)
        for _ in range(wanted):
            self._add_row()

    def _add_row(self) -> None:
        if len(self.rows) >= MAX_CONTENDERS:
            return
        session = self.controller.session
        current = session.current_model.path if session.current_model is not None else None
        row = _ContenderRow(len(self.rows), self.controller.model_choices(), self.controller.preset_choices(), current)
        self.rows.append(row)
        self.rows_box.addWidget(row)
        self._row_buttons()

    def _remove_row(self, force: bool = False) -> None:
        if not self.rows or (len(self.rows) <= 2 and not force):
            return
        row = self.rows.pop()
        self.rows_box.removeWidget(row)
        row.deleteLater()
        self._row_buttons()

    def _row_buttons(self) -> None:
        self.add_button.setEnabled(len(self.rows) < MAX_CONTENDERS)
        self.remove_button.setEnabled(len(self.rows) > 2)

    def contenders(self) -> list[Contender]:
        return [c for c in (row.contender() for row in self.rows) if c is not None]

    # -- the run ----------------------------------------------------------------------------

    def start(self) -> None:
        self.controller.start(
            self.contenders(),
            self.prompt.toPlainText(),
            rerun_last=self.rerun.isChecked(),
            blind=self.blind.isChecked(),
        )

    def _reset_columns(self) -> None:
        for view in self.columns:
            self.columns_box.removeWidget(view)
            view.deleteLater()
        self.columns = []
        for index in range(len(self.controller.columns)):
            view = _ColumnView(index)
            view.vote.clicked.connect(lambda _=False, i=index: self.controller.vote(i))
            view.carry_on.clicked.connect(lambda _=False, i=index: self._continue(i))
            self.columns.append(view)
            self.columns_box.addWidget(view, 0, index)
            self._on_changed(index)

    def _on_text(self, index: int, text: str) -> None:
        editor = self.columns[index].text
        cursor = editor.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)

    def _on_changed(self, index: int) -> None:
        if index >= len(self.columns):
            return
        column = self.controller.columns[index]
        view = self.columns[index]
        view.title.setText(self.controller.name_of(index))
        view.title.setAccessibleName(f"Column {self.controller.name_of(index)}")
        words = {
            "waiting": "Waiting for its turn",
            "loading": "Loading the model…",
            "writing": "Writing…",
            "done": "Done",
            "stopped": "Stopped",
            "failed": "Failed",
        }[column.state]
        view.state.setText(f"{words}: {column.error}" if column.error else words)
        if column.ended:
            view.stats.setText(stats_line(column))

    def _on_progress(self, text: str) -> None:
        self.progress.setText(text)
        announce(self.progress, text)

    def _on_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for row in self.rows:
            row.setEnabled(not running)

    def _enable_results(self) -> None:
        for index, view in enumerate(self.columns):
            has_text = bool(self.controller.columns[index].text)
            view.vote.setEnabled(has_text)
            view.carry_on.setEnabled(True)

    def _on_voted(self, winner: int) -> None:
        for index, view in enumerate(self.columns):
            self._on_changed(index)
            view.vote.setEnabled(False)
            if index == winner:
                view.state.setText(view.state.text() + " — your choice")

    def _on_problem(self, text: str) -> None:
        self.progress.setText(text)
        announce(self.progress, text, assertive=True)

    def _continue(self, index: int) -> None:
        if self.controller.continue_in_chat(index):
            parent = self.parentWidget()
            if parent is not None:
                parent.raise_()
                parent.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.controller.close()
        super().closeEvent(event)

    def reject(self) -> None:  # Esc: stop first; a second Esc (nothing running) closes
        if self.controller.running:
            self.controller.stop()
            return
        self.controller.close()
        super().reject()
