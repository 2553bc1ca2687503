"""The engine worker: a QObject living on its own QThread that owns the EngineClient.

It turns the child's events into Qt signals. Streamed text is batched (flushed about
every ``flush_interval`` seconds and at the end) so a fast model cannot flood the GUI
thread's event queue. Slots run on the worker thread; ``cancel`` and ``kill`` are called
directly from the GUI thread and only touch thread-safe primitives.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.core.gguf import GGUFError, read_gguf
from app.engine import protocol as p
from app.engine.client import EngineClient, EngineCrashed, EngineError


class EngineWorker(QObject):
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
    promptCounted = Signal(int, int)  # tokens of the conversation + draft, request serial
    promptInfo = Signal(object)  # protocol.PromptInfo, before the first tokens
    streamStats = Signal(int, float)  # tokens so far, seconds since the first token
    unloaded = Signal()
    embedderLoaded = Signal(int)  # vector size (0: no embedding model)
    embedderFailed = Signal(str)
    embedded = Signal(object, object, str)  # ids, vectors, tag
    stopped = Signal()  # shutdown() finished

    def __init__(self, flush_interval: float = 0.04, client: EngineClient | None = None) -> None:
        super().__init__()
        self.flush_interval = flush_interval
        self._client = client or EngineClient()
        self._model: p.Load | None = None  # the last model that loaded fine
        self._info: p.Loaded | None = None  # and what the engine said about it
        self._busy = False

    # -- called directly from the GUI thread ---------------------------------------------

    def cancel(self) -> None:
        self._client.cancel()

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
        self._model, self._info = request, info
        self.loaded.emit(info)

    def _restore_previous(self, failed: p.Load) -> None:
        """Keep the user chatting with the model they had before the failed load."""
        previous, self._model, self._info = self._model, None, None
        if previous is None or previous.model_path == failed.model_path or not self._client.alive:
            return
        self.loading.emit(previous.model_path)
        try:
            info = self._client.load(previous)
        except EngineError as exc:
            self.loadFailed.emit(str(exc))
            return
        self._model, self._info = previous, info
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
            for event in self._client.chat(p.Chat(messages, settings), tick=self.flush_interval):
                if isinstance(event, p.Delta):
                    pending.append(event.text)
                    count += 1  # llama-cpp-python streams one chunk per token
                    if first is None:
                        first = time.monotonic()
                elif isinstance(event, p.PromptInfo):
                    self.promptInfo.emit(event)
                elif isinstance(event, p.Done):
                    flush()
                    self.streamStats.emit(count, time.monotonic() - first if first else 0.0)
                    self.finished.emit(event.reason, event.stats)
                    return
                if time.monotonic() - last_flush >= self.flush_interval:
                    flush()
        except EngineCrashed as exc:
            flush()
            self.crashed.emit(str(exc))
        except EngineError as exc:
            flush()
            self.failed.emit(str(exc))

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
            self.embedderLoaded.emit(self._client.load_embedder(model_path))
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
            self.promptCounted.emit(self._client.count_prompt(messages), serial)
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
        self.stopped.emit()
        thread = QThread.currentThread()
        if thread is not None:
            thread.quit()
