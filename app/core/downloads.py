"""The download queue: model files from the Hub that survive stalls, quits, crashes and bad bytes.

``huggingface_hub`` cannot do this job (it deletes its partial file when a download fails,
cannot be cancelled, and does not check sha256), so the transfer is ours: one streaming GET per
attempt into ``dest + ".part"``, resumed with ``Range: bytes=N-`` from the bytes already on
disk, hashed with sha256 as the bytes arrive, verified against the Hub's LFS hash, then moved
into the models folder with ``os.replace`` so a partial file never has a model's name.

API::

    queue = DownloadQueue(state_path, models_dir, max_parallel=1, token=None, on_event=callback,
                          endpoint=None)         # the token is only ever sent to this Hub origin
    item = queue.add(repo_id, filename, url, total=size, sha256=lfs_sha)   # may raise DiskSpaceError,
                                                                           # UnsafePathError, AlreadyDownloaded
    queue.pause(id); queue.resume(id); queue.cancel(id); queue.remove(id)
    queue.items() -> list[DownloadItem]          # snapshots, with live progress; queue.get(id)
    queue.active_workers() -> int
    queue.set_max_parallel(n); queue.set_token(token)
    queue.close()                                # on quit: stop workers, keep everything resumable

Threads: each transfer runs in its own worker thread; ``on_event`` is called from those
threads (and from the caller's thread for add/pause/…), sometimes with the queue's lock held,
so it must be quick and must not block (a Qt wrapper emits a queued signal and returns). Each
:class:`DownloadEvent` holds a snapshot of the item. Progress events come at most ~10 times
a second per item. The state file (JSON, written atomically) is updated on every state change
and at checkpoints every few MB (after an fsync of the part file, so a crash or power cut
resumes from bytes that are really on disk; the fsyncs run on a checkpoint thread so the
socket never waits for the disk); on the next start, items that were running are listed as
paused with their progress.

Files land in ``models_dir/owner/name/<path in repo>``; see :func:`safe_destination`.
"""

from __future__ import annotations

import collections
import errno
import functools
import hashlib
import logging
import os
import queue
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from email.utils import parsedate_to_datetime
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2

from app import __version__
from app.core.hub import GATED_MESSAGE, OFFLINE_MESSAGE, UNAUTHORIZED_MESSAGE, is_valid_repo_id
from app.core.jsonfile import read_json, write_json

log = logging.getLogger(__name__)

MB = 1000 * 1000


class DownloadState(str, Enum):
    # Stored in the state file: values are stored, never reuse one.
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    VERIFYING = "verifying"
    COMPLETE = "complete"
    CANCELLED = "cancelled"


_ACTIVE = {DownloadState.QUEUED, DownloadState.RUNNING, DownloadState.VERIFYING}
_RESUMABLE = {DownloadState.PAUSED, DownloadState.FAILED}
_HOLDS_SPACE = _ACTIVE | {DownloadState.PAUSED}


class EventKind(str, Enum):
    ADDED = "added"
    STATE = "state"  # state or error message changed
    PROGRESS = "progress"
    COMPLETED = "completed"  # verified and moved into the models folder: ``path`` is the model file
    REMOVED = "removed"


class DownloadError(Exception):
    """A download request we refuse; ``str()`` is a sentence for the user."""


class DiskSpaceError(DownloadError):
    pass


class UnsafePathError(DownloadError):
    """A remote file name that would land outside the models folder."""


class AlreadyDownloaded(DownloadError):
    pass


class UnknownDownload(DownloadError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "Unknown download"


@dataclass
class DownloadItem:
    id: str
    repo_id: str
    filename: str
    url: str
    dest: str  # final path in the models folder
    part_path: str  # dest + ".part": where the bytes go until verified
    total: int | None = None
    done: int = 0
    sha256: str | None = None  # expected (the Hub's LFS hash); None: only the size is checked
    state: DownloadState = DownloadState.QUEUED
    error: str | None = None
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    etag: str | None = None  # the server's ETag, sent as If-Range so a changed file restarts from 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DownloadItem:
        names = {f.name for f in fields(cls)}
        data = {k: v for k, v in raw.items() if k in names}
        data["state"] = DownloadState(data.get("state", "paused"))
        return cls(**data)

    @property
    def fraction(self) -> float | None:
        return self.done / self.total if self.total else None


@dataclass(frozen=True)
class DownloadEvent:
    kind: EventKind
    item: DownloadItem  # a snapshot: safe to keep and to read from any thread
    speed: float | None = None  # bytes per second, averaged over the last few seconds
    eta: float | None = None  # seconds left at that speed
    path: Path | None = None  # COMPLETED: the final file


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures (reset, timeout, 5xx, 429) are retried before the item fails."""

    attempts: int = 8  # consecutive failed attempts without a single new byte
    base_delay: float = 1.0  # doubled after each failure ...
    max_delay: float = 60.0  # ... up to this
    max_retry_after: float = 600.0  # a server's Retry-After is honoured up to this


# --- helpers ---------------------------------------------------------------------------------------


def human_size(n: float) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def safe_destination(models_dir: Path, repo_id: str, filename: str) -> Path:
    """``models_dir/owner/name/filename``, refusing names that could escape the models folder.

    The listing comes from the network, so the name is untrusted: no absolute paths, no ``..``,
    no backslashes, drive letters or control characters, and the result must resolve inside
    ``models_dir`` even through symlinks.
    """
    bad = UnsafePathError(f"Refusing to download “{filename}”: its name would put it outside the models folder.")
    if not is_valid_repo_id(repo_id):
        raise UnsafePathError(f"“{repo_id}” is not a valid Hugging Face repo name.")
    if (
        not filename
        or filename.startswith("/")
        or any(c in filename for c in "\\:")
        or any(ord(c) < 32 for c in filename)
    ):
        raise bad
    parts = filename.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise bad
    root = models_dir.resolve()
    owner, name = repo_id.split("/")
    dest = root / owner / name / Path(*parts)
    if not dest.resolve().is_relative_to(root) or dest.resolve() == root:
        raise bad
    return dest


def _mount_point(path: Path) -> Path:
    path = path.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _existing_dir(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _strong_etag(value: str | None) -> str | None:
    return value if value and not value.startswith("W/") else None


def _fsync_part(fd: int) -> None:
    """Make the part file's bytes durable; a seam: tests hold it to play a slow disk."""
    os.fsync(fd)


def _write_chunk(fh: Any, data: bytes) -> None:
    """Write all of ``data`` to the (unbuffered) part file; a seam: tests make it raise ENOSPC."""
    view = memoryview(data)
    while view:
        view = view[fh.write(view) :]


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Permanent(Exception):
    def __init__(self, message: str, delete_part: bool = False) -> None:
        super().__init__(message)
        self.delete_part = delete_part


class _Stopped(Exception):
    pass


class _Job:
    """A worker's private state for one item while its thread lives."""

    def __init__(self, item: DownloadItem) -> None:
        self.item = item
        self.stop = threading.Event()
        self.offset = item.done  # bytes written and fed to the hash (live; item.done is the checkpoint)
        self.hasher: Any = None
        self.response: httpx2.Response | None = None
        self.thread: threading.Thread | None = None
        self.samples: collections.deque[tuple[float, int]] = collections.deque()
        self.last_emit = 0.0
        # Bumped when the part file starts again from zero, so a checkpoint taken before
        # cannot record a length the file no longer has.
        self.epoch = 0
        self.checkpointer: _Checkpointer | None = None

    def interrupt(self) -> None:
        """Stop now: set the flag and wake a worker blocked on a silent connection."""
        self.stop.set()
        response = self.response
        if response is None:
            return
        try:
            sock = response.extensions["network_stream"].get_extra_info("socket")
            sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # already closed, or a transport without a socket: the flag is enough
            pass

    def speed(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None


class _HashFeeder:
    """Feeds a sha256 from its own thread, a few MB at a time.

    Hashing each 64 KB chunk on the receiving thread puts the hash in series with the
    socket: 25-30% of the throughput over unlimited loopback (``bench/download.py``).
    Handing every chunk to a thread cost as much again in hand-offs; batches of 2 MB hash
    beside the socket with one hand-off each (hashlib releases the GIL while it hashes).
    Three buffers bound the memory (6 MB) and, when the hash falls behind, slow the
    receiver instead of queueing without limit.  :meth:`finish` returns once every byte
    fed is in the hasher, so the caller's hasher is exact again afterwards.
    """

    BATCH = 2 * 1024 * 1024
    BUFFERS = 3

    def __init__(self, hasher: Any) -> None:
        self._hasher = hasher
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        for _ in range(self.BUFFERS - 1):
            self._free.put(bytearray(self.BATCH))
        self._buf = bytearray(self.BATCH)
        self._used = 0
        self._thread = threading.Thread(target=self._run, name="download-hash", daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self.BATCH - self._used)
            self._buf[self._used : self._used + take] = view[:take]
            self._used += take
            view = view[take:]
            if self._used == self.BATCH:
                self._full.put((self._buf, self._used))
                self._buf, self._used = self._free.get(), 0

    def finish(self) -> None:
        if self._used:
            self._full.put((self._buf, self._used))
            self._used = 0
        self._full.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (batch := self._full.get()) is not None:
            buf, used = batch
            self._hasher.update(memoryview(buf)[:used])
            self._free.put(buf)


class _Checkpointer:
    """Makes the part file durable and records its length, off the receiving thread.

    A checkpoint is two fsyncs (the part file, then the state file that says how much of
    it to trust).  Taken on the receiving thread every few MB they stalled the socket for
    as long as the disk took, and the server's sends with it: ~10% of the throughput at
    130 MB/s in ``bench/download.py``.  Here the receiver only asks; requests that arrive
    while an fsync runs collapse into the newest.  The fsync goes through a duplicate of
    the descriptor, so closing the part file never leaves this thread with a stale number.
    """

    def __init__(self, fd: int, record: Callable[[int, int], None]) -> None:
        self._fd = os.dup(fd)
        self._record = record
        self._cond = threading.Condition()
        self._pending: tuple[int, int] | None = None  # (epoch, offset)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="download-checkpoint", daemon=True)
        self._thread.start()

    def request(self, epoch: int, offset: int) -> None:
        with self._cond:
            self._pending = (epoch, offset)
            self._cond.notify()

    def close(self) -> None:
        """Let an fsync in flight finish and record; drop a pending one (the caller syncs last)."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify()
        self._thread.join()
        os.close(self._fd)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                assert self._pending is not None  # the wait above ends on a request or on close
                epoch, offset = self._pending
                self._pending = None
            try:
                _fsync_part(self._fd)
            except OSError as exc:  # the receiving thread meets a failing disk on its next write
                log.warning("could not make the partial download durable: %s", exc)
                continue
            self._record(epoch, offset)


# --- the queue -------------------------------------------------------------------------------------


class DownloadQueue:
    """Downloads, persisted in ``state_path``, landing in ``models_dir``."""

    def __init__(
        self,
        state_path: Path,
        models_dir: Path,
        max_parallel: int = 1,
        token: str | None = None,
        on_event: Callable[[DownloadEvent], None] | None = None,
        *,
        endpoint: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
        checkpoint_bytes: int = 8 * 1024 * 1024,
        connect_timeout: float = 15.0,
        read_timeout: float = 30.0,
        user_agent: str = f"hearth/{__version__}",
    ) -> None:
        self.state_path = Path(state_path)
        self.models_dir = Path(models_dir)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.max_parallel = max(1, int(max_parallel))
        self.retry = retry
        self.checkpoint_bytes = checkpoint_bytes
        self._token = token or None
        self._endpoint = (endpoint or "https://huggingface.co").rstrip("/")
        self._on_event = on_event
        self._user_agent = user_agent
        self._timeout = httpx2.Timeout(connect_timeout, read=read_timeout, write=read_timeout, pool=read_timeout)
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._items: dict[str, DownloadItem] = {}
        self._jobs: dict[str, _Job] = {}
        # Hash state kept across pause/resume in this process, so a resume need not re-read the part.
        self._hashers: dict[str, tuple[int, Any]] = {}
        self._client: httpx2.Client | None = None
        self._closed = False
        self._load()

    # --- persistence -------------------------------------------------------------------------

    def _load(self) -> None:
        data = read_json(self.state_path, {"items": []})
        changed = False
        for raw in data.get("items", []) if isinstance(data, dict) else []:
            try:
                item = DownloadItem.from_dict(raw)
            except (TypeError, ValueError):
                continue  # a damaged record must not hide the others
            if item.state in _ACTIVE:  # we quit or crashed while it ran: resumable, not restarted
                item.state = DownloadState.PAUSED
                changed = True
            if item.state in _RESUMABLE:
                on_disk = self._part_size(item)
                if on_disk < item.done:
                    item.done = on_disk
                    changed = True
            self._items[item.id] = item
        if changed:
            self._save()

    def _save(self) -> None:
        """Write the state file; running items are stored at their last checkpoint."""
        with self._lock:
            data = {"version": 1, "items": [i.to_dict() for i in self._items.values()]}
        with self._save_lock:
            try:
                write_json(self.state_path, data)
            except OSError as exc:  # a full disk must not kill the worker that noticed it
                log.warning("could not save the download list: %s", exc)

    # --- public API --------------------------------------------------------------------------

    def items(self) -> list[DownloadItem]:
        with self._lock:
            return [self._snapshot(i) for i in self._items.values()]

    def get(self, item_id: str) -> DownloadItem:
        with self._lock:
            return self._snapshot(self._item(item_id))

    def active_workers(self) -> int:
        """Worker threads still alive (a paused transfer's thread is gone within about a second)."""
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.thread is not None and j.thread.is_alive())

    def set_token(self, token: str | None) -> None:
        """Used by the next request of every download (the token is never written to disk)."""
        self._token = token or None

    def set_max_parallel(self, n: int) -> None:
        with self._lock:
            self.max_parallel = max(1, int(n))
            self._schedule()

    def add(
        self,
        repo_id: str,
        filename: str,
        url: str,
        *,
        total: int | None = None,
        sha256: str | None = None,
    ) -> DownloadItem:
        """Queue a file (it starts when a slot is free). Returns the item.

        The same file twice gives back the existing item (resumed if it was paused or had
        failed) instead of a second transfer into the same part file.
        """
        dest = safe_destination(self.models_dir, repo_id, filename)
        with self._lock:
            for item in self._items.values():
                if item.dest == str(dest) and item.state not in (DownloadState.COMPLETE, DownloadState.CANCELLED):
                    if item.state in _RESUMABLE:
                        self.resume(item.id)
                    return self._snapshot(item)
            if dest.exists():
                raise AlreadyDownloaded(f"{dest.name} is already in your models folder.")
            part = Path(str(dest) + ".part")
            self._check_space(dest, total, 0, exclude=None)
            item = DownloadItem(
                id=uuid.uuid4().hex[:12],
                repo_id=repo_id,
                filename=filename,
                url=url,
                dest=str(dest),
                part_path=str(part),
                total=total,
                done=0,
                sha256=sha256.lower() if sha256 else None,
            )
            # Stale bytes from an earlier, forgotten attempt are not trusted: start clean.
            part.unlink(missing_ok=True)
            self._items[item.id] = item
            self._save()
            self._emit(EventKind.ADDED, item)
            self._schedule()
            return self._snapshot(item)

    def pause(self, item_id: str) -> None:
        """Stop the transfer (within a second); the part file and progress stay for resume."""
        with self._lock:
            item = self._item(item_id)
            if item.state not in _ACTIVE:
                return
            self._set_state(item, DownloadState.PAUSED, None)
            job = self._jobs.get(item_id)
        if job is not None:
            job.interrupt()

    def resume(self, item_id: str) -> None:
        """Continue a paused or failed item from the bytes on disk. May raise DiskSpaceError."""
        with self._lock:
            item = self._item(item_id)
            if item.state not in _RESUMABLE:
                return
            self._check_space(Path(item.dest), item.total, self._part_size(item), exclude=item_id)
            self._set_state(item, DownloadState.QUEUED, None)
            self._schedule()

    def cancel(self, item_id: str) -> None:
        """Stop and delete the part file; the item stays listed as cancelled."""
        with self._lock:
            item = self._item(item_id)
            if item.state in (DownloadState.COMPLETE, DownloadState.CANCELLED):
                return
            item.done = 0
            self._hashers.pop(item_id, None)
            self._set_state(item, DownloadState.CANCELLED, None)
            job = self._jobs.get(item_id)
            if job is None:
                Path(item.part_path).unlink(missing_ok=True)
        if job is not None:
            job.interrupt()  # the worker deletes the part when it has let go of it

    def remove(self, item_id: str) -> None:
        """Forget an item; an unfinished one is cancelled first (its part file deleted).
        A completed item's model file is kept: it belongs to the library now."""
        with self._lock:
            item = self._item(item_id)
            if item.state != DownloadState.COMPLETE:
                self.cancel(item_id)
            del self._items[item_id]
            self._save()
            self._emit(EventKind.REMOVED, item)

    def close(self, timeout: float = 5.0) -> None:
        """Stop every transfer and save them as paused, so the next start can resume them."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
            for item in self._items.values():
                if item.state in _ACTIVE:
                    item.state = DownloadState.PAUSED
        for job in jobs:
            job.interrupt()
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))
        self._save()
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- bookkeeping (call with the lock held) --------------------------------------------------

    def _item(self, item_id: str) -> DownloadItem:
        try:
            return self._items[item_id]
        except KeyError:
            raise UnknownDownload(f"No download with id {item_id}") from None

    def _snapshot(self, item: DownloadItem) -> DownloadItem:
        job = self._jobs.get(item.id)
        if job is not None and item.state in (DownloadState.RUNNING, DownloadState.VERIFYING):
            return replace(item, done=job.offset)
        return replace(item)

    def _set_state(self, item: DownloadItem, state: DownloadState, error: str | None) -> None:
        item.state = state
        item.error = error
        item.updated = time.time()
        self._save()
        self._emit(EventKind.STATE, item)

    def _emit(self, kind: EventKind, item: DownloadItem, **extra: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(DownloadEvent(kind, self._snapshot(item), **extra))
        except Exception:  # a broken listener must not break a transfer
            log.exception("download event listener failed")

    @staticmethod
    def _size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    def _part_size(self, item: DownloadItem) -> int:
        return self._size(Path(item.part_path))

    def _check_space(self, dest: Path, total: int | None, on_disk: int, exclude: str | None) -> None:
        """Refuse before starting if the file (and the other unfinished downloads) will not fit."""
        if total is None:
            return
        need = max(0, total - on_disk)
        others = sum(
            max(0, i.total - self._part_size(i))
            for i in self._items.values()
            if i.id != exclude and i.total and i.state in _HOLDS_SPACE
        )
        margin = max(int(total * 0.02), 200 * MB)
        folder = _existing_dir(dest.parent)
        free = shutil.disk_usage(folder).free
        if free >= need + others + margin:
            return
        where = _mount_point(folder)
        also = f" (and downloads already queued need {human_size(others)})" if others else ""
        raise DiskSpaceError(
            f"Not enough disk space: the file needs {human_size(need)}{also} plus "
            f"{human_size(margin)} to spare, {human_size(free)} is free on {where}."
        )

    def _schedule(self) -> None:
        if self._closed:
            return
        busy_dests = {j.item.dest for j in self._jobs.values()}
        running = sum(1 for j in self._jobs.values() if not j.stop.is_set())
        for item in self._items.values():
            if running >= self.max_parallel:
                break
            if item.state != DownloadState.QUEUED or item.id in self._jobs or item.dest in busy_dests:
                continue
            job = _Job(item)
            self._jobs[item.id] = job
            busy_dests.add(item.dest)
            running += 1
            self._set_state(item, DownloadState.RUNNING, None)
            job.thread = threading.Thread(target=self._worker, args=(job,), name=f"download-{item.id}", daemon=True)
            job.thread.start()

    def _http(self) -> httpx2.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx2.Client(follow_redirects=True, timeout=self._timeout)
            return self._client

    # --- the worker --------------------------------------------------------------------------

    def _worker(self, job: _Job) -> None:
        item = job.item
        try:
            self._transfer(job)
        except _Stopped:
            pass
        except _Permanent as exc:
            if exc.delete_part:
                Path(item.part_path).unlink(missing_ok=True)
                job.offset = 0
                job.hasher = None
                self._hashers.pop(item.id, None)
            self._finish(job, DownloadState.FAILED, str(exc))
        except Exception as exc:  # a bug or an odd OS error: keep the bytes, say what happened
            log.exception("download %s failed", item.id)
            self._finish(job, DownloadState.FAILED, f"The download stopped unexpectedly: {exc}")
        finally:
            with self._lock:
                self._jobs.pop(item.id, None)
                if item.state == DownloadState.CANCELLED:
                    Path(item.part_path).unlink(missing_ok=True)
                    item.done = 0
                elif item.state != DownloadState.COMPLETE:
                    item.done = job.offset
                    if job.hasher is not None:
                        self._hashers[item.id] = (job.offset, job.hasher)
                    # pause() announced the last checkpoint; now say where it really stopped
                    self._emit(EventKind.PROGRESS, item)
                self._save()
                self._schedule()

    def _finish(self, job: _Job, state: DownloadState, error: str | None) -> None:
        """The worker's own verdict; a pause or cancel that came first wins."""
        with self._lock:
            if job.stop.is_set():
                return
            job.item.done = job.offset
            self._set_state(job.item, state, error)

    def _check_stop(self, job: _Job) -> None:
        if job.stop.is_set():
            raise _Stopped

    def _transfer(self, job: _Job) -> None:
        item = job.item
        part = Path(item.part_path)
        part.parent.mkdir(parents=True, exist_ok=True)
        # Unbuffered: after a failed write (disk full) nothing is left in a buffer to spill
        # later, and truncating back to the hashed length is exact.
        with open(part, "ab", buffering=0) as fh:
            job.checkpointer = _Checkpointer(fh.fileno(), functools.partial(self._record_durable, job))
            try:
                self._fetch_all(job, fh)
            finally:
                job.checkpointer.close()
                _sync_quietly(fh)
        self._verify(job)

    def _fetch_all(self, job: _Job, fh: Any) -> None:
        """Fetch until the part file holds the whole file, retrying transient failures."""
        item = job.item
        self._prepare_part(job, fh)
        failures = 0
        while True:
            self._check_stop(job)
            if item.total is not None and job.offset >= item.total:
                break
            before = job.offset
            try:
                self._fetch(job, fh)
                break
            except _Transient as exc:
                if job.stop.is_set():
                    raise _Stopped from None
                failures = 1 if job.offset > before else failures + 1
                if failures > self.retry.attempts:
                    raise _Permanent(f"{exc} Press Resume to try again.") from None
                delay = min(self.retry.max_delay, self.retry.base_delay * 2 ** (failures - 1))
                if exc.retry_after is not None:
                    delay = min(self.retry.max_retry_after, max(delay, exc.retry_after))
                with self._lock:
                    if not job.stop.is_set():
                        item.error = f"{exc} Retrying in {delay:.0f} s…" if delay >= 1 else f"{exc} Retrying…"
                        self._emit(EventKind.STATE, item)
                if job.stop.wait(delay):
                    raise _Stopped from None
        self._checkpoint(job, fh)

    def _prepare_part(self, job: _Job, fh: Any) -> None:
        """Trust the part file up to the last checkpoint, and hash those bytes (once)."""
        item = job.item
        on_disk = os.fstat(fh.fileno()).st_size
        # Bytes after the last saved checkpoint may be garbage after a power cut: drop them.
        trusted = min(on_disk, item.done)
        if on_disk != trusted:
            fh.truncate(trusted)
        cached = self._hashers.pop(item.id, None)
        if cached is not None and cached[0] == trusted:
            job.hasher = cached[1]
        else:
            job.hasher = hashlib.sha256()
            with open(item.part_path, "rb") as rh:
                left = trusted
                while left > 0:
                    self._check_stop(job)
                    block = rh.read(min(left, 4 * 1024 * 1024))
                    if not block:
                        break
                    job.hasher.update(block)
                    left -= len(block)
        job.offset = trusted

    def _restart_from_zero(self, job: _Job, fh: Any) -> None:
        with self._lock:
            job.epoch += 1
            job.item.done = 0
        fh.truncate(0)
        self._save()
        job.offset = 0
        job.hasher = hashlib.sha256()
        job.samples.clear()

    def _headers(self, job: _Job) -> dict[str, str]:
        headers = {"Accept-Encoding": "identity", "User-Agent": self._user_agent}
        if self._sends_token(job.item.url):
            headers["Authorization"] = f"Bearer {self._token}"
        if job.offset > 0:
            headers["Range"] = f"bytes={job.offset}-"
            if job.item.etag:
                headers["If-Range"] = job.item.etag
        return headers

    def _sends_token(self, url: str) -> bool:
        """The token goes to the Hub only (redirects to a CDN drop it too: httpx strips it)."""
        return bool(self._token) and _origin(url) == _origin(self._endpoint)

    def _fetch(self, job: _Job, fh: Any) -> None:
        """One GET from ``job.offset`` to the end; raises _Transient/_Permanent/_Stopped."""
        item = job.item
        try:
            with self._http().stream("GET", item.url, headers=self._headers(job)) as response:
                job.response = response
                try:
                    self._check_stop(job)
                    self._accept(job, fh, response)
                    self._receive(job, fh, response)
                finally:
                    job.response = None
        except httpx2.TransportError as exc:
            if job.stop.is_set():
                raise _Stopped from None
            raise _Transient(_describe(exc)) from None
        if item.total is not None and job.offset < item.total:
            raise _Transient("The connection closed before the file was complete.")

    def _accept(self, job: _Job, fh: Any, response: httpx2.Response) -> None:
        """Check the status and headers; position the part file for the body."""
        item = job.item
        status = response.status_code
        code = response.headers.get("X-Error-Code")
        if status in (401, 403) or code == "RepoNotFound":
            if code == "GatedRepo":
                raise _Permanent(GATED_MESSAGE)
            if response.headers.get("X-Error-Message") == "Invalid credentials in Authorization header":
                raise _Permanent(UNAUTHORIZED_MESSAGE)
            if code == "RepoNotFound":
                raise _Permanent(
                    f"The repo {item.repo_id} was not found on Hugging Face. If it is private, "
                    "add an access token in Settings."
                )
            if status == 401 and not self._sends_token(item.url):
                raise _Permanent(GATED_MESSAGE)
            raise _Permanent(
                f"Hugging Face refused access to {item.filename} (error {status}). " + GATED_MESSAGE.split(": ", 1)[-1]
            )
        if status == 404:
            raise _Permanent(f"{item.filename} is no longer on Hugging Face (it may have been renamed or removed).")
        if status == 416:  # we asked past the end: our part is not a prefix of this file
            self._restart_from_zero(job, fh)
            raise _Transient("The server refused to continue the partial file; starting it again.", retry_after=0)
        if status in (408, 429) or status >= 500:
            what = (
                "Hugging Face is limiting downloads"
                if status == 429
                else f"Hugging Face had a problem (error {status})"
            )
            raise _Transient(f"{what}.", retry_after=_retry_after(response.headers.get("Retry-After")))
        if status == 200:
            if job.offset > 0:  # Range ignored (or If-Range saw a new file): the body starts at 0
                self._restart_from_zero(job, fh)
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        elif status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != job.offset:
                self._restart_from_zero(job, fh)
                raise _Transient("The server sent the wrong part of the file; starting it again.", retry_after=0)
        else:
            raise _Permanent(f"Hugging Face gave an unexpected answer ({status}) for {item.filename}.")
        with self._lock:
            if total is not None and item.total != total:
                if item.total is None and job.offset == 0:  # first time we learn the size: check it fits
                    try:
                        self._check_space(Path(item.dest), total, 0, exclude=item.id)
                    except DiskSpaceError as exc:
                        raise _Permanent(str(exc), delete_part=True) from None
                else:
                    log.warning("%s: size changed from %s to %s", item.filename, item.total, total)
                item.total = total
            item.etag = _strong_etag(response.headers.get("ETag"))

    def _receive(self, job: _Job, fh: Any, response: httpx2.Response) -> None:
        feeder = _HashFeeder(job.hasher)
        try:
            self._receive_into(job, fh, response, feeder)
        finally:
            feeder.finish()  # job.hasher holds every byte written, whatever stopped the loop

    def _receive_into(self, job: _Job, fh: Any, response: httpx2.Response, feeder: _HashFeeder) -> None:
        item = job.item
        since_checkpoint = 0
        last_checkpoint = time.monotonic()
        for chunk in response.iter_raw():
            if job.stop.is_set():
                raise _Stopped
            if item.total is not None and job.offset + len(chunk) > item.total:
                self._restart_from_zero(job, fh)
                raise _Permanent("The server sent more data than the file's size; try again later.")
            try:
                _write_chunk(fh, chunk)
            except OSError as exc:
                self._truncate_to_hashed(job, fh)
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise _Permanent(
                        f"The disk is full ({_mount_point(Path(item.part_path).parent)}): free some space, "
                        "then press Resume to continue where it stopped."
                    ) from None
                raise _Permanent(f"Could not write the file: {exc.strerror or exc}.") from None
            feeder.feed(chunk)
            job.offset += len(chunk)
            since_checkpoint += len(chunk)
            now = time.monotonic()
            if since_checkpoint >= self.checkpoint_bytes or now - last_checkpoint >= 5.0:
                assert job.checkpointer is not None  # _transfer sets it for the whole fetch
                job.checkpointer.request(job.epoch, job.offset)
                since_checkpoint, last_checkpoint = 0, now
            if now - job.last_emit >= 0.1:
                self._progress(job, now)

    def _truncate_to_hashed(self, job: _Job, fh: Any) -> None:
        """After a failed write: keep exactly the bytes that were hashed."""
        try:
            fh.truncate(job.offset)
        except OSError:
            pass

    def _record_durable(self, job: _Job, epoch: int, offset: int) -> None:
        """The checkpointer's fsync covered ``offset`` bytes: a crash now resumes from there."""
        with self._lock:
            if epoch != job.epoch or offset <= job.item.done or job.item.state != DownloadState.RUNNING:
                return
            job.item.done = offset
            job.item.updated = time.time()
        self._save()

    def _checkpoint(self, job: _Job, fh: Any) -> None:
        """Make the bytes so far durable, then record them: a crash resumes from here."""
        fh.flush()
        _fsync_part(fh.fileno())
        with self._lock:
            job.item.done = job.offset
            job.item.updated = time.time()
        self._save()

    def _progress(self, job: _Job, now: float) -> None:
        job.last_emit = now
        job.samples.append((now, job.offset))
        while len(job.samples) > 2 and now - job.samples[0][0] > 3.0:
            job.samples.popleft()
        speed = job.speed()
        total = job.item.total
        eta = (total - job.offset) / speed if speed and total is not None else None
        with self._lock:
            if job.stop.is_set():
                return
            self._emit(EventKind.PROGRESS, job.item, speed=speed, eta=eta)

    def _verify(self, job: _Job) -> None:
        item = job.item
        with self._lock:
            self._check_stop(job)
            item.done = job.offset
            self._set_state(item, DownloadState.VERIFYING, None)
        if item.total is not None and job.offset != item.total:
            raise _Permanent("The downloaded file has the wrong size, so it was deleted. Download it again.", True)
        if item.sha256 and job.hasher.hexdigest() != item.sha256:
            raise _Permanent(
                "The downloaded file was damaged (its sha256 checksum does not match the one on Hugging Face), "
                "so it was deleted. Download it again.",
                delete_part=True,
            )
        dest = Path(item.dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if job.stop.is_set():  # cancelled while hashing: the worker's exit deletes the part
                raise _Stopped
            os.replace(item.part_path, dest)
            _fsync_dir(dest.parent)
            self._hashers.pop(item.id, None)
            item.done = job.offset
            self._set_state(item, DownloadState.COMPLETE, None)
            self._emit(EventKind.COMPLETED, item, path=dest)


def _content_range(value: str | None) -> tuple[int, int | None]:
    """``bytes START-END/TOTAL`` → (START, TOTAL or None)."""
    try:
        unit, _, spec = (value or "").partition(" ")
        span, _, size = spec.partition("/")
        if unit.strip().lower() != "bytes":
            raise ValueError(value)
        return int(span.split("-", 1)[0]), (int(size) if size.strip() not in ("", "*") else None)
    except ValueError:
        return -1, None


def _describe(exc: httpx2.TransportError) -> str:
    if isinstance(exc, httpx2.ConnectError):
        return OFFLINE_MESSAGE
    if isinstance(exc, httpx2.TimeoutException):
        return "The connection to Hugging Face timed out."
    return "The connection to Hugging Face was interrupted."


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _sync_quietly(fh: Any) -> None:
    """Flush and fsync the part file on the way out, whatever happened (a pause is a checkpoint)."""
    try:
        fh.flush()
        _fsync_part(fh.fileno())
    except (OSError, ValueError):
        pass


def _fsync_dir(path: Path) -> None:
    """Make the rename durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
