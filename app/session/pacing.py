"""How often a streaming reply is drawn: as often as the GUI can afford.

With llama.cpp on every core, each millisecond the GUI process spends drawing is taken from
generation (its threads wait for each other at every step), so drawing the reply 25 times a
second costs tokens on a slow machine and nothing on a fast one. :class:`UpdatePacer`
measures what the GUI thread spends between two batches of streamed text (the slot, layout
and painting: ``time.thread_time``, CPU only, so waiting is not counted) and picks the batch
interval that keeps that under :data:`GUI_SHARE` of one core, between :data:`FASTEST` and
:data:`SLOWEST`.  Measured on a 2-core machine (bench/streaming.py): ~3 ms of GUI per batch,
so 80 ms batches; the GUI's CPU per 1,000 tokens fell from 0.83 s to 0.50 s.
"""

from __future__ import annotations

import time

FASTEST = 0.04  # s between batches: 25 a second where drawing is cheap
SLOWEST = 0.08  # 12.5 a second at most apart: still reads as a flowing reply
GUI_SHARE = 0.03  # of one core, the most drawing a streaming reply should take


class UpdatePacer:
    def __init__(self) -> None:
        self._mark: float | None = None
        self._cost: float | None = None  # smoothed GUI seconds per batch

    def start(self) -> None:
        """A new reply: what came before it is not its cost."""
        self._mark = None

    def batch(self) -> float:
        """Call at each batch drawn (on the GUI thread); returns the interval to use next."""
        now = time.thread_time()
        if self._mark is not None:
            spent = now - self._mark
            self._cost = spent if self._cost is None else 0.8 * self._cost + 0.2 * spent
        self._mark = now
        return self.interval()

    def interval(self) -> float:
        if self._cost is None:
            return FASTEST
        return min(max(self._cost / GUI_SHARE, FASTEST), SLOWEST)
