"""The chat session: the one object that turns the user's intents into engine requests.

Widgets call its intent methods (send, stop, select_model, restart_engine) and draw from
its signals; the engine worker lives on its own thread and is reached only through
queued signals, except for the thread-safe ``cancel``.
"""

from __future__ import annotations

import enum
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from PySide6.QtCore import QObject, QThread, Signal

from app.core.config import AppConfig
from app.core.connections import Connection, ConnectionStore
from app.core.conversation import Conversation, Message, MessageState, Role
from app.core.gguf import GGUFError
from app.core.library import (
    LibraryError,
    ModelDefaults,
    ModelInfo,
    ModelLibrary,
    ScanResult,
    read_demo_model,
    read_model,
    scan_models_dir,
)
from app.core.presets import effective_system_prompt, few_shot_turns
from app.core.remote_models import parse_remote_ref, remote_model_info
from app.core.settings import LoadSettings, SamplingSettings, escape_visible
from app.core.store import ConversationNotFound, ConversationStore, SearchHit, StoreError
from app.engine import protocol as p
from app.engine.worker import EngineWorker
from app.import_worker import ImportResult, ImportWorker

if TYPE_CHECKING:
    import numpy as np  # for annotations; at run time numpy is imported where it is used

    # Documents (numpy, the readers) and export (markdown-it, Pygments) are imported where they
    # are used: the window's first frame needs neither (tests/test_startup.py).
    from app.core.documents.index import DocumentIndex


class EngineState(str, enum.Enum):
    STARTING = "starting"
    NO_MODEL = "no_model"
    LOADING = "loading"
    READY = "ready"
    GENERATING = "generating"
    CRASHED = "crashed"
    CLOSED = "closed"


class ChatSession(QObject):
    stateChanged = Signal(str)  # EngineState value
    statusText = Signal(str)
    messageAdded = Signal(object)  # Message
    replyText = Signal(str)  # new text for the last (assistant) message
    replyFinished = Signal(object)  # the finished Message (state and stats set)
    errorMessage = Signal(str)  # a problem the user should read; nothing was lost
    engineCrashed = Signal(str)
    modelsChanged = Signal()
    currentModelChanged = Signal(str)  # path
    conversationOpened = Signal(object)  # Conversation now shown
    conversationsChanged = Signal()  # titles, order or membership of the list changed
    conversationDeleted = Signal(str, str)  # id, title: the window offers Undo
    infoMessage = Signal(str)  # something worth telling that is not a problem
    importFinished = Signal(int)  # conversations imported (0: none, and a message said why)
    storeError = Signal(str)  # emitted from the store's writer thread; Qt queues it to us
    contextChanged = Signal(int, int)  # tokens used by the conversation (+ draft), context size
    documentsChanged = Signal()  # attachments or the retrieval switch of this conversation
    indexingProgress = Signal(int, int, str)  # done, total, file name (from the indexing thread)
    indexingFinished = Signal(object)  # IndexReport, or None when it failed (message sent)
    _offThreadDone = Signal(object, object, object)  # on_done, result, error (from a header reader)
    # model path, and why it has no usable chat template ("" when it has one, or one was chosen)
    templateStatus = Signal(str, str)

    SAVE_INTERVAL = 0.5  # seconds between saves of a streaming reply (what a crash can lose)

    # queued requests to the worker thread
    _startEngine = Signal()
    _restartEngine = Signal()
    _load = Signal(object)
    _chat = Signal(object, object)
    _shutdown = Signal()
    _unload = Signal()
    _countPrompt = Signal(object, int)
    _loadEmbedder = Signal(object)
    _embed = Signal(object, object, str)
    embeddingStatus = Signal(str)  # how far hybrid retrieval has got, in words

    def __init__(
        self,
        library: ModelLibrary,
        config: AppConfig,
        store: ConversationStore,
        settings: SamplingSettings | None = None,
        load_settings: LoadSettings | None = None,
        flush_interval: float = 0.04,
    ) -> None:
        super().__init__()
        self.library = library
        self.config = config
        self.store = store
        self.settings = settings or SamplingSettings()
        self.load_settings = load_settings or LoadSettings()
        self.conversation = Conversation()
        self.few_shot: list[tuple[str, str]] = []  # example exchanges sent as real prior turns
        self.default_model: str | None = None  # Preferences: load this one at start
        self.state = EngineState.STARTING
        self.current_model: ModelInfo | None = None
        self.loaded_info: p.Loaded | None = None
        self._reply: Message | None = None
        self._reply_saved_at = 0.0
        self._saved = False  # whether the open conversation has a row in the store yet
        self._deleted: Conversation | None = None  # the last deleted conversation, for Undo
        self._importer: ImportWorker | None = None  # reads import files off the GUI thread
        self._count_serial = 0
        self._prompt_tokens = 0  # of the reply being written
        self.context_used = 0
        self.documents: DocumentIndex | None = None  # set by the app: chat with your documents
        self.sources_budget = 1500  # tokens of retrieved passages per question
        self._citations: list = []  # sources given to the reply being written
        self._indexing_cancel = threading.Event()
        self._indexing: threading.Thread | None = None
        self.embedding_model: str | None = None  # a GGUF used in embedding mode: hybrid retrieval
        self._embedder_ready = False
        self._embedding = False  # a batch of passages is with the engine
        # the embedded question, while a reply is being prepared (False: keyword search only this time)
        self._query_vector: np.ndarray | Literal[False] | None = None
        self._pending_send = False
        self.connections = ConnectionStore()  # servers whose models the picker offers too
        self.remote_models: dict[str, ModelInfo] = {}  # by remote:// reference, as last listed
        self.remote_status: dict[str, str] = {}  # connection name -> why it did not answer ("" ok)
        self.context_exact = True  # False: the context meter shows a remote server's estimate (≈)
        self._wanted_model: str | None = None  # the load asked for last, until it ends
        self._loading_path: str | None = None  # the load the engine is working on
        self._stop_requested = False

        self._thread = QThread()
        self._thread.setObjectName("engine-worker")
        self.worker = EngineWorker(flush_interval=flush_interval)
        self.worker.moveToThread(self._thread)
        self._startEngine.connect(self.worker.start_engine)
        self._restartEngine.connect(self.worker.restart)
        self._load.connect(self.worker.load)
        self._chat.connect(self.worker.chat)
        self._shutdown.connect(self.worker.shutdown)
        self._unload.connect(self.worker.unload)
        self._countPrompt.connect(self.worker.count_prompt)
        self.worker.promptCounted.connect(self._on_prompt_counted)
        self.worker.promptInfo.connect(self._on_prompt_info)
        self.worker.streamStats.connect(self._on_stream_stats)
        self._loadEmbedder.connect(self.worker.load_embedder)
        self._embed.connect(self.worker.embed)
        self.worker.embedderLoaded.connect(self._on_embedder_loaded)
        self.worker.embedderFailed.connect(self._on_embedder_failed)
        self.worker.embedded.connect(self._on_embedded)
        self.worker.engineReady.connect(self._reload_embedder)
        self.indexingFinished.connect(lambda _report: self._embed_missing())
        self.worker.engineReady.connect(self._on_engine_ready)
        self.worker.loading.connect(self._on_loading)
        self.worker.loaded.connect(self._on_loaded)
        self.worker.loadFailed.connect(self._on_load_failed)
        self.worker.tokens.connect(self._on_tokens)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.crashed.connect(self._on_crashed)
        self.worker.waiting.connect(self.statusText)
        self.worker.interrupted.connect(self._on_interrupted)
        self.storeError.connect(self.errorMessage)
        self._offThreadDone.connect(self._off_thread_done)
        self._readers: list[threading.Thread] = []  # header reads in flight (models folder, files)
        self._scanning = False  # the models folder is being read: "no model" is not known yet

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine thread and child, then load the model the user had last."""
        self._thread.start()
        self._set_state(EngineState.STARTING, "Starting the model engine…")
        self._startEngine.emit()
        recovered = self.store.recover_interrupted()
        if recovered:
            self.infoMessage.emit(
                f"Hearth closed unexpectedly last time; {recovered} unfinished "
                f"repl{'y was' if recovered == 1 else 'ies were'} kept and marked interrupted."
            )
        recent = self.store.list_conversations(limit=1)
        # a conversation that cannot be opened is skipped with a notice: never fatal at start
        if not (recent and self.open_conversation(recent[0].id)):
            self.new_conversation()
        # Headers are read on a worker thread, so a slow disk or a damaged file in the models
        # folder never keeps the window from appearing: a model the library knows loads at
        # once, and otherwise the choice waits for the scan (_models_scanned).
        self.refresh_models(first_start=True)
        self.refresh_remote_models()  # what the connections serve, asked on a worker thread
        model = self._initial_model()
        if model is not None:
            self.select_model(model.path)

    def _initial_model(self) -> ModelInfo | None:
        for candidate in (self.default_model, self.config.get("last_model")):
            if candidate:
                model = self.library.get(candidate)
                if model is not None and model.exists:
                    return model
        return next((m for m in self.library.models() if m.exists), None)

    def shutdown(self, timeout_ms: int = 1800) -> None:
        """Stop generation, close the child, end the thread; never hangs the exit."""
        if self.state is EngineState.CLOSED:
            return
        if self._reply is not None:
            self._finish_reply(MessageState.INTERRUPTED, {})
        self.state = EngineState.CLOSED
        self.worker.cancel()
        if self._thread.isRunning():
            self._shutdown.emit()
            if not self._thread.wait(timeout_ms):
                self.worker.kill()
                self._thread.quit()
                self._thread.wait(500)
        self.store.close()  # drains queued writes: every message is on disk
        for reader in self._readers:
            reader.join(2.0)  # header reads are budgeted (app.core.gguf): well under a second
        self._indexing_cancel.set()
        if self._indexing is not None:
            self._indexing.join(2.0)
        if self.documents is not None:
            self.documents.close()

    # -- intents -----------------------------------------------------------------------------

    def model_info(self, path: str) -> ModelInfo | None:
        """A model file in the library, or a model a connection serves (``remote://…``)."""
        return self.library.get(path) or self.remote_models.get(path)

    def select_model(self, path: str) -> None:
        model = self.model_info(path)
        if model is None or self.state in (EngineState.GENERATING, EngineState.CLOSED):
            return
        self.current_model = model
        self.config.set("last_model", model.path)
        self.currentModelChanged.emit(model.path)
        load = LoadSettings(**self.load_settings.to_dict())
        defaults = model.defaults  # per-model defaults from the library win over the app's
        if defaults.n_ctx:
            load.n_ctx = defaults.n_ctx
        if defaults.n_threads:
            load.n_threads = defaults.n_threads
        if defaults.n_gpu_layers is not None:
            load.n_gpu_layers = defaults.n_gpu_layers
        if model.context_length:
            load.n_ctx = min(load.n_ctx, model.context_length)
        # Loading from now on: a message sent before the engine says so waits for this model
        # (it is queued behind the load), and an earlier load that ends meanwhile is not it.
        self._wanted_model = model.path
        self._set_state(EngineState.LOADING, f"Loading {model.name}…")
        self._load.emit(
            p.Load(
                model.path,
                load.n_ctx,
                load.n_threads,
                load.n_gpu_layers,
                load.n_batch,
                chat_template=model.defaults.chat_template,
                remote=self._remote_target(model),
            )
        )

    def _remote_target(self, model: ModelInfo) -> p.RemoteTarget | None:
        ref = parse_remote_ref(model.path) if model.remote is not None else None
        connection = self.connections.get(ref[0]) if ref is not None else None
        if ref is None or connection is None:
            return None
        return p.RemoteTarget(connection.name, connection.base_url, ref[1])

    # -- connections (models served by other programs) ------------------------------------

    def set_connections(self, store: ConnectionStore) -> None:
        self.connections = store

    def refresh_remote_models(self) -> None:
        """Ask every connection what it serves, on a worker thread; the picker lists the
        answers grouped by connection, and a connection that does not answer says why."""
        connections = self.connections.all()
        if not connections:
            if self.remote_models or self.remote_status:
                self.remote_models, self.remote_status = {}, {}
                self.modelsChanged.emit()
            return

        def list_all() -> list[tuple[Connection, list[ModelInfo], str]]:
            from app.engine.remote import RemoteBackend

            results = []
            for connection in connections:
                backend = RemoteBackend(connection.base_url, ConnectionStore.api_key(connection))
                try:
                    found = backend.models()
                    infos = [remote_model_info(connection, m.id, m.context_length) for m in found]
                    results.append((connection, infos, ""))
                except Exception as exc:  # said in words in the picker; RemoteError's are plain
                    results.append((connection, [], str(exc) or type(exc).__name__))
                finally:
                    backend.close()
            return results

        self._read_off_thread(list_all, self._remote_listed)

    def _remote_listed(self, results, error: BaseException | None) -> None:
        if error is not None or results is None:
            return
        models: dict[str, ModelInfo] = {}
        status: dict[str, str] = {}
        for connection, infos, problem in results:
            for info in infos:
                models[info.path] = info
            status[connection.name] = problem
        self.remote_models, self.remote_status = models, status
        self.modelsChanged.emit()

    def set_chat_template(self, path: str, key: str | None) -> None:
        """Use a known chat template for a model (None: the GGUF's own), saved with the
        model's defaults; the model reloads with it when it is the one in use."""
        model = self.library.get(path)
        if model is None:
            return
        defaults = ModelDefaults.from_dict({**model.defaults.to_dict(), "chat_template": key})
        try:
            self.library.set_defaults(path, defaults)
        except (LibraryError, OSError) as exc:
            self.errorMessage.emit(f"Could not save the template for {model.name}: {exc}")
            return
        self.modelsChanged.emit()
        if self.current_model is not None and self.current_model.path == path:
            self.select_model(path)

    # -- conversations ----------------------------------------------------------------------

    def _busy(self) -> bool:
        if self.state is EngineState.GENERATING:
            self.errorMessage.emit("Stop the reply first (Esc), then switch conversations.")
            return True
        return False

    def new_conversation(self) -> None:
        """An empty chat; it gets a row in the store with its first message."""
        if self._busy():
            return
        self.few_shot = []
        self.conversation = Conversation(settings=self.settings.to_dict())
        self._saved = False
        self.conversationOpened.emit(self.conversation)
        self.documentsChanged.emit()

    def open_conversation(self, conversation_id: str, reveal: str | None = None) -> bool:
        """Show a conversation; ``reveal``: a message (a search hit) whose branch is shown."""
        if self.conversation.id == conversation_id and self._saved:
            if reveal:
                self._reveal(reveal)
            return True
        if self._busy():
            return False
        problems: list[str] = []  # fields of a damaged row the store left out
        try:
            conversation = self.store.load(conversation_id, problems)
        except (ConversationNotFound, StoreError) as exc:
            self.errorMessage.emit(f"Could not open that conversation: {exc}")
            return False
        self.conversation = conversation
        self._saved = True
        if reveal and any(m.id == reveal for m in conversation.branches):
            self._select_branch(reveal)
        if conversation.settings:  # checked by the store: every known field has its type
            self.settings = SamplingSettings.from_dict(conversation.settings)
        self.few_shot = [(u, a) for u, a in (conversation.settings or {}).get("few_shot", [])]
        if problems:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            self.errorMessage.emit(f"Parts of “{conversation.title}” could not be read and are left out ({shown}).")
        self.config.set("last_conversation", conversation.id)
        self.conversationOpened.emit(conversation)
        self.documentsChanged.emit()
        self.sync_collections()
        return True

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())[:200]
        if not title:
            return
        if conversation_id == self.conversation.id:
            self.conversation.title = title
            if not self._saved:
                return
        self.store.rename(conversation_id, title)
        self.conversationsChanged.emit()

    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        if conversation_id == self.conversation.id:
            self.conversation.pinned = pinned
        self.store.set_pinned(conversation_id, pinned)
        self.conversationsChanged.emit()

    def delete_conversation(self, conversation_id: str) -> None:
        if conversation_id == self.conversation.id and self._busy():
            return
        try:
            doomed = self.store.load(conversation_id)
        except (ConversationNotFound, StoreError):
            return
        self.store.delete_conversation(conversation_id)
        self._deleted = doomed
        self.conversationsChanged.emit()
        self.conversationDeleted.emit(doomed.id, doomed.title)
        if conversation_id == self.conversation.id:
            recent = self.store.list_conversations(limit=1)
            if recent:
                self.open_conversation(recent[0].id)
            else:
                self.new_conversation()

    def undo_delete(self) -> None:
        doomed, self._deleted = self._deleted, None
        if doomed is not None:
            self.store.restore_conversation(doomed)
            self.conversationsChanged.emit()
            self.open_conversation(doomed.id)

    def search(self, text: str) -> list[SearchHit]:
        return self.store.search(text) if text.strip() else []

    def set_few_shot(self, pairs: list[tuple[str, str]]) -> None:
        """Example exchanges for this conversation (sent as real earlier turns), saved with it."""
        self.few_shot = [(str(u), str(a)) for u, a in pairs]
        self.conversation.settings = {
            **(self.conversation.settings or self.settings.to_dict()),
            "few_shot": [list(p) for p in self.few_shot],
        }
        if self._saved:
            self.store.save_conversation(self.conversation)

    def set_settings(self, settings: SamplingSettings) -> None:
        """Valid settings from the panel; they are remembered with this conversation."""
        self.settings = settings
        self.conversation.settings = {**settings.to_dict(), "few_shot": [list(p) for p in self.few_shot]}
        if self._saved:
            self.store.save_conversation(self.conversation)

    def export_conversations(self, path: str, fmt: str, conversation_ids: list[str] | None = None) -> bool:
        """Write the given conversations (all when None) to ``path``; errors become messages."""
        from app.core.export import ExportError, save_export

        try:
            if conversation_ids is None:
                conversation_ids = [c.id for c in self.store.list_conversations()]
            conversations = [self._load_for_export(cid) for cid in conversation_ids]
            save_export(path, fmt, conversations)
        except (ExportError, StoreError) as exc:
            self.errorMessage.emit(str(exc))
            return False
        self.infoMessage.emit(
            f"Exported {len(conversations)} conversation{'s' if len(conversations) != 1 else ''} to {Path(path).name}."
        )
        return True

    def _load_for_export(self, conversation_id: str) -> Conversation:
        if conversation_id == self.conversation.id and not self._saved:
            return self.conversation
        return self.store.load(conversation_id)

    def import_conversations(self, path: str) -> bool:
        """Import a Hearth JSON or ChatGPT export: all of it, or nothing and a message.

        The file is read and checked on a worker thread (a ChatGPT zip can take seconds),
        and ``importFinished(count)`` follows; False when another import is still running."""
        if self._importer is None:
            self._importer = ImportWorker(self)
            self._importer.finished.connect(self._on_imported)
        if not self._importer.start(path):
            self.errorMessage.emit("Another import is still running; try again when it has finished.")
            return False
        self.statusText.emit(f"Importing {Path(path).name}…")
        return True

    def _on_imported(self, result: ImportResult) -> None:
        name = Path(result.path).name
        count = len(result.conversations)
        if result.error is not None:
            self.errorMessage.emit(f"Nothing was imported from {name}: {result.error}")
        elif not count:
            self.errorMessage.emit(f"{name} holds no conversations.")
        else:
            self.store.import_conversations(result.conversations)
            self.conversationsChanged.emit()
            source = "ChatGPT export" if result.kind == "chatgpt" else "file"
            self.infoMessage.emit(f"Imported {count} conversation{'s' if count != 1 else ''} from the {source} {name}.")
        self.importFinished.emit(count)

    def _append(self, message: Message) -> None:
        """Put a new message at the end of the shown path (it follows the last one) and save it."""
        conv = self.conversation
        message.parent_id = conv.messages[-1].id if conv.messages else None
        message.active = True
        conv.messages.append(message)
        self._save_new_message(message)
        if any(m.parent_id == message.parent_id for m in conv.branches):  # a new variant
            self.store.set_active(conv.id, message.id)

    def _save_new_message(self, message: Message) -> None:
        """Messages are written as they happen: a crash loses at most SAVE_INTERVAL."""
        conv = self.conversation
        if not self._saved:
            if conv.title == "New chat":
                conv.title = _title_from(message.text)
            conv.settings = {**self.settings.to_dict(), "few_shot": [list(p) for p in self.few_shot]}
            self.store.save_conversation(conv)
            self._saved = True
            self.config.set("last_conversation", conv.id)
        self.store.add_message(conv.id, message, len(conv.messages) - 1)
        self.store.touch(conv.id)

    def unload_if_current(self, path: str) -> None:
        """The model is about to be deleted: free it first if it is the one loaded."""
        model = self.library.get(path)
        if self.current_model is None or model is None or self.current_model.path != model.path:
            return
        if self._reply is not None:
            self.stop()
        self.current_model = None
        self.loaded_info = None
        self._unload.emit()
        self._set_state(EngineState.NO_MODEL, "The model was removed — choose another one.")

    def model_downloaded(self, path: str) -> None:
        """A finished download: into the library, and chosen if no model is in use. Its header
        is read on a worker thread; the picker shows it when that is done."""
        self._read_off_thread(
            lambda: read_model(path), lambda info, error: self._model_read(path, info, error, downloaded=True)
        )

    def add_model_in_background(self, path: str) -> None:
        """``add_model`` for the GUI: the header is read on a worker thread, then the model
        joins the library (or the reason it cannot is said)."""
        self._read_off_thread(
            lambda: read_model(path), lambda info, error: self._model_read(path, info, error, downloaded=False)
        )

    def refresh_models(self, first_start: bool = False) -> None:
        """Look for new and vanished files in the models folder (and, on a first start with
        an empty library, the demo model) on a worker thread; the picker fills when done."""
        demo_wanted = first_start and not self.library.models()
        known, stale = self.library.refresh_plan()
        self._scanning = True
        self._read_off_thread(
            lambda: (read_demo_model() if demo_wanted else None, scan_models_dir(known, stale)), self._models_scanned
        )

    def _read_off_thread(self, fn, on_done) -> None:
        """Run ``fn`` (blocking file reads, no Qt) on a thread; ``on_done(result, error)`` runs
        on the GUI thread afterwards, through a queued signal."""

        def run() -> None:
            try:
                result, error = fn(), None
            except Exception as exc:  # noqa: BLE001 - handed to on_done, said in plain words there
                result, error = None, exc
            try:
                self._offThreadDone.emit(on_done, result, error)
            except RuntimeError:  # the session was deleted meanwhile (the app is closing)
                pass

        self._readers = [t for t in self._readers if t.is_alive()]
        thread = threading.Thread(target=run, name="model-headers", daemon=True)
        self._readers.append(thread)
        thread.start()

    def _off_thread_done(self, on_done, result, error) -> None:
        if self.state is not EngineState.CLOSED:
            on_done(result, error)

    def _models_scanned(self, result, error: BaseException | None) -> None:
        self._scanning = False
        demo_info, scan = result if error is None and result is not None else (None, ScanResult())
        if error is not None:
            self.errorMessage.emit(f"Could not look for models in {self.library.models_dir}: {_plain_error(error)}")
        demo = self.library.add_demo(demo_info)
        refreshed = self.library.apply_scan(scan)
        if demo is not None or refreshed.changed:
            self.modelsChanged.emit()
        if self.current_model is None and self.state in (EngineState.STARTING, EngineState.NO_MODEL):
            model = self._initial_model()
            if model is not None:
                self.select_model(model.path)
            else:
                self._set_state(EngineState.NO_MODEL, "No model yet: add a GGUF file to start chatting.")

    def _model_read(self, path: str, info: ModelInfo | None, error: BaseException | None, downloaded: bool) -> None:
        if info is None:
            reason = _plain_error(error, path)
            self.errorMessage.emit(
                f"The download finished but the file can't be used: {reason}" if downloaded else reason
            )
            return
        model = self.library.find(path) or self.library.add_info(info)
        self.modelsChanged.emit()
        if downloaded:
            self.infoMessage.emit(f"{model.name} is downloaded and ready in the model picker.")
        if self.current_model is None and self.state is not EngineState.GENERATING:
            self.select_model(model.path)  # the first model a new user adds is ready to chat

    def add_model(self, path: str) -> ModelInfo | None:
        """Register a GGUF file; a bad file becomes a message, not an exception."""
        try:
            model = self.library.add_file(path)
        except GGUFError as exc:
            self.errorMessage.emit(str(exc))
            return None
        except OSError as exc:
            self.errorMessage.emit(f"{Path(path).name}: {exc.strerror or exc}")
            return None
        self.modelsChanged.emit()
        if self.current_model is None and self.state is not EngineState.GENERATING:
            self.select_model(model.path)  # the first model a new user adds is ready to chat
        return model

    def send(self, text: str) -> bool:
        """Add the user's message and ask for a reply. False when it cannot be sent now
        (the caller keeps the text in the input)."""
        text = text.strip()
        if not text or self.state in (EngineState.GENERATING, EngineState.CRASHED, EngineState.CLOSED):
            return False
        if self.current_model is None:
            self.errorMessage.emit("Choose a model first: add a GGUF file in the model picker.")
            return False
        # Checked without the context length: a "max new tokens" above a small model's context
        # is clamped for the request (and said), never a reason to refuse the message.
        problems = self.settings.validate(None)
        if problems:
            self.errorMessage.emit(" ".join(pr.message for pr in problems))
            return False
        message = Message(Role.USER, text)
        self._append(message)
        self.messageAdded.emit(message)
        self.conversationsChanged.emit()
        if self.state is EngineState.READY:
            self._generate()
        else:
            self._pending_send = True  # answered as soon as the model has loaded
            self.statusText.emit("Your message will be answered when the model has loaded…")
        return True

    def regenerate(self) -> bool:
        """A new reply to the last question; the old one is kept as a variant (‹ 1/2 ›)."""
        messages = self.conversation.messages
        if self.state is not EngineState.READY or not messages or messages[-1].role is not Role.ASSISTANT:
            return False
        if messages[-1].text.strip():
            self._set_aside(len(messages) - 1)
        else:  # a reply that failed before writing anything is not a version worth keeping
            self.store.delete_message(messages[-1].id)
            self.conversation.remove(messages[-1].id)
        self.conversationOpened.emit(self.conversation)
        self._generate()
        return True

    def edit_and_resend(self, message_id: str, text: str) -> bool:
        """Send an edited version of an earlier user message, answered anew. The original
        and everything after it stay as the other variant (‹ 1/2 ›)."""
        text = text.strip()
        index = next((i for i, m in enumerate(self.conversation.messages) if m.id == message_id), None)
        if not text or index is None or self.state is not EngineState.READY:
            return False
        if self.conversation.messages[index].role is not Role.USER:
            return False
        self._set_aside(index)
        edited = Message(Role.USER, text)
        self._append(edited)
        self.conversationOpened.emit(self.conversation)
        self._generate()
        return True

    def _set_aside(self, index: int) -> None:
        """Move the path from ``index`` on to the branches; the message there stops being
        the shown variant (what follows it keeps its own choices)."""
        conv = self.conversation
        head = conv.messages[index]
        head.active = False
        conv.branches.extend(conv.messages[index:])
        del conv.messages[index:]

    def switch_variant(self, message_id: str, step: int) -> bool:
        """Show the previous (-1) or next (+1) variant of a message on the path, with the
        branch that follows it."""
        if self.state is EngineState.GENERATING:
            self.statusText.emit("Wait for the reply to finish, or stop it, to switch versions.")
            return False
        conv = self.conversation
        variants = conv.variants(message_id)
        index = next((i for i, m in enumerate(variants) if m.id == message_id), None)
        if index is None or not 0 <= index + step < len(variants):
            return False
        self._select_branch(variants[index + step].id)
        self.conversationOpened.emit(conv)
        return True

    def _reveal(self, message_id: str) -> None:
        if self.state is EngineState.GENERATING or not any(m.id == message_id for m in self.conversation.branches):
            return
        self._select_branch(message_id)
        self.conversationOpened.emit(self.conversation)

    def _select_branch(self, message_id: str) -> None:
        """Show the branch through this message and save that choice: the next message is
        written after what is shown, so the database must show the same path."""
        conv = self.conversation
        conv.select(message_id)
        branch_parents = {m.parent_id for m in conv.branches}
        for message in conv.messages:
            if message.parent_id in branch_parents:  # it has variants: make it the chosen one
                self.store.set_active(conv.id, message.id)

    def continue_in_new_chat(self, message_id: str) -> bool:
        """A new conversation holding the shown turns up to this message (LM Studio's
        "branch"): try another direction without touching this one."""
        conv = self.conversation
        index = next((i for i, m in enumerate(conv.messages) if m.id == message_id), None)
        if index is None or self._busy():
            return False
        source = Conversation(
            title=f"{conv.title} (continued)",
            messages=conv.messages[: index + 1],
            pinned=False,
            settings={**self.settings.to_dict(), "few_shot": [list(p) for p in self.few_shot]},
        )
        from app.core.export import fresh_ids

        copy = fresh_ids(source)
        copy.created = copy.updated = time.time()
        self.store.restore_conversation(copy)
        self.conversationsChanged.emit()
        return self.open_conversation(copy.id)

    def delete_message(self, message_id: str) -> bool:
        if self.state is EngineState.GENERATING:
            return False
        if not any(m.id == message_id for m in self.conversation.messages):
            return False
        self.conversation.remove(message_id)  # what followed it now follows its parent
        self.store.delete_message(message_id)
        self.conversationOpened.emit(self.conversation)
        return True

    def stop(self) -> None:
        if self._reply is not None:
            self._stop_requested = True
            self.worker.cancel()

    def restart_engine(self) -> None:
        if self.state is EngineState.CRASHED:
            self._set_state(EngineState.STARTING, "Restarting the model engine…")
            self._restartEngine.emit()

    # -- generation --------------------------------------------------------------------------

    def _generate(self) -> None:
        assert self.current_model is not None
        if self._embedder_ready and self._query_vector is None and self._has_documents():
            question = next((m.text for m in reversed(self.conversation.messages) if m.role is Role.USER), "")
            self._set_state(EngineState.GENERATING, "Looking through your documents…")
            self._embed.emit([], [question], "query")  # retrieval continues in _on_embedded
            return
        messages = self.prompt_messages()
        messages = self._with_sources(messages, self._query_vector)
        self._query_vector = None
        self._reply = Message(
            Role.ASSISTANT,
            "",
            MessageState.STREAMING,
            model=self.current_model.name,
            settings=self.settings.to_dict(),
        )
        self._stop_requested = False
        self._append(self._reply)
        self._reply_saved_at = time.monotonic()
        self.messageAdded.emit(self._reply)
        self._set_state(EngineState.GENERATING, f"{self.current_model.name} is writing…")
        self._chat.emit(messages, self._request_settings())

    def _request_settings(self) -> dict:
        """The conversation's settings as sent to the engine: a "max new tokens" larger than
        the loaded model's context is clamped to it, and the person is told."""
        settings = self.settings.to_dict()
        n_ctx = self.loaded_info.n_ctx if self.loaded_info is not None else None
        if n_ctx and self.settings.max_tokens > n_ctx:
            settings["max_tokens"] = n_ctx
            self.infoMessage.emit(
                f"Max new tokens ({self.settings.max_tokens:,}) is more than this model's context "
                f"({n_ctx:,} tokens), so replies are limited to {n_ctx:,} tokens. Lower it in the settings panel "
                "to make this note go away."
            )
        return settings

    def prompt_messages(self) -> list[dict[str, str]]:
        """What goes through the model's chat template: the system prompt (with the
        chain-of-thought instruction when on), few-shot examples as real turns, then the chat."""
        settings = self.settings
        if not settings.system_prompt and self.current_model is not None and self.current_model.defaults.system_prompt:
            settings = SamplingSettings.from_dict(
                {**settings.to_dict(), "system_prompt": self.current_model.defaults.system_prompt}
            )
        messages = self.conversation.chat_messages(effective_system_prompt(settings))
        at = 1 if messages and messages[0]["role"] == "system" else 0
        messages[at:at] = few_shot_turns(self.few_shot)
        return messages

    def request_context_count(self, draft: str = "") -> None:
        """Count the conversation (and what the user is typing) with the model's tokenizer;
        the answer comes as contextChanged. Only the newest request's answer is used."""
        if self.state is not EngineState.READY or self.loaded_info is None:
            return
        messages = self.prompt_messages()
        if draft.strip():
            messages.append({"role": "user", "content": draft})
        self._count_serial += 1
        self._countPrompt.emit(messages, self._count_serial)

    def _on_prompt_counted(self, count: int, serial: int, exact: bool = True) -> None:
        if serial == self._count_serial and self.loaded_info is not None:
            self.context_used = count
            self.context_exact = exact
            self.contextChanged.emit(count, self.loaded_info.n_ctx)

    def _on_prompt_info(self, info: p.PromptInfo) -> None:
        if self._reply is not None and info.model_path:
            answering = self.model_info(info.model_path)  # the reply is recorded as the model that wrote it
            self._reply.model = answering.name if answering else Path(info.model_path).name
        self._prompt_tokens = info.prompt_tokens
        self.context_used = info.prompt_tokens
        self.context_exact = info.counted_exactly
        self.contextChanged.emit(info.prompt_tokens, info.n_ctx)
        if info.dropped_turns:
            self.infoMessage.emit(
                f"The conversation is longer than the model's context: the {info.dropped_turns} oldest "
                f"turn{'s were' if info.dropped_turns != 1 else ' was'} left out of this reply's prompt "
                "(the system prompt is kept)."
            )

    def _on_stream_stats(self, tokens: int, seconds: float) -> None:
        if self._reply is None or self.loaded_info is None:
            return
        self.context_used = self._prompt_tokens + tokens
        self.contextChanged.emit(self.context_used, self.loaded_info.n_ctx)
        rate = f" · {tokens / seconds:.1f} tokens/s" if seconds > 0.2 and tokens > 1 else ""
        self.statusText.emit(
            f"{self.current_model.name if self.current_model else 'The model'} is writing… {tokens} tokens{rate}"
        )

    def set_load_settings(self, load: LoadSettings) -> None:
        """New load-time values (context, threads…): reload the current model with them."""
        self.load_settings = load
        if self.current_model is not None:
            self.select_model(self.current_model.path)

    # -- documents -----------------------------------------------------------------------

    def attached_documents(self) -> list:
        if self.documents is None:
            return []
        coll = self.documents.attachments_collection(self.conversation.id, create=False)
        return self.documents.documents(coll.id) if coll is not None else []

    def retrieval_enabled(self) -> bool:
        return self.documents is not None and self.documents.retrieval_enabled(self.conversation.id)

    def set_retrieval_enabled(self, enabled: bool) -> None:
        if self.documents is not None:
            self.documents.set_retrieval_enabled(self.conversation.id, enabled)
            self.documentsChanged.emit()

    @property
    def indexing(self) -> bool:
        return self._indexing is not None and self._indexing.is_alive()

    def attach_files(self, files: list[str]) -> bool:
        """Index files for this conversation on a background thread; progress and the report
        (with every skipped file and why) arrive as signals."""
        if self.documents is None or not files:
            return False
        index, conversation_id = self.documents, self.conversation.id
        return self._start_indexing(
            lambda progress, cancel: index.attach_files(conversation_id, files, progress, cancel)
        )

    def create_collection(self, name: str, folder: str) -> bool:
        """A named collection filled from a folder (indexed in the background), switched on
        for this conversation; other conversations can switch it on too."""
        if self.documents is None or self.indexing:
            return False
        from app.core.documents.index import DocumentIndexError

        try:
            collection = self.documents.create_collection(name, folder)
        except DocumentIndexError as exc:
            self.errorMessage.emit(str(exc))
            return False
        self.documents.enable_collection(self.conversation.id, collection.id, True)
        self.documentsChanged.emit()
        index = self.documents
        return self._start_indexing(lambda progress, cancel: index.sync_collection(collection.id, progress, cancel))

    def set_collection_enabled(self, collection_id: int, enabled: bool) -> None:
        if self.documents is not None:
            self.documents.enable_collection(self.conversation.id, collection_id, enabled)
            self.documentsChanged.emit()

    def sync_collections(self) -> bool:
        """Re-index this conversation's folder collections: changed files (by time and hash)
        again, removed ones dropped. Runs when a conversation is opened."""
        if self.documents is None or self.indexing:
            return False
        index = self.documents
        ids = [
            c.id
            for c in index.collections()
            if c.folder is not None and c.id in index.enabled_collections(self.conversation.id)
        ]
        if not ids:
            return False
        from app.core.documents.index import DocumentIndexError

        def job(progress, cancel):
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

    def _start_indexing(self, job) -> bool:
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
                import logging

                logging.getLogger(__name__).exception("indexing failed")
                self.errorMessage.emit(f"Could not index the files: {type(exc).__name__}: {exc}")
            finally:
                self.indexingFinished.emit(report)

        self._indexing = threading.Thread(target=work, name="hearth-indexing", daemon=True)
        self._indexing.start()
        return True

    def cancel_indexing(self) -> None:
        self._indexing_cancel.set()

    def _has_documents(self) -> bool:
        if self.documents is None:
            return False
        from app.core.documents.index import DocumentIndexError

        try:
            return self.documents is not None and bool(self.documents.conversation_collection_ids(self.conversation.id))
        except DocumentIndexError:
            return False

    # -- hybrid retrieval: an embedding model in the engine ---------------------------------

    def _vector_tag(self) -> str:
        return Path(self.embedding_model).name if self.embedding_model else "default"

    def set_embedding_model(self, model_path: str | None) -> None:
        """Use this GGUF in embedding mode (vector + keyword search), or None: keywords only."""
        self.embedding_model = model_path
        self._embedder_ready = False
        self.config.set("embedding_model", model_path)
        self._loadEmbedder.emit(model_path)
        self.embeddingStatus.emit("Loading the embedding model…" if model_path else "Keyword search (BM25)")

    def _reload_embedder(self, _version: str = "") -> None:
        if self.embedding_model is None:
            self.embedding_model = self.config.get("embedding_model")
        if self.embedding_model:
            self._embedder_ready = False
            self._loadEmbedder.emit(self.embedding_model)

    def _on_embedder_loaded(self, dims: int) -> None:
        self._embedder_ready = dims > 0
        self._embedding = False
        self._embed_missing()

    def _on_embedder_failed(self, message: str) -> None:
        self._embedding = False
        if self._query_vector is None and self.state is EngineState.GENERATING and self._reply is None:
            self._query_vector = False  # retrieve by keywords only this time
            self._set_state(EngineState.READY, "")
            self._generate()
        self.errorMessage.emit(f"{message} Retrieval uses keyword search only.")
        self._embedder_ready = False
        self.embeddingStatus.emit("Keyword search (BM25) — the embedding model is not available")

    def _embed_missing(self) -> None:
        """Embed passages that have no vector yet, a small batch at a time, when the engine is idle."""
        if not self._embedder_ready or self._embedding or self.documents is None or self.state is not EngineState.READY:
            return
        ids = [c.id for c in self.documents.collections(include_attachments=True)]
        missing = self.documents.passages_missing_vectors(ids, model=self._vector_tag(), limit=16) if ids else []
        if not missing:
            self.embeddingStatus.emit("Hybrid search: every passage is embedded")
            return
        self._embedding = True
        self._embed.emit([pid for pid, _ in missing], [text for _, text in missing], "passages")

    def _on_embedded(self, ids: list, vectors: list, tag: str) -> None:
        import numpy as np

        if tag == "query":
            self._query_vector = np.asarray(vectors[0], dtype=np.float32)
            self._set_state(EngineState.READY, "")
            self._generate()
            return
        self._embedding = False
        if self.documents is not None and ids:
            self.documents.store_vectors(ids, np.asarray(vectors, dtype=np.float32), model=self._vector_tag())
            self.embeddingStatus.emit(f"Hybrid search: embedded {len(ids)} more passages…")
        self._embed_missing()

    def _with_sources(self, messages: list[dict[str, str]], query_vector=None) -> list[dict[str, str]]:
        """Put the passages that best match the question in front of it, numbered to cite."""
        self._citations = []
        if self.documents is None:
            return messages
        from app.core.documents.index import DocumentIndexError
        from app.core.documents.retrieval import build_context, retrieve, with_context

        try:
            ids = self.documents.conversation_collection_ids(self.conversation.id)
            question = next((m.text for m in reversed(self.conversation.messages) if m.role is Role.USER), "")
            if not ids or not question:
                return messages
            vector = query_vector if query_vector is not None and query_vector is not False else None
            hits = retrieve(
                self.documents,
                question,
                ids,
                k=6,
                token_budget=self.sources_budget,
                query_vector=vector,
                vector_model=self._vector_tag(),
            )
        except DocumentIndexError as exc:
            self.errorMessage.emit(f"Your documents could not be searched: {exc}")
            return messages
        if not hits:
            return messages
        block, self._citations = build_context(hits)
        return with_context(messages, block)

    def _finish_reply(self, state: MessageState, stats: dict) -> None:
        reply, self._reply = self._reply, None
        if reply is None:
            return
        reply.state = state
        if self._citations:
            from app.core.documents.retrieval import cited_numbers

            used = set(cited_numbers(reply.text, len(self._citations)))
            stats = dict(
                stats,
                sources=[
                    {"number": c.number, "label": c.label, "text": c.text, "cited": c.number in used}
                    for c in self._citations
                ],
            )
            self._citations = []
        reply.stats = stats or None
        self.store.update_message(reply)
        self.store.touch(self.conversation.id)
        self.replyFinished.emit(reply)
        self.conversationsChanged.emit()

    # -- worker events -----------------------------------------------------------------------

    def _on_engine_ready(self, version: str) -> None:
        if self.state is EngineState.STARTING and self.current_model is None and not self._scanning:
            self._set_state(EngineState.NO_MODEL, "No model yet: add a GGUF file to start chatting.")

    def _on_loading(self, path: str) -> None:
        self._loading_path = path
        model = self.model_info(path)
        name = model.name if model else Path(path).name
        self._set_state(EngineState.LOADING, f"Loading {name}…")

    def _on_loaded(self, info: p.Loaded) -> None:
        if self.state is EngineState.CLOSED:
            return
        self.loaded_info = info
        if self._wanted_model is not None and info.model_path != self._wanted_model:
            return  # an earlier load ended; the model asked for since is next in the engine's queue
        self._wanted_model = None
        model = self.model_info(info.model_path)
        if model is not None and (self.current_model is None or self.current_model.path != model.path):
            self.current_model = model  # a failed load fell back to this one
            self.currentModelChanged.emit(model.path)
        name = model.name if model else Path(info.model_path).name
        self._set_state(EngineState.READY, f"Ready — {name}, context {info.n_ctx:,} tokens")
        problem = (model.template_problem or "") if model is not None and model.needs_template else ""
        self.templateStatus.emit(info.model_path, problem)
        if self._pending_send:
            self._pending_send = False
            self._generate()

    def _on_load_failed(self, message: str) -> None:
        """The worker follows this with ``loaded`` when the previous model is (still) there.
        A message waiting for a model stays waiting: the model that loads next answers it."""
        self.errorMessage.emit(message)
        if self._wanted_model is not None and self._loading_path != self._wanted_model:
            return  # an earlier load failed; the one asked for since is still to come
        self._wanted_model = None
        self.loaded_info = None
        self.current_model = None
        waiting = " Your message will be answered by the next model that loads." if self._pending_send else ""
        self._set_state(EngineState.NO_MODEL, "Could not load the model — choose another one." + waiting)

    def _on_tokens(self, text: str) -> None:
        if self._reply is not None:
            self._reply.text += text
            self.replyText.emit(text)
            now = time.monotonic()
            if now - self._reply_saved_at >= self.SAVE_INTERVAL:
                self._reply_saved_at = now
                self.store.update_message(self._reply)  # queued: the writer thread commits it

    def _on_finished(self, reason: str, stats: dict) -> None:
        stopped = reason == "cancelled" or self._stop_requested
        stats = dict(stats, finish_reason=reason)
        empty = not stopped and self._reply is not None and not self._reply.text.strip()
        if empty:
            stats["empty_reason"] = self._why_empty(reason, stats)
        self._finish_reply(MessageState.STOPPED if stopped else MessageState.COMPLETE, stats)
        if self.state is EngineState.CLOSED:
            return
        if empty:
            self.infoMessage.emit(stats["empty_reason"])
            self._set_state(EngineState.READY, "Done — empty reply")
        else:
            rate = stats.get("tokens_per_s")
            done = "Stopped" if stopped else "Done"
            extra = f" — {stats.get('tokens', 0)} tokens" + (f", {rate:.1f} tokens/s" if rate else "")
            self._set_state(EngineState.READY, done + extra)
        self._embed_missing()

    def _why_empty(self, reason: str, stats: dict) -> str:
        """Plain words for a reply that ended before writing anything: never just silence."""
        sequence = stats.get("stop_sequence")
        if isinstance(sequence, str):
            return (
                f"The reply is empty: your stop sequence “{escape_visible(sequence)}” came before anything "
                "else. Change or remove it under Stop sequences in the settings panel."
            )
        if reason in ("length", "context_full"):
            return (
                "The reply is empty: the model's context was full before it could write anything. "
                "Start a new chat, or raise the context length in the settings panel."
            )
        model = self.current_model
        if model is not None and model.needs_template:
            return (
                f"The model ended its reply at once, without writing anything. {model.name} has "
                f"{model.template_problem} (it is a base model), so it does not know the shape of a chat: "
                "choose a chat template for it in the bar above the chat."
            )
        return (
            "The model ended its reply at once, without writing anything. Try Regenerate, a higher "
            "temperature, or another model."
        )

    def _on_failed(self, message: str) -> None:
        self._finish_reply(MessageState.FAILED, {})
        self.errorMessage.emit(message)
        if self.state is not EngineState.CLOSED:
            self._set_state(EngineState.READY, message)

    def _on_interrupted(self, message: str) -> None:
        """A remote reply was cut off mid-stream: what arrived is kept, marked interrupted."""
        self._finish_reply(MessageState.INTERRUPTED, {})
        self.errorMessage.emit(message)
        if self.state is not EngineState.CLOSED:
            self._set_state(EngineState.READY, message)

    def _on_crashed(self, message: str) -> None:
        if self.state is EngineState.CLOSED:
            return
        self._finish_reply(MessageState.INTERRUPTED, {})
        self.loaded_info = None
        self._pending_send = False
        self._set_state(EngineState.CRASHED, message)
        self.engineCrashed.emit(message)

    def _set_state(self, state: EngineState, text: str) -> None:
        self.state = state
        self.stateChanged.emit(state.value)
        self.statusText.emit(text)


def _title_from(text: str, limit: int = 60) -> str:
    """A sidebar title from the first message: its first line, cut at a word."""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    if len(line) <= limit:
        return line or "New chat"
    cut = line[:limit].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else line[:limit]) + "…"


def _plain_error(error: BaseException | None, path: str | None = None) -> str:
    """A sentence for a failed header read: typed errors carry one, anything else is named."""
    name = Path(path).name if path else ""
    if isinstance(error, GGUFError):
        return str(error)
    if isinstance(error, OSError):
        text = str(error.strerror or error)
        return f"{name}: {text}" if name else text
    what = type(error).__name__ if error is not None else "unknown error"
    return f"{name}: the file could not be read ({what})" if name else f"something went wrong ({what})"
