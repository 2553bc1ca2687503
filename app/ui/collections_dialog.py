"""Document collections: named folders of documents any conversation can switch on."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
)

from app.session import ChatSession
from app.ui.plain import ask


class CollectionsDialog(QDialog):
    """Tick a collection to use it in the current conversation; new ones come from a folder."""

    def __init__(self, session: ChatSession, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("collectionsDialog")
        self.setWindowTitle("Document collections")
        self.session = session
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(
                "Ticked collections are searched for this conversation's questions. "
                "A collection follows its folder: changed and new files are indexed again "
                "when a conversation that uses it is opened; removed files drop out."
            )
        )
        self.list = QListWidget()
        self.list.setObjectName("collectionList")
        self.list.setAccessibleName("Collections")
        layout.addWidget(self.list, 1)
        buttons = QHBoxLayout()
        self.new_button = QPushButton("New from folder…")
        self.new_button.setObjectName("newCollectionButton")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setObjectName("deleteCollectionButton")
        buttons.addWidget(self.new_button)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        search_row = QHBoxLayout()
        search_row.addWidget(QLabel("Search with:"))
        self.embedder = QComboBox()
        self.embedder.setObjectName("embeddingModel")
        self.embedder.setAccessibleName("Search with")
        self.embedder.setToolTip(
            "Keywords (BM25) need no extra model. An embedding model (a GGUF such as "
            "nomic-embed-text or bge) adds search by meaning, combined with keywords."
        )
        search_row.addWidget(self.embedder, 1)
        layout.addLayout(search_row)
        self.embedding_status = QLabel("")
        self.embedding_status.setObjectName("embeddingStatus")
        layout.addWidget(self.embedding_status)
        # files the last indexing left out, and why (a link out of the folder, an encrypted PDF…)
        self.skipped = QLabel("")
        self.skipped.setObjectName("skippedFiles")
        self.skipped.setTextFormat(Qt.TextFormat.PlainText)  # file names are not ours: never rich text
        self.skipped.setWordWrap(True)
        self.skipped.hide()
        layout.addWidget(self.skipped)
        session.docs.embeddingStatus.connect(self.embedding_status.setText)
        self.embedder.activated.connect(self._embedder_chosen)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.close)
        layout.addWidget(close)
        self.new_button.clicked.connect(self._new)
        self.delete_button.clicked.connect(self._delete)
        self.list.itemChanged.connect(self._toggled)
        session.docs.documentsChanged.connect(self.reload)
        session.docs.indexingFinished.connect(self._indexed)
        self.reload()

    def _indexed(self, report) -> None:
        self.reload()
        skipped = report.skipped if report is not None else []
        self.skipped.setText(
            "Not indexed: "
            + "; ".join(s.reason for s in skipped[:20])
            + (f"; and {len(skipped) - 20} more" if len(skipped) > 20 else "")
        )
        self.skipped.setVisible(bool(skipped))

    def reload(self) -> None:
        index = self.session.documents
        self.list.blockSignals(True)
        self.list.clear()
        if index is not None:
            enabled = set(index.enabled_collections(self.session.conversation.id))
            for c in index.collections():
                item = QListWidgetItem(f"{c.name} — {c.documents} documents" + (f" ({c.folder})" if c.folder else ""))
                item.setData(Qt.ItemDataRole.UserRole, c.id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if c.id in enabled else Qt.CheckState.Unchecked)
                self.list.addItem(item)
        self.list.blockSignals(False)
        self.embedder.blockSignals(True)
        self.embedder.clear()
        self.embedder.addItem("Keywords only (BM25)", None)
        for model in self.session.library.models():
            if model.exists:
                self.embedder.addItem(f"Keywords + meaning: {model.name}", model.path)
        at = self.embedder.findData(self.session.docs.embedding_model) if self.session.docs.embedding_model else 0
        self.embedder.setCurrentIndex(max(at, 0))
        self.embedder.blockSignals(False)
        self.new_button.setEnabled(index is not None)
        self.delete_button.setEnabled(index is not None and self.list.count() > 0)

    def _embedder_chosen(self, row: int) -> None:
        self.session.docs.set_embedding_model(self.embedder.itemData(row))

    def _toggled(self, item: QListWidgetItem) -> None:
        self.session.docs.set_collection_enabled(
            item.data(Qt.ItemDataRole.UserRole), item.checkState() == Qt.CheckState.Checked
        )

    def _new(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of documents")
        if not folder:
            return
        name, ok = QInputDialog.getText(self, "New collection", "Name:", text=folder.rstrip("/").rsplit("/", 1)[-1])
        if ok and name.strip():
            self.session.docs.create_collection(name.strip(), folder)
            self.reload()

    def _delete(self) -> None:
        item = self.list.currentItem()
        if item is None or self.session.documents is None:
            return
        text = f"Forget “{item.text()}”? Its index is removed; your files are not touched."
        if ask(self, "Delete collection", text):
            self.session.documents.delete_collection(item.data(Qt.ItemDataRole.UserRole))
            self.session.docs.documentsChanged.emit()
