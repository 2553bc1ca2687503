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
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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


# -- where the socket may live -------------------------------------------------------------


@pytest.fixture
def hostile_tmp(tmp_path: Path, monkeypatch) -> Path:
    """A shared temporary folder where ``hearth-<uid>`` was made first by someone else (world
    writable), and an XDG_RUNTIME_DIR that is not private: neither may hold the socket."""
    import tempfile

    from app import paths

    short_home = Path(tempfile.mkdtemp(prefix="hh"))  # socket paths are limited to ~100 bytes
    paths.set_root(short_home)
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    squatted = shared / f"hearth-{os.getuid()}"
    squatted.mkdir()
    squatted.chmod(0o777)
    open_runtime = tmp_path / "runtime"
    open_runtime.mkdir()
    open_runtime.chmod(0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(open_runtime))
    monkeypatch.setenv("TMPDIR", str(shared))  # Qt's temporary folder, for a bare socket name
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    yield shared
    paths.set_root(None)
    import shutil

    shutil.rmtree(short_home, ignore_errors=True)


def _is_private_dir(folder: Path) -> bool:
    info = folder.lstat()
    return folder.is_dir() and not folder.is_symlink() and info.st_uid == os.getuid() and not info.st_mode & 0o077


def test_socket_never_sits_in_a_folder_others_can_enter(qtbot, hostile_tmp: Path, tmp_path: Path) -> None:
    key = SingleInstance.key_for(tmp_path / "data")
    first = SingleInstance(key)
    try:
        assert first.listen()
        if first.address is not None:  # a private folder was found (Hearth's cache folder here)
            full = Path(first.server_path())
            assert first.listening and full == Path(first.address)
            assert _is_private_dir(full.parent), oct(full.parent.lstat().st_mode)
            assert hostile_tmp not in full.parents and tmp_path / "runtime" not in full.parents
            assert not Path("/tmp", key).exists()
            with qtbot.waitSignal(first.messageReceived, timeout=3000) as got:
                assert SingleInstance(key).try_forward(["/a.gguf"])
            assert got.args == [["/a.gguf"]]
        assert list(hostile_tmp.rglob(key + "*")) == [] and list((tmp_path / "runtime").iterdir()) == []
    finally:
        first.close()


def test_without_a_private_folder_hearth_runs_unguarded_rather_than_in_a_shared_one(
    qtbot, hostile_tmp: Path, tmp_path: Path
) -> None:
    from app import paths

    (paths.cache_dir() / "run").write_text("not a folder")  # the last private candidate is unusable
    key = SingleInstance.key_for(tmp_path / "data")
    first = SingleInstance(key)
    try:
        assert first.address is None
        assert first.listen(), "no guard is better than not starting"
        assert not first.listening and first.server_path() == ""
        assert not SingleInstance(key).try_forward(["/a.gguf"], timeout_ms=300)
        assert list(hostile_tmp.rglob(key + "*")) == []
    finally:
        first.close()


def test_a_private_xdg_runtime_dir_is_used(qtbot, tmp_path: Path, monkeypatch) -> None:
    import tempfile

    runtime = Path(tempfile.mkdtemp(prefix="xdg"))  # mkdtemp makes it 0700
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    try:
        key = SingleInstance.key_for(tmp_path / "data")
        first = SingleInstance(key)
        assert first.listen()
        assert Path(first.server_path()) == runtime / key
        first.close()
    finally:
        import shutil

        shutil.rmtree(runtime, ignore_errors=True)
