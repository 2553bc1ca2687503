"""Guards the Qt binding against a bug that would crash Hearth mid-conversation.

PySide6 6.12.0 drops a reference to a Python bool on every signal queued from a worker
thread to the GUI thread; after about a thousand streamed batches the interpreter aborts
("bool_dealloc: deallocating True or False"). The engine worker emits exactly such
signals, so this runs a few thousand of them in a subprocess and expects a clean exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

    class Emitter(QObject):
        text = Signal(str)
        done = Signal(str, object)

        @Slot()
        def run(self):
            for i in range(5000):
                self.text.emit("token %d" % i)
            self.done.emit("stop", {"tokens": 5000})

    class Starter(QObject):
        go = Signal()

    app = QCoreApplication([])
    thread = QThread()
    emitter = Emitter()
    emitter.moveToThread(thread)
    starter = Starter()
    starter.go.connect(emitter.run)
    received = []
    emitter.text.connect(lambda t: received.append(t))
    emitter.done.connect(lambda *a: app.quit())
    thread.start()
    QTimer.singleShot(0, starter.go.emit)
    app.exec()
    thread.quit()
    thread.wait()
    assert len(received) == 5000, len(received)
    print("ok")
    """
)


def test_thousands_of_cross_thread_signals_do_not_crash_python() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
