"""The composer's image tray reads picked and dropped files off the GUI thread: a file on a
slow share (here a named pipe that has no data yet) never freezes the window."""

from __future__ import annotations

import os
import threading
import time

import pytest
from tiny_projector import png

from app.ui.image_tray import ImageTray


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX feature")
def test_a_slow_file_is_read_off_the_gui_thread(qtbot, tmp_path) -> None:
    tray = ImageTray()
    qtbot.addWidget(tray)
    slow = tmp_path / "slow.png"
    os.mkfifo(slow)  # opening it blocks until someone writes: what a stalled share does
    written = threading.Event()

    def write_later() -> None:  # so that a blocking read would end (and fail below), not hang
        time.sleep(1.0)
        slow.write_bytes(png(8, 8, 3))
        written.set()

    writer = threading.Thread(target=write_later)
    writer.start()
    reader = tray.add_files([str(slow)])
    assert not written.is_set() and tray.attachments() == []  # returned at once: the GUI thread is free
    qtbot.waitUntil(lambda: len(tray.attachments()) == 1, timeout=10_000)
    writer.join()
    reader.join(5)
    assert tray.attachments()[0].name == "slow.png"


def test_unreadable_and_oversized_files_are_plain_problems(qtbot, tmp_path, monkeypatch) -> None:
    tray = ImageTray()
    qtbot.addWidget(tray)
    problems: list[str] = []
    tray.problem.connect(problems.append)
    monkeypatch.setattr("app.ui.image_tray.MAX_IMAGE_BYTES", 16)
    big = tmp_path / "big.png"
    big.write_bytes(png(32, 32, 1))
    tray.add_files([str(tmp_path / "gone.png"), str(big)]).join(5)
    qtbot.waitUntil(lambda: len(problems) == 2, timeout=5_000)
    assert "gone.png could not be read" in problems[0] and "big.png is larger than" in problems[1]
    assert tray.attachments() == []
