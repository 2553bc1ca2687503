"""EngineWorker on its QThread, driven by signals as the session drives it (tiny model)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, QThread, Signal

from app.core.settings import SamplingSettings
from app.engine import protocol as p
from app.engine.worker import EngineWorker


class Driver(QObject):
    """Lives on the GUI thread: sends requests (queued to the worker) and relays the worker's
    signals back to this thread, as the session does, so waits happen where Qt expects."""

    start = Signal()
    load = Signal(object)
    chat = Signal(object, object)
    shutdown = Signal()
    engineReady = Signal(str)
    loaded = Signal(object)
    loadFailed = Signal(str)
    tokens = Signal(str)
    finished = Signal(str, object)


@pytest.fixture
def worker(qtbot):
    thread = QThread()
    w = EngineWorker(flush_interval=0.04)
    w.moveToThread(thread)
    d = Driver()
    d.start.connect(w.start_engine)
    d.load.connect(w.load)
    d.chat.connect(w.chat)
    d.shutdown.connect(w.shutdown)
    for name in ("engineReady", "loaded", "loadFailed", "tokens", "finished"):
        getattr(w, name).connect(getattr(d, name))
    thread.start()
    with qtbot.waitSignal(d.engineReady, timeout=60_000):
        d.start.emit()
    w.driver = d
    yield w
    d.shutdown.emit()
    assert thread.wait(5000)


def _load(qtbot, w: EngineWorker, path: Path) -> p.Loaded:
    with qtbot.waitSignal(w.driver.loaded, timeout=30_000) as loaded:
        w.driver.load.emit(p.Load(str(path), n_ctx=512, n_threads=1))
    return loaded.args[0]


def test_streamed_text_is_batched_not_sent_per_token(qtbot, worker: EngineWorker, tiny_model: Path) -> None:
    _load(qtbot, worker, tiny_model)
    batches: list[str] = []
    worker.driver.tokens.connect(lambda text: batches.append(text))
    settings = SamplingSettings(seed=6, max_tokens=300, temperature=0.7).to_dict()
    started = time.monotonic()
    with qtbot.waitSignal(worker.driver.finished, timeout=60_000) as finished:
        worker.driver.chat.emit([{"role": "user", "content": "hello"}], settings)
    elapsed = time.monotonic() - started
    stats = finished.args[1]
    assert stats["tokens"] > 20
    # at most one batch per flush interval (plus the final flush), however fast the model is
    assert len(batches) <= elapsed / 0.04 + 2
    assert len(batches) < stats["tokens"]


def test_not_a_gguf_is_refused_before_llama_cpp_and_the_model_stays(
    qtbot, worker: EngineWorker, tiny_model: Path, tmp_path: Path
) -> None:
    info = _load(qtbot, worker, tiny_model)
    junk = tmp_path / "holiday-photo.gguf"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 1000)
    events: list[tuple[str, object]] = []
    worker.driver.loadFailed.connect(lambda m: events.append(("failed", m)))
    worker.driver.loaded.connect(lambda i: events.append(("loaded", i)))
    worker.driver.load.emit(p.Load(str(junk), n_ctx=512, n_threads=1))
    qtbot.waitUntil(lambda: len(events) == 2, timeout=30_000)
    (kind, message), (kind2, restored) = events
    assert kind == "failed" and "holiday-photo.gguf" in message and "not a GGUF" in message
    assert kind2 == "loaded" and restored == info  # the old model is still loaded


def test_a_load_that_crashes_the_engine_restores_the_previous_model(
    qtbot, worker: EngineWorker, tiny_model: Path, tmp_path: Path
) -> None:
    from tiny_model import write_tiny_llama

    _load(qtbot, worker, tiny_model)
    first_pid = worker.engine_pid
    crafted = write_tiny_llama(tmp_path / "crafted.gguf", block_count=100000)
    with qtbot.waitSignal(worker.driver.loadFailed, timeout=30_000) as failed:
        with qtbot.waitSignal(worker.driver.loaded, timeout=60_000) as restored:
            worker.driver.load.emit(p.Load(str(crafted), n_ctx=512, n_threads=1))
    assert "crafted.gguf" in failed.args[0] and "SIGABRT" in failed.args[0]
    assert restored.args[0].model_path == str(tiny_model)
    assert worker.engine_pid != first_pid  # a fresh child


class FastFakeClient:
    """Streams 2,000 one-character deltas as fast as a pipe could deliver them."""

    pid = 1234
    alive = True

    def start(self):
        return p.Ready(pid=1234, llama_cpp_version="fake")

    def cancel(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def chat(self, request, tick=None):
        for i in range(2000):
            if i % 100 == 0:
                time.sleep(0.01)
            yield p.Delta("ab"[i % 2])
        yield p.Done("stop", {"tokens": 2000})


def test_worker_coalesces_a_flood_of_deltas(qtbot) -> None:
    thread = QThread()
    w = EngineWorker(flush_interval=0.04, client=FastFakeClient())
    w.moveToThread(thread)
    d = Driver()
    d.chat.connect(w.chat)
    d.shutdown.connect(w.shutdown)
    w.tokens.connect(d.tokens)
    w.finished.connect(d.finished)
    batches: list[str] = []
    d.tokens.connect(lambda text: batches.append(text))
    thread.start()
    started = time.monotonic()
    with qtbot.waitSignal(d.finished, timeout=10_000):
        d.chat.emit([{"role": "user", "content": "x"}], {})
    elapsed = time.monotonic() - started
    assert "".join(batches) == "ab" * 1000  # nothing lost or reordered
    assert len(batches) <= elapsed / 0.04 + 2  # ~one signal per 40 ms, not 2,000
    d.shutdown.emit()
    assert thread.wait(5000)


class PacedFakeClient(FastFakeClient):
    """Tokens arrive every ``gap`` seconds into a buffer, like the engine's pipe. Counts how often
    the reader had to block until a token came (each is a wake-up of the GUI process)."""

    def __init__(self, tokens: int = 120, gap: float = 0.004) -> None:
        self.tokens, self.gap, self.wakeups = tokens, gap, 0

    def chat(self, request, tick=None):
        start = time.monotonic()
        for i in range(self.tokens):
            due = start + i * self.gap
            while time.monotonic() < due:  # not in the "pipe" yet: block up to tick
                wait = due - time.monotonic()
                if tick is not None and tick < wait:
                    time.sleep(tick)
                    yield None
                    continue
                time.sleep(max(0.0, wait))
                self.wakeups += 1
            yield p.Delta("x")
        yield p.Done("stop", {"tokens": self.tokens})


def test_worker_reads_tokens_in_batches_instead_of_waking_for_each(qtbot) -> None:
    """After a flush the worker sleeps and lets tokens gather in the pipe, so the GUI process
    wakes about once per batch, not once per token (each wake-up holds llama.cpp up)."""
    thread = QThread()
    client = PacedFakeClient()
    w = EngineWorker(flush_interval=0.04, client=client)
    w.moveToThread(thread)
    d = Driver()
    d.chat.connect(w.chat)
    d.shutdown.connect(w.shutdown)
    w.tokens.connect(d.tokens)
    w.finished.connect(d.finished)
    batches: list[str] = []
    d.tokens.connect(lambda text: batches.append(text))
    thread.start()
    with qtbot.waitSignal(d.finished, timeout=10_000):
        d.chat.emit([{"role": "user", "content": "x"}], {})
    assert "".join(batches) == "x" * client.tokens
    assert client.wakeups < client.tokens / 3  # 120 tokens at 4 ms: ~10 per 40 ms batch
    assert len(batches) < client.tokens / 3
    d.shutdown.emit()
    assert thread.wait(5000)
