"""Documents, folded into one control: the composer's Attach button opens this popover with
Attach files…, Collections…, Use documents and the sources budget. The first window stays
calm (one button instead of a row of four), and everything is still a Tab away once open.

API:
    DocumentsPopover(parent=None)       a Qt.Popup frame; its controls are attributes
        attach_button, collections_button, use_documents, sources_budget, sources_budget_label
        popup_below(widget)             show under (or above) a widget, focus on Attach files…
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QCheckBox, QFrame, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from app.ui.a11y import named


class DocumentsPopover(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        named(self, "documentsPopover", "Documents")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        self.attach_button = QPushButton("Attach files…")
        self.attach_button.setObjectName("attachButton")
        self.attach_button.setToolTip(
            "Add documents this conversation can answer from (.txt, .md, .pdf, .docx, .html, code)"
        )
        self.collections_button = QPushButton("Collections…")
        self.collections_button.setObjectName("collectionsButton")
        self.collections_button.setToolTip("Folders of documents that any conversation can use")
        buttons = QHBoxLayout()
        buttons.addWidget(self.attach_button)
        buttons.addWidget(self.collections_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.use_documents = QCheckBox("Use documents")
        self.use_documents.setObjectName("useDocuments")
        self.use_documents.setToolTip("Look up the passages that best match each question and let the model cite them")
        layout.addWidget(self.use_documents)
        budget = QHBoxLayout()
        self.sources_budget_label = QLabel("Sources &budget:")
        self.sources_budget_label.setObjectName("sourcesBudgetLabel")
        self.sources_budget = named(
            QSpinBox(),
            "sourcesBudget",
            "Sources budget",
            "How much of the context retrieved passages may use (counted in the context meter)",
        )
        self.sources_budget_label.setBuddy(self.sources_budget)
        self.sources_budget.setRange(100, 16000)
        self.sources_budget.setSingleStep(250)
        self.sources_budget.setSuffix(" tokens")
        self.sources_budget.setToolTip(self.sources_budget.accessibleDescription())
        budget.addWidget(self.sources_budget_label)
        budget.addWidget(self.sources_budget)
        budget.addStretch(1)
        layout.addLayout(budget)
        self._anchor: QWidget | None = None

    def popup_below(self, widget: QWidget) -> None:
        """Open next to ``widget`` (above it when there is no room below), on screen."""
        self._anchor = widget
        self.adjustSize()
        pos = widget.mapToGlobal(QPoint(0, widget.height()))
        screen = widget.screen().availableGeometry()
        if pos.y() + self.height() > screen.bottom():
            pos = widget.mapToGlobal(QPoint(0, -self.height()))
        pos.setX(max(screen.left(), min(pos.x(), screen.right() - self.width())))
        self.move(pos)
        self.show()
        first = next((w for w in (self.attach_button, self.use_documents) if w.isEnabled()), None)
        (first or self).setFocus()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.hide()
            event.accept()
            return
        super().keyPressEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().hideEvent(event)
        if self._anchor is not None and self._anchor.isVisible():
            self._anchor.setFocus()  # back where the keyboard was
