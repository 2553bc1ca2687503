"""The download queue against the local fake Hub: resume, retry, verify, pause, restart, refuse."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import errno
import json
import threading
import time
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_hub import FakeFile, FakeHub, make_content, sha256_hex

from app.core import downloads
from app.core.downloads import (
    AlreadyDownloaded,
    DiskSpaceError,
    DownloadEvent,
    DownloadItem,
    DownloadQueue,
    DownloadState,
    EventKind,
    RetryPolicy,
    UnsafePathError,
    safe_destination,
)
from app.core.hub import GATED_MESSAGE, HubClient

REPO = "alice/Tiny-GGUF"
NAME = "tiny.Q4_K_M.gguf"
SIZE = 1_500_000
CONTENT = make_content(SIZE, seed=42)
SHA = sha256_hex(CONTENT)
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture(autouse=True)
def hf_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture
def hub():
    with FakeHub(valid_tokens={"hf_granted"}) as server:
        server.add_repo(REPO, {NAME: CONTENT, "Q8_0/tiny.Q8_0.gguf": make_content(400_000, seed=7)})
        yield server


class Events:
    """Collects events from worker threads."""

    def __init__(self) -> None:
        self.events: list[DownloadEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: DownloadEvent) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: EventKind) -> list[DownloadEvent]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]

    def states(self) -> list[DownloadState]:
        return [e.item.state for e in self.of(EventKind.STATE)]


Setup = namedtuple("Setup", "make events models state_path")


@pytest.fixture
def setup(tmp_path: Path, hub: FakeHub):
    events = Events()
    models = tmp_path / "models"
    state_path = tmp_path / "downloads.json"
    queues: list[DownloadQueue] = []

    def make(**kwargs) -> DownloadQueue:
        options = dict(on_event=events, endpoint=hub.url, retry=FAST_RETRY, checkpoint_bytes=128 * 1024) | kwargs
        queue = DownloadQueue(state_path, models, **options)
        queues.append(queue)
        return queue

    yield Setup(make, events, models, state_path)
    for queue in queues:
        queue.close(timeout=2)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def state_of(queue: DownloadQueue, item_id: str) -> DownloadState:
    return queue.get(item_id).state


def wait_state(queue: DownloadQueue, item_id: str, state: DownloadState, timeout: float = 10.0) -> DownloadItem:
    wait_for(
        lambda: state_of(queue, item_id) == state,
        timeout,
        f"{state.value} (is {state_of(queue, item_id).value}: {queue.get(item_id).error})",
    )
    return queue.get(item_id)


def add(queue: DownloadQueue, hub: FakeHub, name: str = NAME, sha: str | None = SHA, total: int | None = SIZE):
    return queue.add(REPO, name, hub.file_url(REPO, name), total=total, sha256=sha)


def stored_items(state_path: Path) -> list[dict]:
    return json.loads(state_path.read_text())["items"]


def ranges(hub: FakeHub, name: str = NAME) -> list[str | None]:
    return [r.range for r in hub.file_requests(name)]


# --- the happy path -----------------------------------------------------------------------------


def test_full_download_is_verified_and_moved_into_the_models_folder(setup, hub: FakeHub) -> None:
    queue = setup.make()
    # What the lead does: list the repo, take the file's size and LFS sha256, build its URL.
    client = HubClient(endpoint=hub.url)
    listing = client.list_gguf_files(REPO)
    entry = next(f for f in listing.files if f.quant == "Q4_K_M")
    url = client.download_url(REPO, entry.filenames[0], revision=listing.revision)
    item = queue.add(REPO, entry.filenames[0], url, total=entry.size, sha256=entry.sha256)
    assert item.state in (DownloadState.QUEUED, DownloadState.RUNNING)

    done = wait_state(queue, item.id, DownloadState.COMPLETE)
    dest = setup.models / "alice" / "Tiny-GGUF" / NAME
    assert Path(done.dest) == dest
    assert dest.read_bytes() == CONTENT
    assert not Path(done.part_path).exists()
    assert done.done == done.total == SIZE and done.error is None

    (completed,) = setup.events.of(EventKind.COMPLETED)
    assert completed.path == dest and completed.item.state == DownloadState.COMPLETE
    assert setup.events.states()[-2:] == [DownloadState.VERIFYING, DownloadState.COMPLETE]
    assert setup.events.of(EventKind.ADDED)[0].item.id == item.id
    progress = setup.events.of(EventKind.PROGRESS)
    assert progress and all(e.item.total == SIZE for e in progress)
    assert [e.item.done for e in progress] == sorted(e.item.done for e in progress)
    assert stored_items(setup.state_path)[0]["state"] == "complete"
    assert ranges(hub) == [None]  # one plain GET, nothing to resume

    queue.remove(item.id)  # clearing a finished row keeps the model: it belongs to the library now
    assert dest.read_bytes() == CONTENT and queue.items() == []
    assert setup.events.of(EventKind.REMOVED)[0].item.id == item.id


def test_progress_reports_speed_and_eta_at_most_ten_times_a_second(setup, hub: FakeHub) -> None:
    hub.bytes_per_second = 1_000_000
    queue = setup.make()
    item = add(queue, hub)
    began = time.monotonic()
    wait_state(queue, item.id, DownloadState.COMPLETE)
    elapsed = time.monotonic() - began
    progress = setup.events.of(EventKind.PROGRESS)
    assert len(progress) <= elapsed * 10 + 2
    late = [e for e in progress if e.speed is not None]
    assert late, "no speed reported"
    assert all(300_000 < e.speed < 3_000_000 for e in late[2:])  # about the throttled 1 MB/s
    assert late[-1].eta is not None and late[-1].eta < late[0].eta


# --- failures that must heal themselves -----------------------------------------------------------


def test_dropped_connection_retries_with_range_and_the_hash_still_matches(setup, hub: FakeHub) -> None:
    hub.drop_after(400_000)
    hub.drop_after(300_000)  # the resumed request is cut too
    queue = setup.make()
    item = add(queue, hub)
    done = wait_state(queue, item.id, DownloadState.COMPLETE)
    assert Path(done.dest).read_bytes() == CONTENT

    got = ranges(hub)
    assert got[0] is None and len(got) == 3
    first, second = (int(r.removeprefix("bytes=").rstrip("-")) for r in got[1:])
    assert 0 < first <= 400_000 and first < second <= first + 300_000
    assert hub.file_requests(NAME)[1].headers.get("if-range") == f'"{SHA}"'


def test_server_errors_and_rate_limits_are_retried_honouring_retry_after(setup, hub: FakeHub) -> None:
    hub.fail(503, times=2)
    hub.fail(429, times=1, retry_after=1)
    queue = setup.make()
    item = add(queue, hub)

    def retrying() -> bool:
        return any(e.item.error and "Retrying" in e.item.error for e in setup.events.of(EventKind.STATE))

    wait_for(retrying, what="a retrying message")
    done = wait_state(queue, item.id, DownloadState.COMPLETE)
    assert Path(done.dest).read_bytes() == CONTENT and done.error is None

    requests = hub.file_requests(NAME)
    assert [r.status for r in requests] == [503, 503, 429, 200]
    gap = requests[3].time - requests[2].time
    assert gap >= 0.9  # Retry-After: 1 was honoured, not the 10 ms backoff


def test_server_that_ignores_range_restarts_from_zero_correctly(setup, hub: FakeHub) -> None:
    hub.ignore_range = True
    hub.drop_after(500_000)
    queue = setup.make()
    item = add(queue, hub)
    done = wait_state(queue, item.id, DownloadState.COMPLETE)
    data = Path(done.dest).read_bytes()
    assert len(data) == SIZE and data == CONTENT  # not the first 500 KB twice
    requests = hub.file_requests(NAME)
    assert requests[1].range is not None and requests[1].status == 200


def test_too_many_transient_failures_fail_resumably(setup, hub: FakeHub) -> None:
    hub.drop_after(200_000)
    hub.fail(500, times=50, skip=1)
    queue = setup.make()
    item = add(queue, hub)
    failed = wait_state(queue, item.id, DownloadState.FAILED)
    assert "Resume" in failed.error and "error 500" in failed.error
    assert Path(failed.part_path).stat().st_size == failed.done > 0  # the bytes are kept

    hub.clear_faults()
    queue.resume(item.id)
    done = wait_state(queue, item.id, DownloadState.COMPLETE)
    assert Path(done.dest).read_bytes() == CONTENT
    assert ranges(hub)[-1] == f"bytes={failed.done}-"


# --- permanent failures ----------------------------------------------------------------------------


def test_gated_and_missing_files_fail_at_once_with_plain_words(setup, hub: FakeHub) -> None:
    hub.add_repo("carol/gated-GGUF", {"g.Q4_0.gguf": make_content(1000)}, gated="auto", allowed_tokens={"hf_granted"})
    queue = setup.make()
    gated = queue.add("carol/gated-GGUF", "g.Q4_0.gguf", hub.file_url("carol/gated-GGUF", "g.Q4_0.gguf"), total=1000)
    failed = wait_state(queue, gated.id, DownloadState.FAILED)
    assert failed.error == GATED_MESSAGE
    missing = queue.add(REPO, "gone.gguf", hub.file_url(REPO, "gone.gguf"), total=1000)
    failed = wait_state(queue, missing.id, DownloadState.FAILED)
    assert "no longer on Hugging Face" in failed.error
    assert len(hub.file_requests("g.Q4_0.gguf")) == 1 and len(hub.file_requests("gone.gguf")) == 1  # no retries

    # With the token from Settings the gated file downloads; the token never reaches the disk.
    queue.set_token("hf_granted")
    queue.resume(gated.id)
    wait_state(queue, gated.id, DownloadState.COMPLETE)
    assert hub.file_requests("g.Q4_0.gguf")[-1].headers["authorization"] == "Bearer hf_granted"
    assert "hf_granted" not in setup.state_path.read_text()


def test_token_is_not_sent_to_the_cdn_or_other_hosts(tmp_path: Path) -> None:
    with FakeHub(cdn_redirect=True, valid_tokens={"hf_granted"}) as hub:
        hub.add_repo(REPO, {NAME: CONTENT})
        queue = DownloadQueue(
            tmp_path / "d.json", tmp_path / "models", token="hf_granted", endpoint=hub.url, retry=FAST_RETRY
        )
        try:
            item = add(queue, hub)
            wait_state(queue, item.id, DownloadState.COMPLETE)
            resolve, cdn = hub.file_requests(NAME)
            assert resolve.headers["authorization"] == "Bearer hf_granted" and "/resolve/" in resolve.path
            assert cdn.path.startswith("/_cdn/") and "authorization" not in cdn.headers
            # A URL that is not on the Hub endpoint never gets the token.
            other = queue.add(REPO, "Q8_0/tiny.Q8_0.gguf", f"http://localhost:{hub.port}/{REPO}/resolve/main/x")
            wait_for(lambda: queue.get(other.id).state in (DownloadState.FAILED, DownloadState.COMPLETE))
            assert "authorization" not in hub.requests[-1].headers
        finally:
            queue.close()


def test_wrong_sha256_fails_and_deletes_the_file(setup, hub: FakeHub) -> None:
    hub.add_repo("mallory/bad-GGUF", {"bad.Q4_0.gguf": FakeFile(CONTENT, wrong_sha256=True)})
    listing = HubClient(endpoint=hub.url).list_gguf_files("mallory/bad-GGUF")
    (entry,) = listing.files
    queue = setup.make()
    item = queue.add(
        "mallory/bad-GGUF",
        "bad.Q4_0.gguf",
        hub.file_url("mallory/bad-GGUF", "bad.Q4_0.gguf"),
        total=entry.size,
        sha256=entry.sha256,
    )
    failed = wait_state(queue, item.id, DownloadState.FAILED)
    assert "checksum" in failed.error and "deleted" in failed.error
    assert not Path(failed.part_path).exists() and not Path(failed.dest).exists()
    assert failed.done == 0
    assert not setup.events.of(EventKind.COMPLETED)


def test_corrupted_bytes_are_rejected_and_a_retry_starts_clean(setup, hub: FakeHub) -> None:
    """The listing is right but the bytes that arrive are not (a bad proxy, bit rot in transit)."""
    hub.repos[REPO].files[NAME].corrupt = True
    queue = setup.make()
    item = add(queue, hub)
    failed = wait_state(queue, item.id, DownloadState.FAILED)
    assert "checksum" in failed.error and not Path(failed.part_path).exists()

    hub.repos[REPO].files[NAME].corrupt = False
    queue.resume(item.id)  # what "Download again" does
    done = wait_state(queue, item.id, DownloadState.COMPLETE)
    assert Path(done.dest).read_bytes() == CONTENT
    assert ranges(hub) == [None, None]  # from zero, with a fresh hash


def test_full_disk_mid_download_keeps_the_part_for_resume(setup, hub: FakeHub, monkeypatch) -> None:
    written = {"n": 0}
    real_write = downloads._write_chunk

    def write_until_full(fh, data: bytes) -> None:
        room = 600_000 - written["n"]
        if len(data) > room:  # like the OS: what fits is written, then ENOSPC
            fh.write(data[:room])
            written["n"] += room
            raise OSError(errno.ENOSPC, "No space left on device")
        written["n"] += len(data)
        real_write(fh, data)

    monkeypatch.setattr(downloads, "_write_chunk", write_until_full)
    queue = setup.make()
    item = add(queue, hub)
    failed = wait_state(queue, item.id, DownloadState.FAILED)
    assert "disk is full" in failed.error and "Resume" in failed.error
    assert 0 < failed.done < 600_000  # the bytes of the failed write were not hashed ...
    assert Path(failed.part_path).stat().st_size == failed.done  # ... so they are not kept either

    monkeypatch.setattr(downloads, "_write_chunk", real_write)  # space was freed
    queue.resume(item.id)
    done = wait_state(queue, item.id, DownloadState.COMPLETE)
    assert Path(done.dest).read_bytes() == CONTENT
    assert ranges(hub)[-1] == f"bytes={failed.done}-"


# --- pause, resume, cancel, restart -------------------------------------------------------------------


def test_pause_then_resume_continues_from_the_bytes_on_disk(setup, hub: FakeHub) -> None:
    hub.bytes_per_second = 2_000_000
    queue = setup.make()
    item = add(queue, hub)
    wait_for(lambda: queue.get(item.id).done > 300_000, what="some progress")
    queue.pause(item.id)
    paused_at = time.monotonic()
    assert state_of(queue, item.id) == DownloadState.PAUSED
    wait_for(lambda: not queue.active_workers(), timeout=1.0, what="the worker to let go within a second")
    assert time.monotonic() - paused_at < 1.0

    size = Path(item.part_path).stat().st_size
    time.sleep(0.3)
    assert Path(item.part_path).stat().st_size == size  # nothing is written while paused
    assert 300_000 < size < SIZE and queue.get(item.id).done == size
    assert stored_items(setup.state_path)[0]["done"] == size

    hub.bytes_per_second = None
    queue.resume(item.id)
    done = wait_state(queue, item.id, DownloadState.COMPLETE)
    assert Path(done.dest).read_bytes() == CONTENT
    assert ranges(hub)[-1] == f"bytes={size}-"
    assert DownloadState.PAUSED in setup.events.states()


def test_pause_and_close_are_prompt_even_when_the_server_stalls(setup, hub: FakeHub) -> None:
    hub.stall(20)
    queue = setup.make()
    item = add(queue, hub)
    wait_for(lambda: hub.file_requests(NAME), what="the request")
    time.sleep(0.1)
    began = time.monotonic()
    queue.pause(item.id)
    wait_for(lambda: not queue.active_workers(), timeout=2.0, what="the stalled worker to stop")
    assert time.monotonic() - began < 1.0

    queue.resume(item.id)
    done = wait_state(queue, item.id, DownloadState.COMPLETE)
    assert Path(done.dest).read_bytes() == CONTENT

    hub.stall(20)
    other = add(queue, hub, name="Q8_0/tiny.Q8_0.gguf", sha=None, total=400_000)
    wait_for(lambda: hub.file_requests("Q8_0/tiny.Q8_0.gguf"), what="the second request")
    time.sleep(0.1)
    began = time.monotonic()
    queue.close()  # the app quits while the server says nothing
    assert time.monotonic() - began < 1.0 and not queue.active_workers()
    assert queue.get(other.id).state == DownloadState.PAUSED


def test_cancel_deletes_the_part_file(setup, hub: FakeHub) -> None:
    hub.bytes_per_second = 2_000_000
    queue = setup.make()
    item = add(queue, hub)
    wait_for(lambda: Path(item.part_path).exists() and Path(item.part_path).stat().st_size > 100_000)
    queue.cancel(item.id)
    assert state_of(queue, item.id) == DownloadState.CANCELLED
    wait_for(lambda: not Path(item.part_path).exists(), timeout=1.0, what="the part file to go")
    wait_for(lambda: not queue.active_workers(), timeout=1.0)
    assert not Path(item.part_path).exists() and not Path(item.dest).exists()
    assert queue.get(item.id).done == 0
    queue.remove(item.id)
    assert queue.items() == [] and stored_items(setup.state_path) == []


def test_restart_lists_the_download_as_paused_and_resume_completes(setup, hub: FakeHub) -> None:
    hub.bytes_per_second = 2_000_000
    first = setup.make()
    item = add(first, hub)
    wait_for(lambda: first.get(item.id).done > 400_000, what="some progress")
    first.close()  # the app quits mid-download
    assert stored_items(setup.state_path)[0]["state"] == "paused"

    hub.bytes_per_second = None
    events_before = len(setup.events.events)
    second = setup.make()
    (restored,) = second.items()
    assert restored.id == item.id and restored.state == DownloadState.PAUSED
    on_disk = Path(restored.part_path).stat().st_size
    assert restored.done == on_disk > 400_000
    assert len(setup.events.events) == events_before  # nothing starts by itself

    second.resume(item.id)
    done = wait_state(second, item.id, DownloadState.COMPLETE)
    assert Path(done.dest).read_bytes() == CONTENT  # the part was hashed once, then continued
    assert ranges(hub)[-1] == f"bytes={on_disk}-"


class SlowDisk:
    """Holds every fsync of a part file until ``release``; notes how many bytes each fsync
    covered and, for every state-file write, what it claimed against what was synced by then."""

    def __init__(self, monkeypatch) -> None:
        self.release = threading.Event()
        self.synced: list[int] = []
        self.claims: list[tuple[int, int]] = []  # (done written to the state file, bytes fsynced by then)
        self._fsync, self._write_json = downloads._fsync_part, downloads.write_json
        monkeypatch.setattr(downloads, "_fsync_part", self._held_fsync)
        monkeypatch.setattr(downloads, "write_json", self._spy_write_json)

    def _held_fsync(self, fd: int) -> None:
        self.release.wait(20)
        self._fsync(fd)
        self.synced.append(os.fstat(fd).st_size)

    def _spy_write_json(self, path: Path, data) -> None:
        self.claims.extend((stored["done"], max(self.synced, default=0)) for stored in data["items"])
        self._write_json(path, data)


def test_a_slow_disk_does_not_hold_up_the_transfer_and_only_synced_bytes_are_recorded(
    setup, hub: FakeHub, monkeypatch
) -> None:
    """Checkpoint fsyncs run on their own thread: while one is held (a slow disk) the bytes
    keep coming, and the state file never claims more of the part file than an fsync covered
    (that is what a resume after a power cut trusts)."""
    disk = SlowDisk(monkeypatch)
    hub.bytes_per_second = 4_000_000
    queue = setup.make()  # a checkpoint every 128 KiB
    item = add(queue, hub)
    part = Path(item.part_path)
    wait_for(lambda: part.exists() and part.stat().st_size >= 1_000_000, what="bytes past the held checkpoint")
    assert stored_items(setup.state_path)[0]["done"] == 0  # nothing was made durable yet
    disk.release.set()
    done = wait_state(queue, item.id, DownloadState.COMPLETE)
    assert Path(done.dest).read_bytes() == CONTENT
    recorded = [claim for claim, _ in disk.claims]
    assert 0 < min(c for c in recorded if c) < SIZE  # checkpoints landed mid-transfer too
    assert all(claim <= covered for claim, covered in disk.claims), disk.claims


def test_a_checkpoint_from_before_a_restart_from_zero_is_not_recorded(setup, hub: FakeHub, monkeypatch) -> None:
    """The connection drops, the server then ignores Range and the part file starts again
    from zero while an fsync of the old bytes is still under way: that fsync must not
    record the old length over the new, shorter file."""
    disk = SlowDisk(monkeypatch)
    hub.ignore_range = True
    hub.drop_after(1_000_000)
    hub.bytes_per_second = 1_000_000
    queue = setup.make()
    item = add(queue, hub)
    wait_for(lambda: len(hub.file_requests(NAME)) == 2, what="the request after the drop")
    disk.synced.clear()  # what counts from here is what the new file had when it was synced
    disk.release.set()
    done = wait_state(queue, item.id, DownloadState.COMPLETE, timeout=20)
    assert Path(done.dest).read_bytes() == CONTENT
    after = disk.claims[next(i for i, (claim, _) in enumerate(disk.claims) if claim == 0 and i > 0) :]
    assert all(claim <= covered for claim, covered in after if claim), after


def test_crash_resumes_from_the_last_checkpoint(setup, hub: FakeHub) -> None:
    """A crash leaves 'running' in the state file and maybe unrecorded bytes after the checkpoint."""
    dest = safe_destination(setup.models, REPO, NAME)
    dest.parent.mkdir(parents=True)
    part = Path(str(dest) + ".part")
    checkpoint = 700_000
    part.write_bytes(CONTENT[:checkpoint] + b"\0" * 50_000)  # zeros: never made durable
    record = DownloadItem(
        id="crashed1",
        repo_id=REPO,
        filename=NAME,
        url=hub.file_url(REPO, NAME),
        dest=str(dest),
        part_path=str(part),
        total=SIZE,
        done=checkpoint,
        sha256=SHA,
        state=DownloadState.RUNNING,
    )
    setup.state_path.write_text(json.dumps({"version": 1, "items": [record.to_dict()]}))

    queue = setup.make()
    (restored,) = queue.items()
    assert restored.state == DownloadState.PAUSED and restored.done == checkpoint
    queue.resume("crashed1")
    wait_state(queue, "crashed1", DownloadState.COMPLETE)
    assert dest.read_bytes() == CONTENT
    assert ranges(hub) == [f"bytes={checkpoint}-"]


def test_queue_runs_max_parallel_at_a_time_and_never_the_same_file_twice(setup, hub: FakeHub) -> None:
    hub.bytes_per_second = 3_000_000
    queue = setup.make(max_parallel=1)
    first = add(queue, hub)
    second = add(queue, hub, name="Q8_0/tiny.Q8_0.gguf", sha=None, total=400_000)
    again = add(queue, hub)
    assert again.id == first.id and len(queue.items()) == 2
    wait_for(lambda: queue.get(first.id).done > 0)
    assert state_of(queue, second.id) == DownloadState.QUEUED
    hub.bytes_per_second = None
    wait_state(queue, second.id, DownloadState.COMPLETE)
    assert state_of(queue, first.id) == DownloadState.COMPLETE
    assert len(hub.file_requests(NAME)) == 1
    assert (setup.models / "alice" / "Tiny-GGUF" / "Q8_0" / "tiny.Q8_0.gguf").stat().st_size == 400_000
    with pytest.raises(AlreadyDownloaded):
        queue.add(REPO, NAME, hub.file_url(REPO, NAME), total=SIZE)


# --- refusals before anything starts ---------------------------------------------------------------


def test_not_enough_disk_space_is_refused_before_starting(setup, hub: FakeHub, monkeypatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        downloads.shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 2_300 * 10**6, 2_300 * 10**6)
    )
    queue = setup.make()
    with pytest.raises(DiskSpaceError) as refused:
        queue.add(REPO, NAME, hub.file_url(REPO, NAME), total=4_100 * 10**6, sha256=SHA)
    message = str(refused.value)
    assert message.startswith("Not enough disk space: the file needs 4.1 GB")
    assert "2.3 GB is free on /" in message
    assert queue.items() == [] and hub.file_requests() == []

    # A file that fits, but not within the safety margin (200 MB), is refused too.
    with pytest.raises(DiskSpaceError):
        queue.add(REPO, NAME, hub.file_url(REPO, NAME), total=2_200 * 10**6)
    item = queue.add(REPO, NAME, hub.file_url(REPO, NAME), total=SIZE, sha256=SHA)
    wait_state(queue, item.id, DownloadState.COMPLETE)

    # Size unknown when queued: checked as soon as the server tells it, before any byte is written.
    monkeypatch.setattr(downloads.shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 100 * 10**6, 100 * 10**6))
    unknown = queue.add(REPO, "Q8_0/tiny.Q8_0.gguf", hub.file_url(REPO, "Q8_0/tiny.Q8_0.gguf"))
    failed = wait_state(queue, unknown.id, DownloadState.FAILED)
    assert failed.error.startswith("Not enough disk space") and not Path(failed.part_path).exists()


def test_unsafe_file_names_are_refused(setup, hub: FakeHub) -> None:
    queue = setup.make()
    for name in (
        "../evil.gguf",
        "a/../../evil.gguf",
        "/etc/evil.gguf",
        "..\\evil.gguf",
        "C:evil.gguf",
        "a//b.gguf",
        "./x.gguf",
        "x\n.gguf",
        "",
    ):
        with pytest.raises(UnsafePathError):
            queue.add(REPO, name, hub.file_url(REPO, "x"), total=10)
    with pytest.raises(UnsafePathError):
        queue.add("../etc", NAME, hub.file_url(REPO, NAME), total=10)
    ok = safe_destination(setup.models, REPO, "Q8_0/tiny.Q8_0.gguf")
    assert ok == setup.models.resolve() / "alice" / "Tiny-GGUF" / "Q8_0" / "tiny.Q8_0.gguf"
    # A symlinked folder inside the models folder that points outside is refused as well.
    outside = setup.models.parent / "outside"
    outside.mkdir()
    (setup.models / "alice").mkdir(parents=True)
    (setup.models / "alice" / "Tiny-GGUF").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        queue.add(REPO, NAME, hub.file_url(REPO, NAME), total=10)
    assert queue.items() == [] and hub.file_requests() == []
