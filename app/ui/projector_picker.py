"""Manage models > Defaults > Image projector: the vision projector (mmproj .gguf) a model
loads with. Empty: the one found beside the model (shown), if any. A chosen file's header is
checked (a vision projector whose output size is the model's embedding size) before it is
kept; what is wrong is said under it."""

from __future__ import annotations

import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from app.core.gguf import GGUFError, read_gguf
from app.core.library import ModelInfo
from app.core.vision import projector_problem
from app.ui.a11y import named


class ProjectorPicker(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model: ModelInfo | None = None
        self._chosen: str | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.field = named(
            QLineEdit(), "projectorPath", "Image projector", "The vision projector this model loads with"
        )
        self.field.setReadOnly(True)
        self.choose_button = named(QPushButton("Choose…"), "chooseProjector", "Choose an image projector file")
        self.clear_button = named(
            QPushButton("Automatic"), "clearProjector", "Use the projector found beside the model"
        )
        row.addWidget(self.field, 1)
        row.addWidget(self.choose_button)
        row.addWidget(self.clear_button)
        outer.addLayout(row)
        self.problem = named(QLabel(""), "projectorProblem", "Image projector problem")
        self.problem.setWordWrap(True)
        self.problem.hide()
        outer.addWidget(self.problem)
        self.choose_button.clicked.connect(self._choose)
        self.clear_button.clicked.connect(self.clear)

    def value(self) -> str | None:
        return self._chosen

    def set_model(self, model: ModelInfo | None, chosen: str | None) -> None:
        self._model = model
        self._chosen = chosen
        self._show()

    def clear(self) -> None:
        self._chosen = None
        self.problem.hide()
        self._show()
        self.changed.emit()

    def choose(self, path: str) -> bool:
        """Keep ``path`` when its header fits the model; otherwise say why (and keep the old)."""
        problem = self._problem(path)
        if problem:
            self.problem.setText(f"{os.path.basename(path)} cannot be used: {problem}.")
            self.problem.show()
            return False
        self.problem.hide()
        self._chosen = path
        self._show()
        self.changed.emit()
        return True

    def _problem(self, path: str) -> str | None:
        try:
            meta = read_gguf(path)  # a header only (bounded), as when a model is added
        except (GGUFError, OSError) as exc:
            return str(getattr(exc, "reason", None) or exc)
        n_embd = None
        if self._model is not None:
            try:
                n_embd = read_gguf(self._model.path).embedding_length
            except (GGUFError, OSError):
                n_embd = None
        return projector_problem(meta, n_embd)

    def _choose(self) -> None:
        start = os.path.dirname(self._model.path) if self._model is not None else ""
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose an image projector", start, "Projectors (*.gguf);;All files (*)"
        )
        if path:
            self.choose(path)

    def _show(self) -> None:
        found = self._model.projector if self._model is not None else None
        if self._chosen:
            self.field.setText(self._chosen)
        elif found:
            self.field.setText(f"Found beside the model: {os.path.basename(found)}")
        else:
            self.field.setText("None — this model reads text only")
        self.clear_button.setEnabled(bool(self._chosen))
