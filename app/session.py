"""The chat session: the one object that turns the user's intents into engine requests.

Widgets call its intent methods (send, stop, select_model, restart_engine) and draw from
its signals; the engine worker lives on its own thread and is reached only through
queued signals, except for the thread-safe ``cancel``.
"""

from __future__ import annotations

import enum
from pathlib import Path

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from app.core.config import AppConfig
from app.core.gguf import GGUFError
from app.core.conversation import Conversation, Message, MessageState, Role
from app.core.library import ModelInfo, ModelLibrary
from app.core.presets import effective_system_prompt, few_shot_turns
from app.core.settings import LoadSettings, SamplingSettings
from app.engine import protocol as p
from app.engine.worker import EngineWorker


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

    # queued requests to the worker thread
    _startEngine = Signal()
    _restartEngine = Signal()
    _load = Signal(object)
    _chat = Signal(object, object)
    _shutdown = Signal()

    def __init__(
        self,
        library: ModelLibrary,
        config: AppConfig,
        settings: SamplingSettings | None = None,
        load_settings: LoadSettings | None = None,
        flush_interval: float = 0.04,
    ) -> None:
        super().__init__()
        self.library = library
        self.config = config
        self.settings = settings or SamplingSettings()
        self.load_settings = load_settings or LoadSettings()
        self.conversation = Conversation()
        self.few_shot: list[tuple[str, str]] = []  # example exchanges sent as real prior turns
        self.state = EngineState.STARTING
        self.current_model: ModelInfo | None = None
        self.loaded_info: p.Loaded | None = None
        self._reply: Message | None = None
        self._pending_send = False
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
        self.worker.engineReady.connect(self._on_engine_ready)
        self.worker.loading.connect(self._on_loading)
        self.worker.loaded.connect(self._on_loaded)
        self.worker.loadFailed.connect(self._on_load_failed)
        self.worker.tokens.connect(self._on_tokens)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.crashed.connect(self._on_crashed)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine thread and child, then load the model the user had last."""
        self._thread.start()
        self._set_state(EngineState.STARTING, "Starting the model engine…")
        self._startEngine.emit()
        if self.library.ensure_demo_model() is not None:
            self.modelsChanged.emit()
        model = self._initial_model()
        if model is not None:
            self.select_model(model.path)
        else:
            self._set_state(EngineState.NO_MODEL, "No model yet: add a GGUF file to start chatting.")

    def _initial_model(self) -> ModelInfo | None:
        last = self.config.get("last_model")
        if last:
            model = self.library.get(last)
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

    # -- intents -----------------------------------------------------------------------------

    def select_model(self, path: str) -> None:
        model = self.library.get(path)
        if model is None or self.state in (EngineState.GENERATING, EngineState.CLOSED):
            return
        self.current_model = model
        self.config.set("last_model", model.path)
        self.currentModelChanged.emit(model.path)
        load = LoadSettings(**self.load_settings.to_dict())
        if model.context_length:
            load.n_ctx = min(load.n_ctx, model.context_length)
        self._load.emit(p.Load(model.path, load.n_ctx, load.n_threads, load.n_gpu_layers, load.n_batch))

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
        problems = self.settings.validate(self.loaded_info.n_ctx if self.loaded_info else None)
        if problems:
            self.errorMessage.emit(" ".join(pr.message for pr in problems))
            return False
        message = Message(Role.USER, text)
        self.conversation.messages.append(message)
        self.messageAdded.emit(message)
        if self.state is EngineState.READY:
            self._generate()
        else:
            self._pending_send = True  # answered as soon as the model has loaded
            self.statusText.emit("Your message will be answered when the model has loaded…")
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
        messages = self.prompt_messages()
        self._reply = Message(
            Role.ASSISTANT,
            "",
            MessageState.STREAMING,
            model=self.current_model.name,
            settings=self.settings.to_dict(),
        )
        self._stop_requested = False
        self.conversation.messages.append(self._reply)
        self.messageAdded.emit(self._reply)
        self._set_state(EngineState.GENERATING, f"{self.current_model.name} is writing…")
        self._chat.emit(messages, self.settings.to_dict())

    def prompt_messages(self) -> list[dict[str, str]]:
        """What goes through the model's chat template: the system prompt (with the
        chain-of-thought instruction when on), few-shot examples as real turns, then the chat."""
        messages = self.conversation.chat_messages(effective_system_prompt(self.settings))
        at = 1 if messages and messages[0]["role"] == "system" else 0
        messages[at:at] = few_shot_turns(self.few_shot)
        return messages

    def set_load_settings(self, load: LoadSettings) -> None:
        """New load-time values (context, threads…): reload the current model with them."""
        self.load_settings = load
        if self.current_model is not None:
            self.select_model(self.current_model.path)

    def _finish_reply(self, state: MessageState, stats: dict) -> None:
        reply, self._reply = self._reply, None
        if reply is None:
            return
        reply.state = state
        reply.stats = stats or None
        self.replyFinished.emit(reply)

    # -- worker events -----------------------------------------------------------------------

    def _on_engine_ready(self, version: str) -> None:
        if self.state is EngineState.STARTING and self.current_model is None:
            self._set_state(EngineState.NO_MODEL, "No model yet: add a GGUF file to start chatting.")

    def _on_loading(self, path: str) -> None:
        model = self.library.get(path)
        name = model.name if model else Path(path).name
        self._set_state(EngineState.LOADING, f"Loading {name}…")

    def _on_loaded(self, info: p.Loaded) -> None:
        if self.state is EngineState.CLOSED:
            return
        self.loaded_info = info
        model = self.library.get(info.model_path)
        if model is not None and (self.current_model is None or self.current_model.path != model.path):
            self.current_model = model  # a failed load fell back to this one
            self.currentModelChanged.emit(model.path)
        name = model.name if model else Path(info.model_path).name
        self._set_state(EngineState.READY, f"Ready — {name}, context {info.n_ctx:,} tokens")
        if self._pending_send:
            self._pending_send = False
            self._generate()

    def _on_load_failed(self, message: str) -> None:
        """The worker follows this with ``loaded`` when the previous model is (still) there."""
        self.errorMessage.emit(message)
        self.loaded_info = None
        self.current_model = None
        self._pending_send = False
        self._set_state(EngineState.NO_MODEL, "Could not load the model — choose another one.")

    def _on_tokens(self, text: str) -> None:
        if self._reply is not None:
            self._reply.text += text
            self.replyText.emit(text)

    def _on_finished(self, reason: str, stats: dict) -> None:
        stopped = reason == "cancelled" or self._stop_requested
        stats = dict(stats, finish_reason=reason)
        self._finish_reply(MessageState.STOPPED if stopped else MessageState.COMPLETE, stats)
        if self.state is EngineState.CLOSED:
            return
        rate = stats.get("tokens_per_s")
        done = "Stopped" if stopped else "Done"
        extra = f" — {stats.get('tokens', 0)} tokens" + (f", {rate:.1f} tokens/s" if rate else "")
        self._set_state(EngineState.READY, done + extra)

    def _on_failed(self, message: str) -> None:
        self._finish_reply(MessageState.FAILED, {})
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
