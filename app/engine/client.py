"""The GUI process's handle on the engine child: start it, send requests, read events.

No Qt here, so benchmarks and tests can drive the engine directly. The worker thread is
the only caller, except :meth:`EngineClient.cancel` and :meth:`EngineClient.kill`, which
are safe to call from any thread (the child is busy streaming and would not read a
queued "cancel" message, so cancel is a shared Event checked between tokens).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from multiprocessing.synchronize import Event
from typing import cast

from app.engine import protocol as p


class EngineError(Exception):
    """A request the engine refused or could not do (bad file, no model loaded…)."""


class EngineCrashed(EngineError):
    """The child process died; ``exitcode`` is negative when a signal killed it."""

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        self.how = describe_exit(exitcode)
        super().__init__(f"The model engine stopped unexpectedly ({self.how}). Your conversation is safe.")


def describe_exit(exitcode: int | None) -> str:
    """'signal 9, SIGKILL' or 'exit code 1': what a user can quote in a bug report."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        how = f"signal {-exitcode}, {name}"
    elif exitcode is None:
        how = "it stopped responding"
    else:
        how = f"exit code {exitcode}"
    return how


_ctx = mp.get_context("spawn")


class EngineClient:
    """One engine child process. ``start`` again after a crash to get a fresh one."""

    def __init__(self, cancel: Event | None = None, start_timeout: float = 120.0) -> None:
        # Made at the first start, not here: a multiprocessing Event starts the resource
        # tracker (another Python process) while the window is still building its first frame.
        self._cancel_event: Event | None = cancel
        self._start_timeout = start_timeout
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection[object, object] | None = None
        self.ready: p.Ready | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def _cancel(self) -> Event:
        if self._cancel_event is None:
            self._cancel_event = _ctx.Event()
        return self._cancel_event

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self) -> p.Ready:
        from app.engine.child import main as child_main  # the child's entry point

        self.stop()
        parent_conn, child_conn = _ctx.Pipe(duplex=True)
        proc = _ctx.Process(target=child_main, args=(child_conn, self._cancel), name="hearth-engine", daemon=True)
        proc.start()
        child_conn.close()
        self._proc, self._conn = proc, parent_conn
        event = self._next(self._start_timeout)
        if not isinstance(event, p.Ready):
            raise EngineError(f"The model engine did not start ({event!r}).")
        self.ready = event
        return event

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the child to exit, then insist: closing must never hang the app."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None:
            return
        self._cancel.set()
        try:
            if conn is not None and proc.is_alive():
                conn.send(p.Shutdown())
        except (OSError, BrokenPipeError):
            pass
        proc.join(timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join(0.5)
        if proc.is_alive():
            proc.kill()
            proc.join(0.5)
        if conn is not None:
            conn.close()

    def kill(self) -> None:
        """Last resort from any thread (the app is closing and the worker is stuck)."""
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.kill()

    # -- requests ----------------------------------------------------------------------

    def cancel(self) -> None:
        if self._cancel_event is not None:  # no child was ever started: nothing to cancel
            self._cancel_event.set()

    def load(self, request: p.Load, timeout: float = 600.0) -> p.Loaded:
        self._send(request)
        event = self._next(timeout)
        if isinstance(event, p.Error):
            raise EngineError(event.message)
        assert isinstance(event, p.Loaded), event
        return event

    def chat(
        self, request: p.Chat | p.Complete, tick: float | None = None
    ) -> Iterator[p.PromptInfo | p.Delta | p.Done | None]:
        """Yield a PromptInfo, deltas, then one Done. With ``tick``, yield None whenever ``tick`` seconds
        pass without an event, so the caller can flush what it batched."""
        self._cancel.clear()
        self._send(request)
        while True:
            event = self._next(tick)
            if event is None:
                yield None
                continue
            if isinstance(event, p.Error):
                raise EngineError(event.message)
            # The child answers a Chat with a PromptInfo, Deltas and a Done (an Error is raised above).
            yield cast(p.PromptInfo | p.Delta | p.Done, event)
            if isinstance(event, p.Done):
                return

    def tokenize(self, text: str, timeout: float = 30.0) -> int:
        self._send(p.Tokenize(text))
        event = self._next(timeout)
        if isinstance(event, p.Error):
            raise EngineError(event.message)
        assert isinstance(event, p.TokenCount), event
        return event.count

    def count_prompt(self, messages: list[dict[str, str]], timeout: float = 30.0) -> int:
        self._send(p.CountPrompt(messages))
        event = self._next(timeout)
        if isinstance(event, p.Error):
            raise EngineError(event.message)
        assert isinstance(event, p.TokenCount), event
        return event.count

    def load_embedder(self, model_path: str | None, n_threads: int | None = None, timeout: float = 600.0) -> int:
        """Load (or with None, unload) the embedding model; returns its vector size."""
        self._send(p.LoadEmbedder(model_path, n_threads))
        event = self._next(timeout)
        if isinstance(event, p.Error):
            raise EngineError(event.message)
        assert isinstance(event, p.EmbedderLoaded), event
        return event.dimensions

    def embed(self, texts: list[str], timeout: float = 600.0) -> list[list[float]]:
        self._send(p.Embed(list(texts)))
        event = self._next(timeout)
        if isinstance(event, p.Error):
            raise EngineError(event.message)
        assert isinstance(event, p.Embeddings), event
        return event.vectors

    def benchmark(self, request: p.Benchmark, tick: float | None = None) -> Iterator[p.BenchStage | p.BenchDone | None]:
        """Yield BenchStage events, then one BenchDone (None every ``tick`` seconds without an
        event). :meth:`cancel` ends it at the next batch or token with a cancelled BenchDone."""
        self._cancel.clear()
        self._send(request)
        while True:
            event = self._next(tick)
            if isinstance(event, p.Error):
                raise EngineError(event.message)
            yield cast(p.BenchStage | p.BenchDone | None, event)
            if isinstance(event, p.BenchDone):
                return

    def unload(self, timeout: float = 30.0) -> None:
        self._send(p.Unload())
        event = self._next(timeout)
        if isinstance(event, p.Error):
            raise EngineError(event.message)

    # -- plumbing ----------------------------------------------------------------------

    def _send(self, request: object) -> None:
        if self._proc is None or self._conn is None:
            raise EngineError("The model engine is not running.")
        try:
            self._conn.send(request)
        except (OSError, BrokenPipeError) as exc:
            raise self._crashed() from exc

    def _next(self, timeout: float | None) -> object | None:
        """The next event, None on timeout; EngineCrashed if the child died."""
        proc, conn = self._proc, self._conn
        if proc is None or conn is None:
            raise EngineError("The model engine is not running.")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([conn, proc.sentinel], remaining)
            if conn in ready:
                try:
                    return conn.recv()
                except (EOFError, OSError):
                    raise self._crashed() from None
            if proc.sentinel in ready:
                raise self._crashed()
            if not ready:
                return None

    def _crashed(self) -> EngineCrashed:
        proc = self._proc
        exitcode = None
        if proc is not None:
            proc.join(1.0)
            exitcode = proc.exitcode
        self.stop(timeout=0.1)
        return EngineCrashed(exitcode)
