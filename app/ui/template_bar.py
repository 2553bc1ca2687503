"""The bar that appears above the chat when the model in use has no usable chat template.

A base model (or one with a broken template) answers chat messages with nothing, or with
text that runs on past its turn. Rather than leave the person with an empty reply, the bar
says what is happening and offers the known chat templates; the choice is saved with the
model and the model reloads with it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.core.chat_templates import KNOWN_TEMPLATES


class TemplateBar(QFrame):
    templateChosen = Signal(str, str)  # model path, template key
    completionModeChosen = Signal()  # write in a notebook instead: no chat template needed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("templateBar")
        self.setAccessibleName("No chat template")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            "#templateBar { background: #fff4e5; border: 1px solid #e0a040; border-radius: 4px; }"
            " #templateBar QLabel { color: #3e2723; background: transparent; }"
        )
        self._path = ""
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel()
        self.label.setObjectName("templateBarText")
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # the model's name is untrusted text
        self.label.setWordWrap(True)
        outer.addWidget(self.label)
        layout = QHBoxLayout()  # the choice under the explanation, so neither is squeezed
        outer.addLayout(layout)
        self.combo = QComboBox()
        self.combo.setObjectName("templateChoice")
        self.combo.setAccessibleName("Chat template")
        for template in KNOWN_TEMPLATES:
            self.combo.addItem(template.label, template.key)
        layout.addWidget(self.combo)
        self.use_button = QPushButton("Use this template")
        self.use_button.setObjectName("templateUse")
        self.use_button.setAccessibleName("Use this chat template")
        self.use_button.clicked.connect(self._use)
        layout.addWidget(self.use_button)
        self.completion_button = QPushButton("Use completion mode instead")
        self.completion_button.setObjectName("templateCompletionMode")
        self.completion_button.setAccessibleName("Use completion mode instead")
        self.completion_button.setToolTip(
            "Open a notebook: the model continues the text you write, with no chat template"
        )
        self.completion_button.clicked.connect(self._completion_mode)
        layout.addWidget(self.completion_button)
        layout.addStretch(1)
        close = QPushButton("Dismiss")
        close.setObjectName("templateDismiss")
        close.setAccessibleName("Dismiss")
        close.clicked.connect(self.hide)
        layout.addWidget(close)
        self.hide()

    def show_for(self, path: str, name: str, problem: str) -> None:
        """Offer a template for the model at ``path``; an empty ``problem`` hides the bar."""
        self._path = path
        if not problem:
            self.hide()
            return
        self.label.setText(
            f"{name} has {problem}: it is a base model, trained to continue text rather than to "
            "answer in a chat, so its replies may be empty or run on. If you know its family, "
            "choose the chat template it was trained with, or let it continue your text in completion mode:"
        )
        self.show()

    def _use(self) -> None:
        key = self.combo.currentData()
        if self._path and isinstance(key, str):
            self.hide()
            self.templateChosen.emit(self._path, key)

    def _completion_mode(self) -> None:
        self.hide()
        self.completionModeChosen.emit()
