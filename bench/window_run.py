"""The real window and session, run as a person runs them, for the streaming benchmarks
(bench/streaming.py, bench/remote.py): open it, send a prompt from the message box, and time
the reply as it streams into the chat view, inside a real event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stall_probe import StallProbe  # bench/ is on sys.path when a bench runs


def open_window(settings: Any, load_settings: Any, flush: float | None = None) -> tuple[Any, Any]:
    """A ChatSession (with a store of its own) in a shown MainWindow, its engine started.
    ``flush``: seconds between GUI updates (None: the app's pacing)."""
    from PySide6.QtWidgets import QApplication

    from app import paths
    from app.core.config import AppConfig
    from app.core.library import ModelLibrary
    from app.core.presets import PresetStore
    from app.core.store import ConversationStore
    from app.session import ChatSession
    from app.ui.main_window import MainWindow

    QApplication.instance() or QApplication([])
    store = ConversationStore(paths.data_dir() / f"bench-{time.time()}.sqlite3")
    session = ChatSession(
        ModelLibrary(),
        AppConfig(),
        store,
        settings=settings,
        load_settings=load_settings,
        **({"flush_interval": flush} if flush else {}),
    )
    window = MainWindow(session, PresetStore(paths.config_dir() / "presets.json"))
    return session, window


def wait_for(done: Callable[[], bool]) -> None:
    """Run the event loop until ``done()``."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    timer = QTimer()
    timer.timeout.connect(lambda: done() and loop.quit())
    timer.start(20)
    if not done():
        loop.exec()
    timer.stop()


@dataclass
class Reply:
    first: float  # perf_counter at the first text
    first_cpu: float  # this process's CPU time then
    end: float
    end_cpu: float
    stats: dict[str, Any]
    stalls: list[float] = field(default_factory=list)  # ms, with ``probe`` only

    @property
    def rate(self) -> float:
        """Tokens after the first, over the time from the first to the end (as the direct
        baselines measure)."""
        return (int(self.stats["tokens"]) - 1) / (self.end - self.first)

    @property
    def cpu_per_1k(self) -> float:
        """This process's CPU seconds per 1,000 streamed tokens (view, worker, session, store)."""
        return (self.end_cpu - self.first_cpu) / max(1, int(self.stats["tokens"]) - 1) * 1000


def send_and_time(session: Any, window: Any, text: str, probe: bool) -> Reply:
    """Type ``text`` into the message box, send it and time the reply; with ``probe``, the
    GUI thread's stalls too (the 1 ms timer costs CPU, so throughput runs go without it)."""
    from PySide6.QtCore import QEventLoop

    stall = StallProbe()
    done: list[Any] = []
    loop = QEventLoop()
    session.replyFinished.connect(done.append)
    session.replyFinished.connect(loop.quit)
    first: list[tuple[float, float]] = []
    session.replyText.connect(lambda _text: first or first.append((time.perf_counter(), time.process_time())))
    window.input.setPlainText(text)
    window.send_current()
    stall.clock.start()
    if probe:
        stall.ticker.start()
    loop.exec()  # a real event loop, idle between events, as in the app
    stall.ticker.stop()
    end, end_cpu = time.perf_counter(), time.process_time()
    window.close()
    return Reply(first[0][0], first[0][1], end, end_cpu, done[0].stats, stall.stalls[1:])
