"""The engine worker: a QObject living on its own QThread that owns the EngineClient.

The job queue that API clients submit to (``submit``/``models``: the EngineGateway of
app/engine/jobs.py) is :class:`app.engine.service.EngineService`, this class plus the queue;
the session runs one as ``session.worker``.

It turns the child's events into Qt signals. Streamed text is batched (flushed about
every ``flush_interval`` seconds and at the end) so a fast model cannot flood the GUI
thread's event queue. Slots run on the worker thread; ``cancel`` and ``kill`` are called
directly from the GUI thread and only touch thread-safe primitives.

While a reply streams, the worker does not wake up for each token: after a flush it sleeps
until the next one is due and lets the tokens gather in the pipe, then reads them all at once
(the pipe is drained when it stays empty for ``DRAIN_TICK``). With llama.cpp on every core,
each wake-up of this process takes a slice of a core from a compute step that all of
llama.cpp's threads wait for; waking once per batch instead of once per token is a few
percent of generation speed on a 2-core machine.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.core.gguf import GGUFError, read_gguf
from app.engine import protocol as p
from app.engine.client import EngineClient, EngineCrashed, EngineError

if TYPE_CHECKING:  # the HTTP stack is imported when a remote model is first picked
    from app.engine.remote import RemoteBackend


class EngineWorker(QObject):
    # How long an empty pipe means "drained" (then the batch is flushed), and how often the
    # worker looks for the first token while the prompt is evaluated (time to first token
    # grows by about half of it; a blocking wait would wake for every later token too).
    DRAIN_TICK = 0.002
    PROMPT_POLL = 0.015

    engineStarting = Signal()
    engineReady = Signal(str)  # llama.cpp version
    gpuOffload = Signal(bool)  # whether the build can use a GPU (the GPU layers setting matters)
    loading = Signal(str)  # model path
    loaded = Signal(object)  # protocol.Loaded
    loadFailed = Signal(str)  # message naming the file and the reason
    tokens = Signal(str)  # a batch of new text
    # reason ("stop", "length", "cancelled", "context_full"), stats dict. Python objects cross
    # threads as "object": converting dicts and lists to QVariant and back costs time and has
    # crashed PySide at exit (a bool refcount error).
    finished = Signal(str, object)
    failed = Signal(str)  # the request failed; the engine is still up
    crashed = Signal(str)  # the engine process died; restart() brings it back
    tokenCount = Signal(int)
    # tokens of the conversation + draft, request serial, exact (False: a remote server's estimate)
    promptCounted = Signal(int, int, bool)
    promptInfo = Signal(object)  # protocol.PromptInfo, before the first tokens
    streamStats = Signal(int, float)  # tokens so far, seconds since the first token
    unloaded = Signal()
    embedderLoaded = Signal(int)  # vector size (0: no embedding model)
    embedderFailed = Signal(str)
    embedded = Signal(object, object, str)  # ids, vectors, tag
    waiting = Signal(str)  # a remote server asked us to wait (429): what to show meanwhile
    interrupted = Signal(str)  # a remote reply was cut off; what arrived is kept (message why)
    stopped = Signal()  # shutdown() finished

    def __init__(self, flush_interval: float = 0.04, client: EngineClient | None = None) -> None:
        super().__init__()
        self.flush_interval = flush_interval
        self._client = client or EngineClient()
        self._model: p.Load | None = None  # the last model that loaded fine
        self._info: p.Loaded | None = None  # and what the engine said about it
        self._busy = False
        self._embedder_path: str | None = None  # the model loaded in embedding mode, if any
        # Remote servers, one backend per connection; the chat model is served by the local
        # engine (self._client) or by one of these (self._active).
        self._remotes: dict[str, RemoteBackend] = {}
        self._active: EngineClient | RemoteBackend = self._client

    # -- called directly from the GUI thread ---------------------------------------------

    def cancel(self) -> None:
        self._client.cancel()
        active = self._active  # one read: the worker thread may switch it
        if active is not self._client:
            active.cancel()

    def kill(self) -> None:
        self._client.kill()

    @property
    def engine_pid(self) -> int | None:
        return self._client.pid

    # -- slots (worker thread) ------------------------------------------------------------

    @Slot()
    def start_engine(self) -> None:
        self.engineStarting.emit()
        try:
            ready = self._client.start()
        except EngineError as exc:
            self.crashed.emit(str(exc))
            return
        self.gpuOffload.emit(ready.gpu_offload)
        self.engineReady.emit(ready.llama_cpp_version)

    @Slot()
    def restart(self) -> None:
        """A fresh child, with the last good model loaded again."""
        self.start_engine()
        if self._client.alive and self._model is not None:
            self.load(self._model)

    @Slot(object)
    def load(self, request: p.Load) -> None:
        self.loading.emit(request.model_path)
        if request.remote is not None:
            self._load_remote(request, request.remote)
            return
        try:
            read_gguf(request.model_path)  # a clear message for files that are not models at all
        except (GGUFError, OSError) as exc:
            reason = (
                str(exc) if isinstance(exc, GGUFError) else f"{Path(request.model_path).name}: {exc.strerror or exc}"
            )
            self.loadFailed.emit(reason)
            if self._info is not None:  # nothing was unloaded: the old model is still there
                self.loaded.emit(self._info)
            return
        if not self._client.alive:
            self.start_engine()
            if not self._client.alive:
                return
        try:
            info = self._client.load(request)
        except EngineCrashed as exc:
            name = Path(request.model_path).name
            self.loadFailed.emit(
                f"{name}: llama.cpp crashed while loading this file ({exc.how}); "
                "it is damaged or not a model llama.cpp supports."
            )
            self.start_engine()
            self._restore_previous(request)
            return
        except EngineError as exc:
            self.loadFailed.emit(str(exc))
            self._restore_previous(request)
            return
        self._model, self._info, self._active = request, info, self._client
        self.loaded.emit(info)

    def _load_remote(self, request: p.Load, target: p.RemoteTarget) -> None:
        """Select a model on another server: no weights move, the server is asked what it
        serves and how long its context is. A failure keeps the model the person had."""
        try:
            backend = self._remote_backend(target)
            info = backend.load(replace(request, model_path=target.model_id, remote=None))
        except EngineError as exc:
            self.loadFailed.emit(str(exc))
            if self._info is not None:
                self.loaded.emit(self._info)
            return
        # the reference the session knows; and the knobs this server would ignore, for the panel
        info = replace(info, model_path=request.model_path, ignored_settings=backend.ignored_settings())
        self._model, self._info, self._active = request, info, backend
        self.loaded.emit(info)

    def _remote_backend(self, target: p.RemoteTarget) -> RemoteBackend:
        backend = self._remotes.get(target.connection)
        if backend is None or backend.root != target.base_url:
            if backend is not None:
                backend.close()
            from app.core.connections import ConnectionStore
            from app.engine.remote import RemoteBackend

            connection = ConnectionStore().get(target.connection)
            key = ConnectionStore.api_key(connection) if connection is not None else None  # keyring: this thread
            backend = RemoteBackend(target.base_url, key)
            self._remotes[target.connection] = backend
        return backend

    def _restore_previous(self, failed: p.Load) -> None:
        """Keep the user chatting with the model they had before the failed load."""
        previous, self._model, self._info = self._model, None, None
        if previous is not None and previous.remote is not None and previous.model_path != failed.model_path:
            self.loading.emit(previous.model_path)
            self._load_remote(previous, previous.remote)  # nothing of it lived in the engine
            return
        if previous is None or previous.model_path == failed.model_path or not self._client.alive:
            return
        self.loading.emit(previous.model_path)
        try:
            info = self._client.load(previous)
        except EngineError as exc:
            self.loadFailed.emit(str(exc))
            return
        self._model, self._info, self._active = previous, info, self._client
        self.loaded.emit(info)

    @Slot(object, object)
    def chat(self, messages: list[dict[str, str]], settings: dict[str, Any]) -> None:
        pending: list[str] = []
        last_flush = time.monotonic()
        first: float | None = None
        count = 0
        stats_at = [0.0]

        def flush() -> None:
            nonlocal last_flush
            if pending:
                self.tokens.emit("".join(pending))
                pending.clear()
                now = time.monotonic()
                if now - stats_at[0] >= 0.25:  # the meter and status need not move at token speed
                    stats_at[0] = now
                    self.streamStats.emit(count, now - first if first else 0.0)
            last_flush = time.monotonic()

        try:
            for event in self._active.chat(p.Chat(messages, settings), tick=self.DRAIN_TICK):
                if event is None:  # the pipe is drained: show the batch, then let tokens gather
                    flush()
                    wait = (
                        last_flush + self.flush_interval - time.monotonic() if first is not None else self.PROMPT_POLL
                    )
                    if wait > 0:
                        time.sleep(wait)
                    continue
                if isinstance(event, p.Delta):
                    pending.append(event.text)
                    count += 1  # llama-cpp-python streams one chunk per token
                    if first is None:
                        first = time.monotonic()
                elif isinstance(event, p.PromptInfo):
                    if self._active is not self._client and self._info is not None:
                        event = replace(event, model_path=self._info.model_path)  # the remote:// ref
                    self.promptInfo.emit(event)
                elif isinstance(event, p.Waiting):
                    self.waiting.emit(event.reason)
                elif isinstance(event, p.Done):
                    flush()
                    self.streamStats.emit(count, time.monotonic() - first if first else 0.0)
                    self.finished.emit(event.reason, event.stats)
                    return
                if time.monotonic() - last_flush >= 2 * self.flush_interval:
                    flush()  # a source that never pauses (the drain above never ends)
        except EngineCrashed as exc:
            flush()
            self.crashed.emit(str(exc))
        except EngineError as exc:
            flush()
            # A remote stream cut after text arrived: the reply is kept and marked interrupted.
            remote = self._active is not self._client
            (self.interrupted if remote and count else self.failed).emit(str(exc))

    @Slot()
    def unload(self) -> None:
        """Free the model (it is being deleted, or the user wants the memory back)."""
        self._model = self._info = None
        if self._client.alive:
            try:
                self._client.unload()
            except EngineCrashed as exc:
                self.crashed.emit(str(exc))
                return
            except EngineError:
                pass
        self.unloaded.emit()

    @Slot(object)
    def load_embedder(self, model_path: str | None) -> None:
        try:
            dims = self._client.load_embedder(model_path)
            self._embedder_path = model_path  # the embedding model in the engine now
            self.embedderLoaded.emit(dims)
        except EngineCrashed as exc:
            self.crashed.emit(str(exc))
        except EngineError as exc:
            self.embedderFailed.emit(str(exc))

    @Slot(object, object, str)
    def embed(self, ids: list[object], texts: list[str], tag: str) -> None:
        try:
            self.embedded.emit(ids, self._client.embed(texts), tag)
        except EngineCrashed as exc:
            self.crashed.emit(str(exc))
        except EngineError as exc:
            self.embedderFailed.emit(str(exc))

    @Slot(object, int)
    def count_prompt(self, messages: list[dict[str, str]], serial: int) -> None:
        try:
            active = self._active
            if isinstance(active, EngineClient):
                self.promptCounted.emit(active.count_prompt(messages), serial, True)
            else:
                count, exact = active.count_prompt_info(messages)
                self.promptCounted.emit(count, serial, exact)
        except EngineCrashed as exc:
            self.crashed.emit(str(exc))
        except EngineError:
            pass

    @Slot(str)
    def count_tokens(self, text: str) -> None:
        try:
            self.tokenCount.emit(self._client.tokenize(text))
        except EngineCrashed as exc:
            self.crashed.emit(str(exc))
        except EngineError:
            pass

    @Slot()
    def shutdown(self) -> None:
        self._client.stop()
        for backend in self._remotes.values():
            backend.close()
        self.stopped.emit()
        thread = QThread.currentThread()
        if thread is not None:
            thread.quit()
