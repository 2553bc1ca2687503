"""Child process for bench/startup.py and tests/test_startup.py: open a window, report its first frame.

    python bench/startup_probe.py hearth|minimal [--settle S] [--wait-engine S]

``hearth`` runs the real entry point (``app.application.run``) with the data folder from
HEARTH_HOME; ``minimal`` opens a bare QMainWindow holding a QTextBrowser, the baseline. At the
first paint event of a top-level QMainWindow the probe notes the time (CLOCK_MONOTONIC, which
the parent shares, so the parent can subtract the moment it started this process), its own CPU
time, the modules imported so far, the resident memory and the child processes alive. After
``--settle`` seconds more of running event loop it notes the resident memory again, optionally
waits until an engine child appears (``--wait-engine``), notes the modules and children then,
prints one JSON line prefixed ``PROBE `` and quits the app in order.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MARK = "PROBE "


def rss_mb() -> float:
    """Resident memory of this process now, from /proc (psutil is not a dependency)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child_pids() -> list[int]:
    """Every child process of this one (any thread's), as the kernel lists them."""
    pids: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def engine_children() -> list[str]:
    """Names of the multiprocessing children alive (the engine is "hearth-engine"); the
    resource tracker multiprocessing starts for its semaphores is not one of them."""
    return [p.name for p in multiprocessing.active_children()]


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["hearth", "minimal"])
    parser.add_argument("--settle", type=float, default=0.0, help="seconds of event loop before RSS is read")
    parser.add_argument("--wait-engine", type=float, default=0.0, help="seconds to wait for the engine child")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    report: dict = {"mode": args.mode}

    def finish() -> None:
        report["rss_settled_mb"] = rss_mb()
        deadline = time.monotonic() + args.wait_engine
        while args.wait_engine and not engine_children() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        report["children_later"] = child_pids()
        report["engine_later"] = engine_children()
        report["modules_later"] = sorted(sys.modules)
        print(MARK + json.dumps(report), flush=True)
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, QMainWindow):
                widget.close()
        app.quit()

    class FirstFrame(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
            if "first_frame" not in report and event.type() == QEvent.Type.Paint and isinstance(watched, QMainWindow):
                report["first_frame"] = time.monotonic()
                report["cpu_frame_s"] = time.process_time()  # this process's CPU, all threads
                report["modules"] = sorted(sys.modules)
                report["children_at_frame"] = child_pids()
                report["engine_at_frame"] = engine_children()
                report["rss_frame_mb"] = rss_mb()
                QTimer.singleShot(int(args.settle * 1000), finish)
            return False

    frame_filter = FirstFrame()
    app.installEventFilter(frame_filter)
    if args.mode == "minimal":
        from PySide6.QtWidgets import QTextBrowser

        window = QMainWindow()
        window.setCentralWidget(QTextBrowser())
        window.resize(900, 700)
        window.show()
        app.exec()
    else:
        from app.application import run

        run([])


if __name__ == "__main__":
    main(sys.argv[1:])
