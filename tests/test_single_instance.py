"""One Hearth per data folder: hand-over from a second launch, stale sockets, races."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.single_instance import SingleInstance

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def key(tmp_path: Path) -> str:
    return SingleInstance.key_for(tmp_path / "data")


def test_second_instance_in_process_hands_over_its_files(qtbot, key: str) -> None:
    first = SingleInstance(key)
    assert first.listen() and first.listening
    second = SingleInstance(key)
    try:
        with qtbot.waitSignal(first.messageReceived, timeout=3000) as got:
            assert second.try_forward(["/models/a b.gguf", "/models/ünï.gguf"])
        assert got.args == [["/models/a b.gguf", "/models/ünï.gguf"]]
        # A plain re-launch (no files) still reaches the first: it raises its window.
        with qtbot.waitSignal(first.messageReceived, timeout=3000) as got:
            assert second.try_forward([])
        assert got.args == [[]]
        assert not second.listen(), "a second listener on a live key must be refused"
        assert not second.listening
    finally:
        first.close()
        second.close()


def test_nobody_listening_means_no_forward_and_close_frees_the_key(qtbot, key: str) -> None:
    assert not SingleInstance(key).try_forward(["/x.gguf"], timeout_ms=300)
    first = SingleInstance(key)
    assert first.listen()
    first.close()
    assert not os.path.exists(first.address)
    assert not SingleInstance(key).try_forward(["/x.gguf"], timeout_ms=300)
    again = SingleInstance(key)
    assert again.listen()
    again.close()


def test_different_data_folders_do_not_collide(qtbot, tmp_path: Path) -> None:
    a_key = SingleInstance.key_for(tmp_path / "portable-a")
    b_key = SingleInstance.key_for(tmp_path / "portable-b")
    assert a_key != b_key
    assert SingleInstance.key_for(tmp_path / "portable-a" / ".." / "portable-a") == a_key
    a, b = SingleInstance(a_key), SingleInstance(b_key)
    try:
        assert a.listen() and b.listen()
        received: list[list] = []
        a.messageReceived.connect(received.append)
        with qtbot.waitSignal(b.messageReceived, timeout=3000):
            assert SingleInstance(b_key).try_forward(["/b.gguf"])
        qtbot.wait(50)
        assert received == []
    finally:
        a.close()
        b.close()


def test_socket_is_private_to_the_user(qtbot, key: str) -> None:
    first = SingleInstance(key)
    assert first.listen()
    try:
        folder = Path(first.address).parent
        assert folder.is_dir() and (folder.stat().st_mode & 0o077) == 0
        assert folder.stat().st_uid == os.getuid()
    finally:
        first.close()


def test_malformed_messages_are_ignored(qtbot, key: str) -> None:
    from PySide6.QtNetwork import QLocalSocket

    first = SingleInstance(key)
    assert first.listen()
    try:
        raw = QLocalSocket()
        raw.connectToServer(first.address)
        assert raw.waitForConnected(1000)
        raw.write(b'not json\n{"v": 1, "args": [1, 2]}\n{"v": 1, "args": ["/ok.gguf"]}\n')
        raw.waitForBytesWritten(1000)
        with qtbot.waitSignal(first.messageReceived, timeout=3000) as got:
            pass
        assert got.args == [["/ok.gguf"]]
        raw.abort()
    finally:
        first.close()


def _run_script(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


FORWARD = """
    import sys
    from PySide6.QtCore import QCoreApplication
    from app.single_instance import SingleInstance
    app = QCoreApplication([])
    sys.exit(0 if SingleInstance(sys.argv[1]).try_forward(sys.argv[2:]) else 3)
"""

LISTEN_FOREVER = """
    import sys
    from PySide6.QtCore import QCoreApplication
    from app.single_instance import SingleInstance
    app = QCoreApplication([])
    instance = SingleInstance(sys.argv[1])
    print("listening" if instance.listen() else "refused", flush=True)
    app.exec()
"""


def test_a_real_second_process_hands_over_and_exits(qtbot, key: str) -> None:
    first = SingleInstance(key)
    assert first.listen()
    try:
        with qtbot.waitSignal(first.messageReceived, timeout=20000) as got:
            proc = _run_script(FORWARD, key, "/home/me/Downloads/model.Q4_K_M.gguf")
        qtbot.waitUntil(lambda: proc.poll() is not None, timeout=20000)
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        assert got.args == [["/home/me/Downloads/model.Q4_K_M.gguf"]]
    finally:
        first.close()


def test_stale_socket_after_a_crash_is_cleaned_up(qtbot, key: str) -> None:
    crashed = _run_script(LISTEN_FOREVER, key)
    try:
        assert crashed.stdout.readline().strip() == "listening"
        assert not SingleInstance(key).listen(), "the live process holds the key"
        crashed.send_signal(signal.SIGKILL)  # no chance to remove its socket
        crashed.wait(10)
    finally:
        if crashed.poll() is None:
            crashed.kill()
        crashed.communicate()
    address = SingleInstance(key).address
    assert os.path.exists(address), "the crash should leave the socket file behind"
    assert not SingleInstance(key).try_forward(["/x.gguf"], timeout_ms=500)
    survivor = SingleInstance(key)
    try:
        assert survivor.listen()
        with qtbot.waitSignal(survivor.messageReceived, timeout=3000) as got:
            assert SingleInstance(key).try_forward(["/after-crash.gguf"])
        assert got.args == [["/after-crash.gguf"]]
    finally:
        survivor.close()


def test_two_launches_racing_after_a_crash_leave_exactly_one_listener(qtbot, key: str) -> None:
    # A stale socket file that nobody listens on, as a crash leaves it.
    import socket as pysocket

    address = SingleInstance(key).address
    stale = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    stale.bind(address)
    stale.close()
    procs = [_run_script(LISTEN_FOREVER, key) for _ in range(3)]
    try:
        answers = sorted(p.stdout.readline().strip() for p in procs)
        assert answers == ["listening", "refused", "refused"]
    finally:
        for p in procs:
            p.kill()
            p.communicate()
        if os.path.exists(address):
            os.unlink(address)
