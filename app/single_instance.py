"""One Hearth per data folder: a second launch hands its files to the running one and exits.

Two processes on the same data folder would fight over the conversation database, the
model library file and the partial downloads, and each would load its own copy of a
multi-gigabyte model. So the first instance listens on a local socket (a Unix domain
socket, or a named pipe on Windows, via Qt's ``QLocalServer``) and a later launch sends
it its command-line files instead of starting; the first one then raises its window and
imports them.

The socket name is derived from the user and the data folder (:meth:`SingleInstance.key_for`),
so two portable installs with different ``--data-dir`` run side by side, while the same
folder is protected. On Unix the socket lives in a folder only this user can enter, checked
before use (owner and mode 0700): ``$XDG_RUNTIME_DIR``, else ``$TMPDIR/hearth-<uid>``, else
``run`` in Hearth's cache folder. Never a bare name in the shared /tmp, where another user
could create the socket first and receive (or block) our launches: with no private folder
Hearth runs without the guard instead. Qt's own
``UserAccessOption`` is *not* used there because it binds in a temporary folder and
renames the socket into place, silently replacing a live instance's socket. On Windows
the named pipe gets ``UserAccessOption``.

After a crash the socket file stays behind; :meth:`SingleInstance.listen` notices that
nobody answers on it, removes it and listens again (under a ``QLockFile``, so two
launches racing after a crash cannot both win).

Wire format (version 1): one line of UTF-8 JSON, ``{"v": 1, "args": [...]}\\n``. The
sender does not wait for an answer: the running instance may be busy for a moment and
the bytes wait in the socket until its event loop reads them.

API::

    key = SingleInstance.key_for(paths.data_dir())
    instance = SingleInstance(key)
    if instance.try_forward(files):        # someone is running: they got the files
        return 0
    if not instance.listen():              # lost a start-up race: forward after all
        ...
    instance.messageReceived.connect(...)  # list[str] from each later launch
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import shiboken6
from PySide6.QtCore import QLockFile, QObject, Signal
from PySide6.QtNetwork import QAbstractSocket, QLocalServer, QLocalSocket

from app import paths

log = logging.getLogger(__name__)

__all__ = ["SingleInstance"]

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20  # a megabyte of paths is far beyond any real launch


class SingleInstance(QObject):
    """The local socket that makes this process the one instance for ``key``."""

    messageReceived = Signal(list)  # list[str]: the arguments a later launch passed on

    def __init__(self, key: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.address: str | None = _address(key)  # None: no private folder, no guard
        self._server: QLocalServer | None = None
        self._buffers: dict[QLocalSocket, bytearray] = {}

    @staticmethod
    def key_for(data_dir: str | os.PathLike[str]) -> str:
        """A short socket name for this user and data folder.

        Hashed because socket paths are limited to ~100 bytes and a data folder may be
        long or contain any character; the user is part of it so that a name never
        collides with another user's, wherever the socket lives.
        """
        try:
            user = getpass.getuser()
        except Exception:  # no user name in a container: the uid is as good
            user = str(os.getuid()) if hasattr(os, "getuid") else "user"
        folder = os.path.normcase(str(Path(data_dir).expanduser().resolve()))
        digest = hashlib.sha256(f"{user}\0{folder}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return f"hearth-{digest}"

    # -- the second launch ----------------------------------------------------------------

    def try_forward(self, args: list[str], timeout_ms: int = 1000) -> bool:
        """Send ``args`` to a running instance; ``True`` if one took them (then exit).

        Paths should be absolute: the running instance has its own working folder.
        ``False`` means nobody is listening (or only a stale socket from a crash is left).
        """
        if self.address is None:
            return False
        socket = QLocalSocket()
        socket.connectToServer(self.address)
        if not socket.waitForConnected(timeout_ms):
            socket.abort()
            return False
        payload = json.dumps({"v": PROTOCOL_VERSION, "args": [str(a) for a in args]}).encode() + b"\n"
        socket.write(payload)
        ok = socket.waitForBytesWritten(timeout_ms) or socket.bytesToWrite() == 0
        socket.disconnectFromServer()
        if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            socket.waitForDisconnected(timeout_ms)
        if not ok:
            log.warning("Another Hearth is running but did not take the message: %s", socket.errorString())
        return ok

    # -- the first launch ------------------------------------------------------------------

    def listen(self) -> bool:
        """Become the instance for ``key``; ``False`` if a live one already is.

        A leftover socket from a crashed instance is removed. Other failures (no private
        folder for the socket…) are logged and reported as success: running without the
        single-instance guard is better than not running at all.
        """
        if self._server is not None:
            return True
        if self.address is None:
            log.warning("No folder private to this user for the single-instance socket; running without it.")
            return True
        # Beside the socket on Unix (a private folder); the per-user temporary folder on Windows.
        lock_path = self.address if os.path.isabs(self.address) else os.path.join(tempfile.gettempdir(), self.key)
        lock = QLockFile(lock_path + ".lock")
        lock.setStaleLockTime(0)  # never steal a live holder's lock; a dead holder's is stale (PID check)
        locked = lock.tryLock(3000)
        try:
            server = QLocalServer()
            if sys.platform == "win32":
                server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
            if not server.listen(self.address):
                if server.serverError() != QAbstractSocket.SocketError.AddressInUseError:
                    log.warning("Single-instance socket unavailable (%s); running without it.", server.errorString())
                    return True
                if self._someone_listening():
                    return False
                log.info("Removing the socket left behind by a Hearth that did not close (%s).", self.address)
                QLocalServer.removeServer(self.address)
                if not server.listen(self.address):
                    if self._someone_listening():
                        return False
                    log.warning("Single-instance socket unavailable (%s); running without it.", server.errorString())
                    return True
        finally:
            if locked:
                lock.unlock()
        server.newConnection.connect(self._on_new_connection)
        self._server = server
        return True

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.isListening()

    def server_path(self) -> str:
        """The socket's full path (Unix) or pipe name: for diagnostics and tests."""
        return self._server.fullServerName() if self._server is not None else ""

    def close(self) -> None:
        """Stop listening and remove the socket file; call it at shutdown."""
        server, self._server = self._server, None
        self._buffers.clear()
        if server is not None:
            server.newConnection.disconnect(self._on_new_connection)
            server.close()

    def _someone_listening(self) -> bool:
        if self.address is None:
            return False
        probe = QLocalSocket()
        probe.connectToServer(self.address)
        alive = probe.waitForConnected(500)
        probe.abort()
        return alive

    def _on_new_connection(self) -> None:
        server = self._server
        while server is not None and server.hasPendingConnections():
            socket = server.nextPendingConnection()
            self._buffers[socket] = bytearray()
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(lambda s=socket: self._done(s))
            if socket.bytesAvailable():
                self._read(socket)

    def _read(self, socket: QLocalSocket) -> None:
        buffer = self._buffers.get(socket)
        if buffer is None:
            return
        buffer += bytes(socket.readAll().data())
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            self._deliver(line)
        if len(buffer) > MAX_MESSAGE_BYTES:
            log.warning("Dropping an oversized message on the single-instance socket.")
            self._buffers.pop(socket, None)
            socket.abort()
            socket.deleteLater()

    def _done(self, socket: QLocalSocket) -> None:
        # Sockets not in the table are being torn down with the server (close()): Qt owns
        # them then, and touching them here would delete them twice.
        if socket not in self._buffers:
            return
        if not shiboken6.isValid(socket):  # destroyed along with the server
            self._buffers.pop(socket, None)
            return
        if socket.bytesAvailable():
            self._read(socket)
        self._buffers.pop(socket, None)
        socket.deleteLater()

    def _deliver(self, line: bytes) -> None:
        try:
            message = json.loads(line.decode("utf-8"))
            args = message["args"]
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise ValueError("args is not a list of strings")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            log.warning("Ignoring a malformed message on the single-instance socket: %s", exc)
            return
        self.messageReceived.emit(args)


# A Unix socket path must fit in sockaddr_un.sun_path (108 bytes on Linux, 104 on macOS).
_MAX_SOCKET_PATH = 100


def _is_private(folder: Path, *, follow: bool) -> bool:
    """Whether ``folder`` is a directory owned by this user that nobody else may enter.

    ``follow=False`` refuses a symbolic link: in a shared folder such as /tmp another user
    could make the link, and later point it elsewhere.
    """
    try:
        info = folder.stat() if follow else folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def _make_private(folder: Path) -> Path | None:
    """``folder``, created with mode 0700 if missing, if it is private to this user."""
    try:
        folder.mkdir(mode=0o700, parents=False, exist_ok=True)
    except OSError:
        return None
    if not _is_private(folder, follow=False):
        # Someone else may have made it first (to catch our messages, or to hold the name).
        log.warning("%s is not private to this user; not putting the single-instance socket there.", folder)
        return None
    return folder


def _private_dir(key: str) -> Path | None:
    """A folder only this user can enter, short enough for the socket; ``None`` if none.

    In order: ``$XDG_RUNTIME_DIR`` (the session's private runtime folder, checked: owned by
    this user, mode 0700), ``$TMPDIR/hearth-<uid>`` (made 0700, checked, never a link), then
    ``run`` in Hearth's cache folder. Never a bare name: Qt would put that in the shared
    temporary folder, where another user could create the socket first.
    """

    def fits(folder: Path) -> bool:
        return len(os.fsencode(folder / key)) <= _MAX_SOCKET_PATH

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        folder = Path(runtime)
        if _is_private(folder, follow=True) and os.access(folder, os.W_OK | os.X_OK) and fits(folder):
            return folder
        log.info("XDG_RUNTIME_DIR (%s) is not a private folder of this user; not using it.", runtime)
    candidates: list[Callable[[], Path]] = [
        lambda: Path(tempfile.gettempdir()) / f"hearth-{os.getuid()}",
        lambda: paths.cache_dir() / "run",
    ]
    for candidate in candidates:
        try:
            folder = candidate()
        except OSError:
            continue
        if fits(folder) and (made := _make_private(folder)) is not None:
            return made
    return None


def _address(key: str) -> str | None:
    """The server name Qt gets: a pipe name on Windows, a socket path in a private folder
    elsewhere, or ``None`` when no private folder can be had (then Hearth runs unguarded)."""
    if sys.platform == "win32":
        return key
    folder = _private_dir(key)
    return str(folder / key) if folder is not None else None
