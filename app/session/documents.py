"""Chat with your documents: what is attached to the open conversation, background indexing,
and the embedding model that makes retrieval hybrid.

One object with one job. It never touches the engine directly: it asks for an embedding model
or for vectors through signals the chat session connects to the engine worker, and it is
told when the engine is idle. The documents package (numpy, the file readers) is imported
where it is first used: the window's first frame needs none of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from app.core.config import AppConfig

if TYPE_CHECKING:
    import numpy as np

    from app.core.documents.index import DocumentIndex

log = logging.getLogger(__name__)


class DocumentsController(QObject):
    documentsChanged = Signal()  # attachments or the retrieval switch of this conversation
    indexingProgress = Signal(int, int, str)  # done, total, file name (from the indexing thread)
    indexingFinished = Signal(object)  # IndexReport, or None when it failed (message sent)
    embeddingStatus = Signal(str)  # how far hybrid retrieval has got, in words
    errorMessage = Signal(str)
    # requests for the engine (the session connects them to its worker)
    loadEmbedder = Signal(object)  # model path, or None: no embedding model
    embedPassages = Signal(object, object, str)  # passage ids, texts, tag ("passages")

    def __init__(self, config: AppConfig, conversation_id: Callable[[], str], engine_idle: Callable[[], bool]) -> None:
        super().__init__()
        self.config = config
        self._conversation_id = conversation_id
        self._engine_idle = engine_idle
        self.index: DocumentIndex | None = None  # set by the app: chat with your documents
        self.sources_budget = 1500  # tokens of retrieved passages per question
        self.embedding_model: str | None = None  # a GGUF used in embedding mode: hybrid retrieval
        self.embedder_ready = False
        self._embedding = False  # a batch of passages is with the engine
        self._indexing_cancel = threading.Event()
        self._indexing: threading.Thread | None = None
        self.indexingFinished.connect(lambda _report: self.embed_missing())

    # -- this conversation's documents ---------------------------------------------------

    def attached_documents(self) -> list[Any]:
        if self.index is None:
            return []
        coll = self.index.attachments_collection(self._conversation_id(), create=False)
        return self.index.documents(coll.id) if coll is not None else []

    def retrieval_enabled(self) -> bool:
        return self.index is not None and self.index.retrieval_enabled(self._conversation_id())

    def set_retrieval_enabled(self, enabled: bool) -> None:
        if self.index is not None:
            self.index.set_retrieval_enabled(self._conversation_id(), enabled)
            self.documentsChanged.emit()

    def has_documents(self) -> bool:
        """Whether a question in this conversation would retrieve anything."""
        if self.index is None:
            return False
        from app.core.documents.index import DocumentIndexError

        try:
            return bool(self.index.conversation_collection_ids(self._conversation_id()))
        except DocumentIndexError:
            return False

    def set_collection_enabled(self, collection_id: int, enabled: bool) -> None:
        if self.index is not None:
            self.index.enable_collection(self._conversation_id(), collection_id, enabled)
            self.documentsChanged.emit()

    # -- indexing ------------------------------------------------------------------------

    @property
    def indexing(self) -> bool:
        return self._indexing is not None and self._indexing.is_alive()

    def attach_files(self, files: list[str]) -> bool:
        """Index files for this conversation on a background thread; progress and the report
        (with every skipped file and why) arrive as signals."""
        if self.index is None or not files:
            return False
        index, conversation_id = self.index, self._conversation_id()
        return self._start_indexing(
            lambda progress, cancel: index.attach_files(conversation_id, files, progress, cancel)
        )

    def create_collection(self, name: str, folder: str) -> bool:
        """A named collection filled from a folder (indexed in the background), switched on
        for this conversation; other conversations can switch it on too."""
        if self.index is None or self.indexing:
            return False
        from app.core.documents.index import DocumentIndexError

        try:
            collection = self.index.create_collection(name, folder)
        except DocumentIndexError as exc:
            self.errorMessage.emit(str(exc))
            return False
        self.index.enable_collection(self._conversation_id(), collection.id, True)
        self.documentsChanged.emit()
        index = self.index
        return self._start_indexing(lambda progress, cancel: index.sync_collection(collection.id, progress, cancel))

    def sync_collections(self) -> bool:
        """Re-index this conversation's folder collections: changed files (by time and hash)
        again, removed ones dropped. Runs when a conversation is opened."""
        if self.index is None or self.indexing:
            return False
        index = self.index
        enabled = index.enabled_collections(self._conversation_id())
        ids = [c.id for c in index.collections() if c.folder is not None and c.id in enabled]
        if not ids:
            return False
        from app.core.documents.index import DocumentIndexError

        def job(progress: Callable[..., Any], cancel: Callable[[], bool]) -> Any:
            report = None
            for cid in ids:
                try:
                    part = index.sync_collection(cid, progress, cancel)
                except DocumentIndexError as exc:  # e.g. the folder's drive is unplugged: keep its index
                    self.errorMessage.emit(str(exc))
                    continue
                report = part if report is None else report.merge(part)
            return report

        return self._start_indexing(job)

    def _start_indexing(self, job: Callable[[Callable[..., Any], Callable[[], bool]], Any]) -> bool:
        if self.indexing:
            self.errorMessage.emit("Documents are still being indexed; try again when that has finished.")
            return False
        self._indexing_cancel.clear()
        from app.core.documents.index import DocumentIndexError

        def work() -> None:
            # indexingFinished is what ends the progress bar: it is sent whatever happens
            report = None
            try:
                report = job(self.indexingProgress.emit, self._indexing_cancel.is_set)
            except (DocumentIndexError, OSError) as exc:
                self.errorMessage.emit(f"Could not index the files: {exc}")
            except Exception as exc:  # a bug must not leave the progress bar up forever
                log.exception("indexing failed")
                self.errorMessage.emit(f"Could not index the files: {type(exc).__name__}: {exc}")
            finally:
                self.indexingFinished.emit(report)

        self._indexing = threading.Thread(target=work, name="hearth-indexing", daemon=True)
        self._indexing.start()
        return True

    def cancel_indexing(self) -> None:
        self._indexing_cancel.set()

    def shutdown(self) -> None:
        self._indexing_cancel.set()
        if self._indexing is not None:
            self._indexing.join(2.0)
        if self.index is not None:
            self.index.close()

    # -- hybrid retrieval: an embedding model in the engine --------------------------------

    def vector_tag(self) -> str:
        return Path(self.embedding_model).name if self.embedding_model else "default"

    def set_embedding_model(self, model_path: str | None) -> None:
        """Use this GGUF in embedding mode (vector + keyword search), or None: keywords only."""
        self.embedding_model = model_path
        self.embedder_ready = False
        self.config.set("embedding_model", model_path)
        self.loadEmbedder.emit(model_path)
        self.embeddingStatus.emit("Loading the embedding model…" if model_path else "Keyword search (BM25)")

    def reload_embedder(self, _version: str = "") -> None:
        """The engine (re)started: load the embedding model again if one is set."""
        if self.embedding_model is None:
            self.embedding_model = self.config.get("embedding_model")
        if self.embedding_model:
            self.embedder_ready = False
            self.loadEmbedder.emit(self.embedding_model)

    def on_embedder_loaded(self, dims: int) -> None:
        self.embedder_ready = dims > 0
        self._embedding = False
        self.embed_missing()

    def on_embedder_failed(self, message: str) -> None:
        self._embedding = False
        self.embedder_ready = False
        self.errorMessage.emit(f"{message} Retrieval uses keyword search only.")
        self.embeddingStatus.emit("Keyword search (BM25) — the embedding model is not available")

    def embed_missing(self) -> None:
        """Embed passages that have no vector yet, a small batch at a time, when the engine is idle."""
        if not self.embedder_ready or self._embedding or self.index is None or not self._engine_idle():
            return
        ids = [c.id for c in self.index.collections(include_attachments=True)]
        missing = self.index.passages_missing_vectors(ids, model=self.vector_tag(), limit=16) if ids else []
        if not missing:
            self.embeddingStatus.emit("Hybrid search: every passage is embedded")
            return
        self._embedding = True
        self.embedPassages.emit([pid for pid, _ in missing], [text for _, text in missing], "passages")

    def on_passages_embedded(self, ids: list[Any], vectors: list[Any]) -> None:
        import numpy as np

        self._embedding = False
        if self.index is not None and ids:
            self.index.store_vectors(ids, np.asarray(vectors, dtype=np.float32), model=self.vector_tag())
            self.embeddingStatus.emit(f"Hybrid search: embedded {len(ids)} more passages…")
        self.embed_missing()

    # -- retrieval for a question ----------------------------------------------------------

    def with_sources(
        self, messages: list[dict[str, str]], question: str, query_vector: np.ndarray | None = None
    ) -> tuple[list[dict[str, str]], list[Any]]:
        """The messages with the passages that best match the question in front of it,
        numbered to cite, and those citations (none when nothing matched)."""
        if self.index is None or not question:
            return messages, []
        from app.core.documents.index import DocumentIndexError
        from app.core.documents.retrieval import build_context, retrieve, with_context

        try:
            ids = self.index.conversation_collection_ids(self._conversation_id())
            if not ids:
                return messages, []
            hits = retrieve(
                self.index,
                question,
                ids,
                k=6,
                token_budget=self.sources_budget,
                query_vector=query_vector,
                vector_model=self.vector_tag(),
            )
        except DocumentIndexError as exc:
            self.errorMessage.emit(f"Your documents could not be searched: {exc}")
            return messages, []
        if not hits:
            return messages, []
        block, citations = build_context(hits)
        return with_context(messages, block), citations


def sources_stats(reply_text: str, citations: list[Any]) -> list[dict[str, Any]]:
    """What a finished reply records about its sources: each one, and whether it was cited."""
    from app.core.documents.retrieval import cited_numbers

    used = set(cited_numbers(reply_text, len(citations)))
    return [{"number": c.number, "label": c.label, "text": c.text, "cited": c.number in used} for c in citations]
