"""The streaming reply is drawn as often as the GUI can afford (app/session/pacing.py)."""

from __future__ import annotations

import time

from app.session.pacing import FASTEST, GUI_SHARE, SLOWEST, UpdatePacer


def _busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_costly_drawing_spaces_the_batches_and_cheap_drawing_does_not() -> None:
    pacer = UpdatePacer()
    assert pacer.interval() == FASTEST  # nothing measured yet
    pacer.start()
    for _ in range(12):
        _busy(SLOWEST * GUI_SHARE * 2)  # drawing a batch costs twice what the slowest pace allows
        interval = pacer.batch()
    assert interval == SLOWEST

    cheap = UpdatePacer()
    cheap.start()
    for _ in range(12):
        time.sleep(0.005)  # waiting for the engine is not drawing: it costs the GUI nothing
        interval = cheap.batch()
    assert interval == FASTEST


def test_a_new_reply_does_not_count_what_came_before_it() -> None:
    pacer = UpdatePacer()
    pacer.start()
    pacer.batch()
    _busy(0.05)  # the person typing, a dialog: GUI work between replies
    pacer.start()
    pacer.batch()
    assert pacer.batch() == FASTEST


def test_the_window_paces_its_engine_batches(qtbot, open_main_window) -> None:
    window = open_main_window(max_tokens=12)
    session = window.session
    session.replyText.connect(lambda _text: _busy(SLOWEST * GUI_SHARE * 2))  # a slow machine's drawing
    with qtbot.waitSignal(session.replyFinished, timeout=60_000):
        window.input.setPlainText("Tell me about lighthouses.")
        window.send_current()
    assert session.worker.flush_interval > FASTEST  # the worker was told to batch more
