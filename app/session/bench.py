"""Measure a model on this computer, in an engine process of its own, off the GUI thread.

A fresh process per benchmark: its peak memory is then this model's (load and run) and
nothing else's, and the chat's engine keeps its model. One benchmark at a time; cancel
stops it at the next batch or token, or ends its process when it is still loading.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, SignalInstance

from app.core.library import ModelInfo
from app.core.model_bench import GEN_TOKENS, PROMPT_TOKENS, BenchResult, BenchStore, file_stamp
from app.core.settings import LoadSettings
from app.engine import protocol as p
from app.engine.params import load_request

if TYPE_CHECKING:
    from app.engine.client import EngineClient

STAGE_WORDS = {
    "start": "starting the engine",
    "load": "loading",
    "prompt": f"reading a {PROMPT_TOKENS}-token prompt",
    "generate": f"writing {GEN_TOKENS} tokens",
}


class ModelBenchmark(QObject):
    """``start(model)`` → ``stage(path, words)``…, then one of ``finished(path, result)``,
    ``failed(path, message)`` or ``cancelled(path)``; results are saved in ``store``."""

    stage = Signal(str, str)
    finished = Signal(str, object)  # path, BenchResult
    failed = Signal(str, str)
    cancelled = Signal(str)

    def __init__(self, store: BenchStore | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store if store is not None else BenchStore()
        self.running: str | None = None  # the path being measured
        self._client: EngineClient | None = None
        self._thread: threading.Thread | None = None
        self._cancelled = False

    def start(self, model: ModelInfo, n_threads: int | None = None, n_gpu_layers: int = 0) -> bool:
        """Begin measuring ``model`` (False: another benchmark is running, or no file)."""
        if self.running is not None or model.remote is not None:
            return False
        # as the model is loaded to chat (its threads, GPU layers, flash attention, KV cache
        # type…), with just the context the workload needs and no image projector
        n_ctx = PROMPT_TOKENS + GEN_TOKENS
        if model.context_length:
            n_ctx = min(n_ctx, model.context_length)
        chat_load = load_request(model, LoadSettings(n_threads=n_threads, n_gpu_layers=n_gpu_layers))
        load = replace(chat_load, n_ctx=n_ctx, n_batch=min(chat_load.n_batch, n_ctx), mmproj_path=None)
        request = p.Benchmark(load, PROMPT_TOKENS, GEN_TOKENS)
        self.running = model.path
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, args=(request,), name="model-benchmark", daemon=True)
        self._thread.start()
        return True

    def cancel(self) -> None:
        """Stop now: the engine stops between tokens, or its process ends (while loading)."""
        if self.running is None:
            return
        self._cancelled = True
        client = self._client
        if client is not None:
            client.cancel()
            threading.Timer(2.0, client.kill).start()  # still loading: end the process

    def close(self) -> None:
        """The app is closing: end a benchmark's process at once."""
        self._cancelled = True
        client = self._client
        if client is not None:
            client.kill()

    # -- the worker thread --------------------------------------------------------------------

    def _emit(self, signal: SignalInstance, *args: object) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # deleted meanwhile (the app is closing)
            pass

    def _run(self, request: p.Benchmark) -> None:
        from app.engine.client import EngineClient, EngineError  # noqa: PLC0415

        path = request.load.model_path
        client = EngineClient()
        outcome: tuple[str, object] = ("cancelled", None)
        try:
            self._emit(self.stage, path, STAGE_WORDS["start"])
            if self._cancelled:
                return
            self._client = client
            ready = client.start()
            if self._cancelled:
                return
            done: p.BenchDone | None = None
            for event in client.benchmark(request):
                if isinstance(event, p.BenchStage):
                    self._emit(self.stage, path, STAGE_WORDS.get(event.stage, event.stage))
                elif isinstance(event, p.BenchDone):
                    done = event
            if done is None or done.cancelled or self._cancelled:
                return
            result = BenchResult(
                prompt_tokens=done.prompt_tokens,
                prompt_tok_s=round(done.prompt_tokens / max(done.prompt_seconds, 1e-9), 1),
                gen_tokens=done.gen_tokens,
                gen_tok_s=round(done.gen_tokens / max(done.gen_seconds, 1e-9), 1),
                load_seconds=round(done.load_seconds, 3),
                peak_rss=done.peak_rss,
                n_threads=request.load.n_threads,
                n_gpu_layers=request.load.n_gpu_layers,
                n_ctx=done.n_ctx,
                llama_cpp=ready.llama_cpp_version,
                measured=time.time(),
            )
            try:
                self.store.put(path, result, file_stamp(path))
            except OSError as exc:
                outcome = ("failed", f"Measured, but the figures could not be saved: {exc.strerror or exc}")
                return
            outcome = ("finished", result)
        except EngineError as exc:
            if not self._cancelled:
                outcome = ("failed", str(exc))
        except Exception as exc:  # said in words; the window never sees a traceback
            outcome = ("failed", f"The benchmark of {Path(path).name} failed ({type(exc).__name__}).")
        finally:
            self._client = None
            client.stop(timeout=2.0)
            self.running = None
            kind, value = outcome
            if kind == "finished":
                self._emit(self.finished, path, value)
            elif kind == "failed":
                self._emit(self.failed, path, value)
            else:
                self._emit(self.cancelled, path)
