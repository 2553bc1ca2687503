"""The chat session: generation — the person's messages turned into engine requests, and
the replies written into the open conversation as they stream.

Widgets call its intent methods (send, regenerate, stop, select_model, restart_engine) and
draw from its signals; the engine service lives on its own thread and is reached only
through queued signals, except for the thread-safe ``cancel``. The session composes the
parts that have a job of their own, each with its own signals: the conversations
(:class:`ConversationsController`, ``session.conversations``: open, list, delete, import,
export, versions, ratings), the models a person can choose (:class:`ModelCatalog`,
``session.models``) and chat with your documents (:class:`DocumentsController`,
``session.docs``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PySide6.QtCore import QObject, QThread, Signal

from app.core.adapters import enabled_for
from app.core.config import AppConfig
from app.core.connections import ConnectionStore
from app.core.conversation import Conversation, Message, MessageState, Role, content_parts
from app.core.library import ModelInfo, ModelLibrary
from app.core.presets import effective_system_prompt, few_shot_turns
from app.core.response_format import check_reply
from app.core.settings import LoadSettings, SamplingSettings, escape_visible
from app.core.store import ConversationStore
from app.core.vision import Attachment
from app.engine import protocol as p
from app.engine.params import load_request
from app.engine.service import CatalogEntry, EngineService
from app.engine.vision import NO_VISION
from app.session.conversations import ConversationsController
from app.session.documents import DocumentsController, sources_stats
from app.session.models import ModelCatalog
from app.session.pacing import FASTEST, UpdatePacer
from app.session.state import EngineState

if TYPE_CHECKING:
    import numpy as np  # for annotations; at run time numpy is imported where it is used

    # Documents (numpy, the readers) and export (markdown-it, Pygments) are imported where they
    # are used: the window's first frame needs neither (tests/test_startup.py).
    from app.core.documents.index import DocumentIndex


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
    infoMessage = Signal(str)  # something worth telling that is not a problem
    storeError = Signal(str)  # emitted from the store's writer thread; Qt queues it to us
    contextChanged = Signal(int, int)  # tokens used by the conversation (+ draft), context size
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
    _embed = Signal(object, object, str)  # the question, embedded for hybrid retrieval

    def __init__(
        self,
        library: ModelLibrary,
        config: AppConfig,
        store: ConversationStore,
        settings: SamplingSettings | None = None,
        load_settings: LoadSettings | None = None,
        flush_interval: float | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.store = store
        self.load_settings = load_settings or LoadSettings()
        # The open conversation and all the others; the reply being written goes into it.
        self.conversations = ConversationsController(
            store, config, settings or SamplingSettings(), lambda: self.state is EngineState.GENERATING, self
        )
        self.default_model: str | None = None  # Preferences: load this one at start
        self.state = EngineState.STARTING
        self.current_model: ModelInfo | None = None
        self.loaded_info: p.Loaded | None = None
        self._reply: Message | None = None
        self._reply_saved_at = 0.0
        self._count_serial = 0
        self._prompt_tokens = 0  # of the reply being written
        self.context_used = 0
        self._citations: list[Any] = []  # sources given to the reply being written
        # the embedded question, while a reply is being prepared (False: keyword search only this time)
        self._query_vector: np.ndarray | Literal[False] | None = None
        self._pending_send = False
        self.context_exact = True  # False: the context meter shows a remote server's estimate (≈)
        self._wanted_model: str | None = None  # the load asked for last, until it ends
        self._loading_path: str | None = None  # the load the engine is working on
        self._stop_requested = False
        self._requested_loras: tuple[tuple[str, float], ...] = ()  # the adapters of the last load asked for
        self._reply_adapters: list[dict[str, Any]] = []  # those on for the reply being written

        self._thread = QThread()
        self._thread.setObjectName("engine-worker")
        # None: paced by what drawing costs here (session/pacing.py); a number: fixed
        self._pacer = UpdatePacer() if flush_interval is None else None
        self.worker = EngineService(flush_interval=flush_interval or FASTEST)
        self.worker.moveToThread(self._thread)
        self._startEngine.connect(self.worker.start_engine)
        self._restartEngine.connect(self.worker.restart)
        self._load.connect(self.worker.load)
        self._chat.connect(self.worker.chat_interactive)
        self._shutdown.connect(self.worker.shutdown)
        self._unload.connect(self.worker.unload)
        self._countPrompt.connect(self.worker.count_prompt)
        self.worker.promptCounted.connect(self._on_prompt_counted)
        self.worker.promptInfo.connect(self._on_prompt_info)
        self.worker.streamStats.connect(self._on_stream_stats)
        self._embed.connect(self.worker.embed)
        self.worker.embedderFailed.connect(self._on_embedder_failed)
        self.worker.embedded.connect(self._on_embedded)
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

        # The models to choose from (files and connections), read off the GUI thread.
        self.models = ModelCatalog(library, ConnectionStore())
        self.models.modelsChanged.connect(self.modelsChanged)
        self.models.modelsChanged.connect(self._publish_catalog)
        self.worker.jobStarted.connect(self._on_api_job)
        self.worker.jobEnded.connect(self._on_api_job_ended)
        self.models.errorMessage.connect(self.errorMessage)
        self.models.infoMessage.connect(self.infoMessage)
        self.models.modelAdded.connect(self._model_added)
        self.models.scanFinished.connect(self._models_scanned)
        # Chat with your documents; its embedding model runs in the engine.
        self.docs = DocumentsController(config, lambda: self.conversation.id, lambda: self.state is EngineState.READY)
        self.docs.errorMessage.connect(self.errorMessage)
        self.docs.loadEmbedder.connect(self.worker.load_embedder)
        self.docs.embedPassages.connect(self.worker.embed)
        self.worker.embedderLoaded.connect(self.docs.on_embedder_loaded)
        self.worker.engineReady.connect(self.docs.reload_embedder)

        convs = self.conversations
        convs.errorMessage.connect(self.errorMessage)
        convs.infoMessage.connect(self.infoMessage)
        convs.statusText.connect(self.statusText)
        convs.settingsChanged.connect(self.sync_adapters)
        convs.switched.connect(self._on_switched)

    # -- the parts, under the names widgets and tests have long used ----------------------

    @property
    def conversation(self) -> Conversation:
        """The open conversation (see :class:`ConversationsController`)."""
        return self.conversations.current

    @conversation.setter
    def conversation(self, conversation: Conversation) -> None:
        self.conversations.current = conversation

    @property
    def settings(self) -> SamplingSettings:
        """The open conversation's sampling settings."""
        return self.conversations.settings

    @settings.setter
    def settings(self, settings: SamplingSettings) -> None:
        self.conversations.settings = settings

    @property
    def few_shot(self) -> list[tuple[str, str]]:
        return self.conversations.few_shot

    @few_shot.setter
    def few_shot(self, pairs: list[tuple[str, str]]) -> None:
        self.conversations.few_shot = pairs

    @property
    def library(self) -> ModelLibrary:
        return self.models.library

    @property
    def connections(self) -> ConnectionStore:
        return self.models.connections

    @property
    def documents(self) -> DocumentIndex | None:
        return self.docs.index

    @documents.setter
    def documents(self, index: DocumentIndex | None) -> None:
        self.docs.index = index

    def model_info(self, path: str) -> ModelInfo | None:
        return self.models.get(path)

    def add_model(self, path: str) -> ModelInfo | None:
        return self.models.add_model(path)

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
        if not (recent and self.conversations.open_conversation(recent[0].id)):
            self.conversations.new_conversation()
        # Headers are read on a worker thread, so a slow disk or a damaged file in the models
        # folder never keeps the window from appearing: a model the library knows loads at
        # once, and otherwise the choice waits for the scan (_models_scanned).
        self._publish_catalog()
        self.models.refresh_models(first_start=True)
        self.models.refresh_remote_models()  # what the connections serve, asked on a worker thread
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
        self.models.close()
        self.docs.shutdown()

    # -- intents -----------------------------------------------------------------------------

    def select_model(self, path: str) -> None:
        model = self.model_info(path)
        if model is None or self.state in (EngineState.GENERATING, EngineState.CLOSED):
            return
        self.current_model = model
        self.config.set("last_model", model.path)
        self.currentModelChanged.emit(model.path)
        self._requested_loras = self._loras_for(model)
        # Loading from now on: a message sent before the engine says so waits for this model
        # (it is queued behind the load), and an earlier load that ends meanwhile is not it.
        self._wanted_model = model.path
        self._set_state(EngineState.LOADING, f"Loading {model.name}…")
        self._load.emit(
            load_request(
                model, self.load_settings, loras=self._requested_loras, remote=self.models.remote_target(model)
            )
        )

    def _loras_for(self, model: ModelInfo) -> tuple[tuple[str, float], ...]:
        """The LoRA adapters (file, scale) this conversation's settings turn on for ``model``."""
        return () if model.remote is not None else enabled_for(self.settings.adapters, model.adapters)

    def sync_adapters(self) -> None:
        """Reload the model when the adapters the settings turn on (or their scales) differ
        from those it was loaded with; they are applied at load."""
        model = self.current_model
        if model is not None and self._loras_for(model) != self._requested_loras:
            self.select_model(model.path)

    def _on_switched(self) -> None:
        """Another conversation is open: its documents and their folder collections."""
        self.docs.documentsChanged.emit()
        if self.conversations.saved:
            self.docs.sync_collections()

    def set_chat_template(self, path: str, key: str | None) -> None:
        """Use a known chat template for a model (None: the GGUF's own), saved with the
        model's defaults; the model reloads with it when it is the one in use."""
        if self.models.set_chat_template(path, key) and self.current_model is not None:
            if self.current_model.path == path:
                self.select_model(path)

    def _publish_catalog(self) -> None:
        """Hand the engine service the models API clients may ask for (a snapshot: the
        service reads it from other threads). Remote models are served by their own servers."""
        entries = []
        for model in self.library.models():
            if model.exists:
                stem = Path(model.path).stem
                # how to load it when a request switches to it: as the window would, without
                # the adapters (those belong to a conversation's settings)
                entries.append(
                    CatalogEntry(stem, model.name, model.path, (model.name,), load_request(model, self.load_settings))
                )
        self.worker.set_catalog(entries)

    def _on_api_job(self, client: str) -> None:
        if self.state is not EngineState.GENERATING:
            who = f" from {client}" if client else ""
            self.statusText.emit(f"Answering an API request{who}…")

    def _on_api_job_ended(self) -> None:
        if self.state is EngineState.READY:
            self.statusText.emit("Ready")

    def _model_added(self, path: str) -> None:
        if self.current_model is None and self.state is not EngineState.GENERATING:
            self.select_model(path)  # the first model a new user adds is ready to chat

    def _models_scanned(self) -> None:
        if self.current_model is None and self.state in (EngineState.STARTING, EngineState.NO_MODEL):
            model = self._initial_model()
            if model is not None:
                self.select_model(model.path)
            else:
                self._set_state(EngineState.NO_MODEL, "No model yet: add a GGUF file to start chatting.")

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

    def send(self, text: str, images: list[Attachment] | None = None) -> bool:
        """Add the user's message (with any images) and ask for a reply. False when it cannot
        be sent now (the caller keeps the text and images in the composer)."""
        text = text.strip()
        images = list(images or [])
        if not (text or images) or self.state in (EngineState.GENERATING, EngineState.CRASHED, EngineState.CLOSED):
            return False
        if _is_notebook(self.conversation):  # a notebook is continued, not chatted with (notebook.py)
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
        if images and not self._can_see_images():
            return False
        message = Message(Role.USER, text, images=images)
        self.conversations.append(message)
        self.messageAdded.emit(message)
        self.conversations.conversationsChanged.emit()
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
        if _is_notebook(self.conversation):
            return False
        if messages[-1].text.strip():
            self.conversations.set_aside(len(messages) - 1)
        else:  # a reply that failed before writing anything is not a version worth keeping
            self.store.delete_message(messages[-1].id)
            self.conversation.remove(messages[-1].id)
        self.conversations.conversationOpened.emit(self.conversation)
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
        images = list(self.conversation.messages[index].images)  # an edit keeps the message's images
        self.conversations.set_aside(index)
        edited = Message(Role.USER, text, images=images)
        self.conversations.append(edited)
        self.conversations.conversationOpened.emit(self.conversation)
        self._generate()
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
        if self.docs.embedder_ready and self._query_vector is None and self.docs.has_documents():
            question = next((m.text for m in reversed(self.conversation.messages) if m.role is Role.USER), "")
            self._set_state(EngineState.GENERATING, "Looking through your documents…")
            self._embed.emit([], [question], "query")  # retrieval continues in _on_embedded
            return
        if self._pacer is not None:
            self._pacer.start()
        messages = self.prompt_messages()
        question = next((m.text for m in reversed(self.conversation.messages) if m.role is Role.USER), "")
        vector = self._query_vector if self._query_vector is not None and self._query_vector is not False else None
        messages, self._citations = self.docs.with_sources(messages, question, vector)
        self._query_vector = None
        self._reply_adapters = self._adapters_record()
        self._reply = Message(
            Role.ASSISTANT,
            "",
            MessageState.STREAMING,
            model=self.current_model.name,
            settings=self.settings.to_dict(),
        )
        self._stop_requested = False
        self.conversations.append(self._reply)
        self._reply_saved_at = time.monotonic()
        self.messageAdded.emit(self._reply)
        self._set_state(EngineState.GENERATING, f"{self.current_model.name} is writing…")
        self.worker.announce_chat()  # queued API requests wait for this reply
        if self.worker.busy_with_api():
            self.statusText.emit("Your reply starts when the engine has finished an API request…")
        self._chat.emit(messages, self._request_settings())

    def _adapters_record(self) -> list[dict[str, Any]]:
        """The LoRA adapters the loaded model has on, for the reply's stats."""
        loaded = self.loaded_info.loras if self.loaded_info is not None else ()
        names = {a.path: a.name for a in (self.current_model.adapters if self.current_model else [])}
        return [{"name": names.get(path, Path(path).stem), "path": path, "scale": scale} for path, scale in loaded]

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

    def prompt_messages(self) -> list[dict[str, Any]]:
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

    def _can_see_images(self) -> bool:
        """Whether the model can take images; says why not when it cannot (nothing is sent,
        so nothing the person wrote is lost). A model still loading is asked when it is ready."""
        model = self.current_model
        info = self.loaded_info
        if model is not None and model.remote is not None:
            return True  # the server says whether it can, in its answer
        if self.state is EngineState.READY and info is not None and not info.vision:
            self.errorMessage.emit(NO_VISION)
            return False
        if self.state is not EngineState.READY and model is not None and not (model.defaults.mmproj or model.projector):
            self.errorMessage.emit(NO_VISION)
            return False
        return True

    def request_context_count(self, draft: str = "", images: list[Attachment] | None = None) -> None:
        """Count the conversation (and what the user is typing) with the model's tokenizer;
        the answer comes as contextChanged. Only the newest request's answer is used."""
        if self.state is not EngineState.READY or self.loaded_info is None:
            return
        messages = self.prompt_messages()
        if draft.strip() or images:
            messages.append({"role": "user", "content": content_parts(draft, images) if images else draft})
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
        self._publish_catalog()  # API and compare switches load with them too
        if self.current_model is not None:
            self.select_model(self.current_model.path)

    def _finish_reply(self, state: MessageState, stats: dict) -> None:
        reply, self._reply = self._reply, None
        if reply is None:
            return
        reply.state = state
        if self._citations:
            stats = dict(stats, sources=sources_stats(reply.text, self._citations))
            self._citations = []
        reply.stats = stats or None
        self.store.update_message(reply)
        self.store.touch(self.conversation.id)
        self.replyFinished.emit(reply)
        self.conversations.conversationsChanged.emit()

    # -- worker events -----------------------------------------------------------------------

    def _on_engine_ready(self, version: str) -> None:
        if self.state is EngineState.STARTING and self.current_model is None and not self.models.scanning:
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
        if info.fallback_notice:
            self.infoMessage.emit(info.fallback_notice)
        if info.vision_notice:
            self.infoMessage.emit(info.vision_notice)
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
            if self._pacer is not None:  # batches as often as the GUI can afford to draw them
                self.worker.flush_interval = self._pacer.batch()
            now = time.monotonic()
            if now - self._reply_saved_at >= self.SAVE_INTERVAL:
                self._reply_saved_at = now
                self.store.update_message(self._reply)  # queued: the writer thread commits it

    def _on_finished(self, reason: str, stats: dict) -> None:
        stopped = reason == "cancelled" or self._stop_requested
        stats = dict(stats, finish_reason=reason)
        if self._reply_adapters:
            stats["adapters"] = self._reply_adapters  # which LoRA adapters were on
        empty = not stopped and self._reply is not None and not self._reply.text.strip()
        if self._reply is not None and not stopped and not empty:
            asked = self._reply.settings or {}
            check = check_reply(asked.get("response_format"), asked.get("json_schema"), self._reply.text)
            if check is not None:
                stats["format_check"] = check  # shown under the reply (and pretty when it is valid JSON)
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
        self.docs.embed_missing()
        self.sync_adapters()  # adapters changed while the reply was written apply now

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

    def _on_embedder_failed(self, message: str) -> None:
        if self._query_vector is None and self.state is EngineState.GENERATING and self._reply is None:
            self._query_vector = False  # retrieve by keywords only this time
            self._set_state(EngineState.READY, "")
            self._generate()
        self.docs.on_embedder_failed(message)

    def _on_embedded(self, ids: list[Any], vectors: list[Any], tag: str) -> None:
        if tag != "query":
            self.docs.on_passages_embedded(ids, vectors)
            return
        import numpy as np

        self._query_vector = np.asarray(vectors[0], dtype=np.float32)
        self._set_state(EngineState.READY, "")
        self._generate()

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


def _is_notebook(conversation: Conversation) -> bool:
    return (conversation.settings or {}).get("mode") == "notebook"
