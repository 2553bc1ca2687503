"""The GUI thread's stalls while something streams, for the benchmarks.

A 1 ms QTimer ticks on the GUI thread; the gap between two ticks is how long the thread was
busy. The timer itself costs CPU on a 2-core machine, so throughput is measured in runs
without it (start the clock, not the ticker).
"""

from __future__ import annotations

from PySide6.QtCore import QElapsedTimer, QTimer


class StallProbe:
    def __init__(self) -> None:
        self.stalls: list[float] = []  # ms between ticks
        self.clock = QElapsedTimer()
        self.ticker = QTimer()
        self.ticker.setInterval(1)
        self._last = 0.0
        self.ticker.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        self.stalls.append(now - self._last)
        self._last = now
