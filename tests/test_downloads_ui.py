"""The Download models window against the local fake Hub: search, choose, download, control."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import hashlib
import threading
import time
from datetime import UTC
from pathlib import Path

import keyring
import pytest
from fake_hub import FakeFile, FakeHub, make_content, sha256_hex
from keyring.backends import fail
from memory_keyring import MemoryKeyring
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from app import paths
from app.core import secrets
from app.core.downloads import DownloadEvent, DownloadItem, DownloadQueue, DownloadState, EventKind, RetryPolicy
from app.core.hub import GATED_MESSAGE, HubClient, QuantFile, RepoSummary
from app.core.library import Fit
from app.core.sysinfo import MemoryInfo
from app.ui.downloads import (
    FIT_ROLE,
    FRACTION_ROLE,
    ITEM_ID_ROLE,
    STATE_ROLE,
    DownloadBridge,
    DownloadColumn,
    DownloadTableModel,
    QuantColumn,
    QuantFileModel,
    RepoSearchModel,
    SearchColumn,
    bridge_for,
    create_download_manager,
    download_ram_estimate,
    format_eta,
)
from app.ui.downloads_dialog import DownloadsDialog

REPO = "alice/Tiny-GGUF"
Q4 = "tiny.Q4_K_M.gguf"
Q4_CONTENT = make_content(1_500_000, seed=1)
Q8_CONTENT = make_content(2_500_000, seed=2)
F16_CONTENT = make_content(5_000_000, seed=3)
GATED = "carol/Gated-GGUF"
SPLIT = "dave/Split-GGUF"
SPLIT_PARTS = ["big-Q4_K_M-00001-of-00002.gguf", "big-Q4_K_M-00002-of-00002.gguf"]
TOKEN = "hf_granted"
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)

MEMORY = MemoryInfo(total=8_000_000_000, available=4_000_000_000)  # every test file fits


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch):
    """No real keyring, no real Hugging Face cache."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    before = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    monkeypatch.setattr(secrets, "_session", {})
    yield backend
    keyring.set_keyring(before)


@pytest.fixture
def hub():
    with FakeHub(valid_tokens={TOKEN}) as server:
        server.add_repo(
            REPO,
            {
                Q4: Q4_CONTENT,
                "tiny.Q8_0.gguf": Q8_CONTENT,
                "tiny.F16.gguf": F16_CONTENT,
                "README.md": FakeFile(b"# tiny", lfs=False),
            },
            downloads=900,
            likes=50,
            last_modified="2024-05-01T00:00:00.000Z",
        )
        server.add_repo(
            "bob/Tiny-Chat-GGUF",
            {"chat.Q4_0.gguf": make_content(300_000, seed=4)},
            downloads=12_000,
            likes=3,
            last_modified="2024-03-01T00:00:00.000Z",
        )
        server.add_repo("erin/Unrelated-GGUF", {"x.Q4_0.gguf": make_content(1000, seed=5)}, downloads=5)
        server.add_repo(
            GATED,
            {"gated.Q4_K_M.gguf": make_content(600_000, seed=6)},
            gated="manual",
            allowed_tokens={TOKEN},
            license="llama3",
        )
        server.add_repo(
            SPLIT, {SPLIT_PARTS[0]: make_content(700_000, seed=7), SPLIT_PARTS[1]: make_content(500_000, seed=8)}
        )
        yield server


class Manager:
    """The queue, the Hub client and the bridge as the app builds them, pointed at the fake Hub."""

    def __init__(self, hub: FakeHub, state_path: Path) -> None:
        self.bridge = DownloadBridge()
        self.queue = DownloadQueue(
            state_path,
            paths.models_dir(),
            on_event=self.bridge.emit_event,
            endpoint=hub.url,
            retry=FAST_RETRY,
            checkpoint_bytes=128 * 1024,
        )
        self.client = HubClient(endpoint=hub.url)


@pytest.fixture
def manager(hub: FakeHub, tmp_path: Path):
    made = Manager(hub, tmp_path / "downloads.json")
    yield made
    made.queue.close(timeout=2)


@pytest.fixture
def dialog(qtbot, manager: Manager):
    window = DownloadsDialog(manager.queue, manager.client, bridge=manager.bridge, memory=MEMORY)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.tasks.busy() == 0)  # the token check at start
    return window


# --- helpers ---------------------------------------------------------------------------------


def open_repo(qtbot, dialog: DownloadsDialog, repo_id: str) -> None:
    dialog.searchEdit.clear()
    qtbot.keyClicks(dialog.searchEdit, repo_id)
    qtbot.keyClick(dialog.searchEdit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.filesModel.rowCount() > 0 or "not" in dialog.repoNote.text(), timeout=5000)


def file_row(dialog: DownloadsDialog, text: str) -> int:
    model = dialog.filesModel
    for row in range(model.rowCount()):
        if text in model.index(row, QuantColumn.FILE).data():
            return row
    raise AssertionError(f"no file row with {text!r}")


def download(qtbot, dialog: DownloadsDialog, *texts: str) -> None:
    view = dialog.filesView
    view.clearSelection()
    for text in texts:
        view.selectionModel().select(
            dialog.filesModel.index(file_row(dialog, text), 0),
            view.selectionModel().SelectionFlag.Select | view.selectionModel().SelectionFlag.Rows,
        )
    assert dialog.downloadButton.isEnabled()
    qtbot.mouseClick(dialog.downloadButton, Qt.MouseButton.LeftButton)


def downloads_row(dialog: DownloadsDialog, name: str) -> int:
    model = dialog.downloadsModel
    for row in range(model.rowCount()):
        if model.index(row, DownloadColumn.FILE).data() == name:
            return row
    return -1


def cell(dialog: DownloadsDialog, name: str, column: DownloadColumn, role=Qt.ItemDataRole.DisplayRole):
    row = downloads_row(dialog, name)
    return dialog.downloadsModel.index(row, column).data(role) if row >= 0 else None


def state(dialog: DownloadsDialog, name: str) -> str | None:
    return cell(dialog, name, DownloadColumn.FILE, STATE_ROLE)


def select_download(dialog: DownloadsDialog, name: str) -> None:
    dialog.downloadsView.selectRow(downloads_row(dialog, name))


def item(dialog: DownloadsDialog, name: str) -> DownloadItem:
    return dialog.downloadsModel.item_at(downloads_row(dialog, name))


def part_size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        return -1


# --- search -------------------------------------------------------------------------------------


def test_typing_in_the_search_box_shows_results_sorted_as_asked(qtbot, dialog: DownloadsDialog, hub: FakeHub) -> None:
    qtbot.keyClicks(dialog.searchEdit, "tiny")  # no Enter: a pause in typing searches
    qtbot.waitUntil(lambda: dialog.resultsModel.rowCount() == 2, timeout=5000)
    proxy = dialog.resultsProxy
    repos = [proxy.index(r, SearchColumn.REPO).data() for r in range(proxy.rowCount())]
    assert repos == ["bob/Tiny-Chat-GGUF", REPO]  # the Hub's order: most downloads first
    assert proxy.index(0, SearchColumn.DOWNLOADS).data() == "12,000"
    assert proxy.index(1, SearchColumn.AUTHOR).data() == "alice"
    assert proxy.index(1, SearchColumn.MODIFIED).data() == "2024-05-01"
    searches = [r for r in hub.requests if r.path == "/api/models"]
    assert len(searches) == 1 and searches[0].query["search"] == ["tiny"]  # one request for four keys
    assert "2 models" in dialog.searchStatus.text()

    dialog.sortCombo.setCurrentIndex(dialog.sortCombo.findData("likes"))
    qtbot.waitUntil(lambda: proxy.index(0, SearchColumn.REPO).data() == REPO, timeout=5000)
    assert [r for r in hub.requests if r.path == "/api/models"][-1].query["sort"] == ["likes"]

    # Clicking a header sorts by number, not by text ("900" < "12,000").
    dialog.resultsView.sortByColumn(SearchColumn.DOWNLOADS, Qt.SortOrder.AscendingOrder)
    assert [proxy.index(r, SearchColumn.DOWNLOADS).data() for r in range(2)] == ["900", "12,000"]
    dialog.sortCombo.setCurrentIndex(dialog.sortCombo.findData("downloads"))  # back to the Hub's order
    qtbot.waitUntil(lambda: proxy.index(0, SearchColumn.REPO).data() == "bob/Tiny-Chat-GGUF", timeout=5000)
    assert [r for r in hub.requests if r.path == "/api/models"][-1].query["sort"] == ["downloads"]

    dialog.searchEdit.clear()
    qtbot.keyClicks(dialog.searchEdit, "nothing-like-this")
    qtbot.keyClick(dialog.searchEdit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "No GGUF models match" in dialog.searchStatus.text(), timeout=5000)
    assert dialog.resultsModel.rowCount() == 0


def test_hub_unreachable_is_said_in_plain_words(qtbot, manager: Manager, hub: FakeHub) -> None:
    hub.fail(503, times=1, match="/api/models")
    window = DownloadsDialog(manager.queue, manager.client, bridge=manager.bridge, memory=MEMORY)
    qtbot.addWidget(window)
    qtbot.keyClicks(window.searchEdit, "tiny")
    qtbot.keyClick(window.searchEdit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "error 503" in window.searchStatus.text(), timeout=5000)
    assert "Traceback" not in window.searchStatus.text()


@pytest.mark.parametrize("text", [REPO, f"https://huggingface.co/{REPO}/blob/main/{Q4}", f"hf.co/{REPO}:Q4_K_M"])
def test_a_repo_id_or_link_opens_the_repo(qtbot, dialog: DownloadsDialog, text: str) -> None:
    open_repo(qtbot, dialog, text)
    assert dialog.filesModel.rowCount() == 3
    assert REPO in dialog.repoTitle.text()


def test_a_missing_repo_is_said_in_plain_words(qtbot, dialog: DownloadsDialog) -> None:
    open_repo(qtbot, dialog, "nobody/missing-GGUF")
    qtbot.waitUntil(lambda: "was not found" in dialog.repoNote.text(), timeout=5000)
    assert dialog.filesModel.rowCount() == 0 and not dialog.downloadButton.isEnabled()


# --- a repo's files -------------------------------------------------------------------------------


def test_choosing_a_repo_lists_quantizations_with_sizes_and_a_recommendation(qtbot, dialog: DownloadsDialog) -> None:
    qtbot.keyClicks(dialog.searchEdit, "Tiny-GGUF")
    qtbot.keyClick(dialog.searchEdit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.resultsModel.rowCount() == 1, timeout=5000)
    dialog.resultsView.selectRow(0)  # choosing the repo lists its files
    qtbot.waitUntil(lambda: dialog.filesModel.rowCount() == 3, timeout=5000)

    model = dialog.filesModel
    rows = [[model.index(r, c).data() for c in QuantColumn] for r in range(3)]
    assert [r[QuantColumn.QUANT] for r in rows] == ["Q4_K_M", "Q8_0", "F16"]  # README.md is not offered
    assert [r[QuantColumn.SIZE] for r in rows] == ["1.5 MB", "2.5 MB", "5.0 MB"]
    assert rows[0][QuantColumn.RAM] == "501.6 MB"  # 1.5 MB × 1.1 + 0.5 GB
    assert [model.index(r, 0).data(FIT_ROLE) for r in range(3)] == [Fit.FITS.value] * 3
    assert [r[QuantColumn.FIT] for r in rows] == ["fits", "fits", "fits ★ recommended"]  # the best that fits
    assert "License: apache-2.0" in dialog.repoNote.text()
    assert "gated" not in dialog.repoNote.text().lower()
    assert (
        "8.0 GB of memory, 4.0 GB free now" in dialog.memoryNote.text() and "× 1.1 + 0.5 GB" in dialog.memoryNote.text()
    )
    assert not dialog.downloadButton.isEnabled()  # nothing chosen yet


def test_split_files_are_one_entry(qtbot, dialog: DownloadsDialog) -> None:
    open_repo(qtbot, dialog, SPLIT)
    model = dialog.filesModel
    assert model.rowCount() == 1
    assert model.index(0, QuantColumn.FILE).data() == "big-Q4_K_M (2 parts)"
    assert model.index(0, QuantColumn.SIZE).data() == "1.2 MB"
    assert model.index(0, QuantColumn.QUANT).data() == "Q4_K_M"


def test_verdicts_against_this_computers_memory() -> None:
    gb = 1_000_000_000
    files = [
        QuantFile(q, f"m.{q}", [f"m.{q}.gguf"], int(size * gb), None, [None], [int(size * gb)])
        for q, size in (("Q2_K", 3), ("Q4_K_M", 5), ("Q8_0", 8.5), ("F16", 16))
    ]
    model = QuantFileModel()
    model.set_files(files, MemoryInfo(total=16 * gb, available=10 * gb))
    # Estimates 3.8, 6.0, 9.85, 18.1 GB: "fits" up to 80 % of the 10 GB free, "tight" up to 90 % of 16 GB.
    assert [model.index(r, QuantColumn.FIT).data() for r in range(4)] == [
        "fits",
        "fits ★ recommended",
        "tight",
        "won't fit",
    ]
    assert [model.index(r, QuantColumn.RAM).data() for r in range(4)] == ["3.8 GB", "6.0 GB", "9.8 GB", "18.1 GB"]
    assert model.best_row() == 1
    model.set_files(files, MemoryInfo(total=2 * gb, available=1 * gb))
    assert model.best_row() is None and model.index(0, QuantColumn.FIT).data() == "won't fit"


def test_estimate_is_file_size_times_1_1_plus_half_a_gigabyte() -> None:
    assert download_ram_estimate(10_000_000_000) == 11_500_000_000
    assert download_ram_estimate(0) == 500_000_000


# --- downloading ----------------------------------------------------------------------------------


def test_download_shows_progress_completes_and_announces_a_verified_model(
    qtbot, dialog: DownloadsDialog, hub: FakeHub
) -> None:
    hub.bytes_per_second = 1_500_000
    open_repo(qtbot, dialog, REPO)
    seen: list[tuple[str, str, str]] = []
    dialog.downloadsModel.dataChanged.connect(
        lambda *_: seen.append(
            (
                cell(dialog, Q4, DownloadColumn.PROGRESS),
                cell(dialog, Q4, DownloadColumn.SPEED),
                cell(dialog, Q4, DownloadColumn.ETA),
            )
        )
    )
    with qtbot.waitSignal(dialog.modelDownloaded, timeout=15000) as announced:
        download(qtbot, dialog, Q4)
        qtbot.waitUntil(lambda: downloads_row(dialog, Q4) >= 0, timeout=5000)
        assert cell(dialog, Q4, DownloadColumn.REPO) == REPO, dialog.message()
    path = Path(announced.args[0])
    assert path == paths.models_dir() / "alice" / "Tiny-GGUF" / Q4
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256_hex(Q4_CONTENT)

    middle = [s for s in seen if s[0] and "%)" in s[0] and "(100%)" not in s[0] and "(0%)" not in s[0]]
    assert middle, f"no progress in between: {seen}"
    assert any(speed.endswith("/s") for _, speed, _ in middle)
    assert any(eta.endswith(" s") for _, _, eta in middle)
    assert state(dialog, Q4) == "complete"
    assert cell(dialog, Q4, DownloadColumn.STATE) == "Done"
    assert cell(dialog, Q4, DownloadColumn.PROGRESS) == "1.5 MB"
    assert cell(dialog, Q4, DownloadColumn.PROGRESS, FRACTION_ROLE) == 1.0
    assert cell(dialog, Q4, DownloadColumn.SPEED) == "" and cell(dialog, Q4, DownloadColumn.ETA) == ""
    assert "is downloaded" in dialog.message()


def test_the_gui_thread_never_blocks_during_a_download(qtbot, dialog: DownloadsDialog, hub: FakeHub) -> None:
    hub.bytes_per_second = 3_000_000
    open_repo(qtbot, dialog, REPO)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    with qtbot.waitSignal(dialog.modelDownloaded, timeout=20000):
        download(qtbot, dialog, "tiny.Q8_0.gguf")
    timer.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) > 50  # it ran for over a second, ticking throughout
    # A correctness bound for "never freezes" (2 shared cores, CI noise), not a speed target.
    assert max(gaps) < 0.2, f"the GUI thread stalled for {max(gaps) * 1000:.0f} ms"


def test_pause_stops_the_bytes_and_resume_continues_from_the_disk(
    qtbot, dialog: DownloadsDialog, hub: FakeHub, manager: Manager
) -> None:
    hub.bytes_per_second = 1_000_000
    open_repo(qtbot, dialog, REPO)
    download(qtbot, dialog, "tiny.Q8_0.gguf")
    name = "tiny.Q8_0.gguf"
    qtbot.waitUntil(lambda: downloads_row(dialog, name) >= 0 and item(dialog, name).done > 300_000, timeout=5000)
    part = item(dialog, name).part_path
    select_download(dialog, name)
    assert dialog.pauseButton.isEnabled() and not dialog.resumeButton.isEnabled()
    qtbot.mouseClick(dialog.pauseButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: state(dialog, name) == "paused", timeout=3000)
    assert cell(dialog, name, DownloadColumn.STATE) == "Paused"
    qtbot.waitUntil(lambda: manager.queue.active_workers() == 0, timeout=2000)
    size = part_size(part)
    qtbot.wait(400)
    assert part_size(part) == size  # no byte arrives while paused
    assert 300_000 < size < len(Q8_CONTENT)
    assert dialog.resumeButton.isEnabled() and not dialog.pauseButton.isEnabled()
    fraction = cell(dialog, name, DownloadColumn.PROGRESS, FRACTION_ROLE)
    assert 0 < fraction < 1
    assert not dialog.downloadsView.viewport().grab().isNull()  # the progress bar delegate paints

    hub.bytes_per_second = None
    with qtbot.waitSignal(dialog.modelDownloaded, timeout=10000) as announced:
        qtbot.mouseClick(dialog.resumeButton, Qt.MouseButton.LeftButton)
    assert Path(announced.args[0]).read_bytes() == Q8_CONTENT
    assert hub.file_requests(name)[-1].range == f"bytes={size}-"  # from the bytes on disk, not from zero


def test_cancel_asks_first_then_deletes_the_part_file(
    qtbot, dialog: DownloadsDialog, hub: FakeHub, monkeypatch
) -> None:
    hub.bytes_per_second = 1_000_000
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "question", staticmethod(lambda parent, title, text, *a: asked.append(text) or answers.pop(0))
    )
    open_repo(qtbot, dialog, REPO)
    download(qtbot, dialog, Q4)
    qtbot.waitUntil(
        lambda: downloads_row(dialog, Q4) >= 0 and part_size(item(dialog, Q4).part_path) > 100_000, timeout=5000
    )
    part = item(dialog, Q4).part_path
    select_download(dialog, Q4)
    qtbot.mouseClick(dialog.cancelButton, Qt.MouseButton.LeftButton)  # "No"
    assert len(asked) == 1 and "deleted" in asked[0]
    qtbot.wait(200)
    assert state(dialog, Q4) == "running" and part_size(part) > 0

    qtbot.mouseClick(dialog.cancelButton, Qt.MouseButton.LeftButton)  # "Yes"
    qtbot.waitUntil(lambda: state(dialog, Q4) == "cancelled", timeout=3000)
    qtbot.waitUntil(lambda: not Path(part).exists(), timeout=3000)
    assert cell(dialog, Q4, DownloadColumn.STATE) == "Cancelled"
    assert not (paths.models_dir() / "alice" / "Tiny-GGUF" / Q4).exists()

    qtbot.mouseClick(dialog.removeButton, Qt.MouseButton.LeftButton)  # a cancelled row goes without asking
    qtbot.waitUntil(lambda: downloads_row(dialog, Q4) < 0, timeout=3000)
    assert len(asked) == 2


def test_not_enough_disk_space_is_refused_before_anything_starts(
    qtbot, dialog: DownloadsDialog, hub: FakeHub, monkeypatch
) -> None:
    from collections import namedtuple

    from app.core import downloads as core_downloads

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(core_downloads.shutil, "disk_usage", lambda _path: usage(10**12, 10**12 - 10**6, 10**6))
    open_repo(qtbot, dialog, REPO)
    download(qtbot, dialog, Q4)
    qtbot.waitUntil(lambda: "Not enough disk space" in dialog.message(), timeout=5000)
    assert dialog.downloadsModel.rowCount() == 0 and hub.file_requests(Q4) == []


def test_a_dropped_connection_recovers_by_itself(qtbot, dialog: DownloadsDialog, hub: FakeHub) -> None:
    hub.drop_after(400_000)
    open_repo(qtbot, dialog, REPO)
    with qtbot.waitSignal(dialog.modelDownloaded, timeout=10000) as announced:
        download(qtbot, dialog, Q4)
    assert Path(announced.args[0]).read_bytes() == Q4_CONTENT
    ranges = [r.range for r in hub.file_requests(Q4)]
    assert ranges[0] is None and len(ranges) == 2 and ranges[1].startswith("bytes=")
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) > 0
    assert state(dialog, Q4) == "complete"


def test_a_damaged_download_fails_with_its_reason_shown(qtbot, dialog: DownloadsDialog, hub: FakeHub) -> None:
    hub.repos[REPO].files[Q4] = FakeFile(Q4_CONTENT, corrupt=True)
    open_repo(qtbot, dialog, REPO)
    download(qtbot, dialog, Q4)
    qtbot.waitUntil(lambda: state(dialog, Q4) == "failed", timeout=10000)
    tip = cell(dialog, Q4, DownloadColumn.STATE, Qt.ItemDataRole.ToolTipRole)
    assert "sha256" in tip and "deleted" in tip
    assert cell(dialog, Q4, DownloadColumn.STATE) == "Failed"
    assert tip in dialog.message()


def test_a_split_model_is_announced_once_when_every_part_is_done(qtbot, dialog: DownloadsDialog) -> None:
    dialog.parallelSpin.setValue(2)
    open_repo(qtbot, dialog, SPLIT)
    announced: list[str] = []
    dialog.modelDownloaded.connect(announced.append)
    download(qtbot, dialog, "big-Q4_K_M")
    qtbot.waitUntil(lambda: all(state(dialog, p) == "complete" for p in SPLIT_PARTS), timeout=10000)
    qtbot.wait(100)
    first = paths.models_dir() / "dave" / "Split-GGUF" / SPLIT_PARTS[0]
    assert announced == [str(first)]
    assert first.exists() and first.with_name(SPLIT_PARTS[1]).exists()
    assert dialog.queue.max_parallel == 2


def test_a_gated_repo_asks_for_a_token_and_the_token_opens_it(
    qtbot, dialog: DownloadsDialog, isolated, manager: Manager
) -> None:
    open_repo(qtbot, dialog, GATED)
    assert GATED_MESSAGE in dialog.repoNote.text()
    assert "License: llama3" in dialog.repoNote.text()
    download(qtbot, dialog, "gated.Q4_K_M.gguf")
    qtbot.waitUntil(lambda: dialog.message() == GATED_MESSAGE, timeout=5000)
    assert dialog.downloadsModel.rowCount() == 0  # refused before anything was queued

    token_dialog = dialog.show_token_dialog()
    assert token_dialog.edit.echoMode() == token_dialog.edit.EchoMode.Password
    qtbot.keyClicks(token_dialog.edit, TOKEN)
    token_dialog.accept()
    qtbot.waitUntil(lambda: "saved in your system keyring" in dialog.message(), timeout=3000)
    assert isolated.passwords == {(secrets.SERVICE, secrets.USERNAME): TOKEN}
    with qtbot.waitSignal(dialog.modelDownloaded, timeout=10000):
        download(qtbot, dialog, "gated.Q4_K_M.gguf")
    # The token is in no file Hearth wrote (state file included).
    home = paths.root()
    assert home is not None
    leaked = [p for p in home.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert leaked == [] and TOKEN.encode() not in manager.queue.state_path.read_bytes()

    # Removing it: the keyring entry goes and the next request is anonymous again.
    token_dialog = dialog.show_token_dialog()
    qtbot.mouseClick(token_dialog.clearButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "removed" in dialog.message(), timeout=3000)
    assert isolated.passwords == {}


def test_without_a_keyring_the_token_works_for_the_session_and_says_so(qtbot, dialog: DownloadsDialog) -> None:
    keyring.set_keyring(fail.Keyring())
    open_repo(qtbot, dialog, GATED)
    token_dialog = dialog.show_token_dialog()
    qtbot.keyClicks(token_dialog.edit, TOKEN)
    token_dialog.accept()
    qtbot.waitUntil(lambda: "session only" in dialog.message(), timeout=3000)
    assert dialog.message() == secrets.NO_KEYRING_MESSAGE
    assert secrets.get_token() == TOKEN
    with qtbot.waitSignal(dialog.modelDownloaded, timeout=10000):
        download(qtbot, dialog, "gated.Q4_K_M.gguf")


def test_restart_lists_the_download_paused_and_resume_continues(qtbot, hub: FakeHub, tmp_path: Path) -> None:
    hub.bytes_per_second = 1_000_000
    state_path = tmp_path / "restart.json"
    first = Manager(hub, state_path)
    url = first.client.download_url(REPO, "tiny.Q8_0.gguf")
    added = first.queue.add(REPO, "tiny.Q8_0.gguf", url, total=len(Q8_CONTENT), sha256=sha256_hex(Q8_CONTENT))
    deadline = time.monotonic() + 5
    while first.queue.get(added.id).done < 300_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.queue.close()  # the app quits mid-download

    hub.bytes_per_second = None
    second = Manager(hub, state_path)
    try:
        window = DownloadsDialog(second.queue, second.client, bridge=second.bridge, memory=MEMORY)
        qtbot.addWidget(window)
        name = "tiny.Q8_0.gguf"
        assert state(window, name) == "paused"
        done = item(window, name).done
        assert done >= 128 * 1024 and f"({done * 100 // len(Q8_CONTENT)}%)" in cell(
            window, name, DownloadColumn.PROGRESS
        )
        select_download(window, name)
        with qtbot.waitSignal(window.modelDownloaded, timeout=10000) as announced:
            qtbot.mouseClick(window.resumeButton, Qt.MouseButton.LeftButton)
        assert Path(announced.args[0]).read_bytes() == Q8_CONTENT
        assert hub.file_requests(name)[-1].range == f"bytes={done}-"
    finally:
        second.queue.close(timeout=2)


def test_the_factory_builds_the_manager_with_the_saved_token(qtbot, hub: FakeHub, isolated) -> None:
    isolated.passwords[(secrets.SERVICE, secrets.USERNAME)] = TOKEN
    queue, client, bridge = create_download_manager(endpoint=hub.url)
    try:
        assert queue.state_path == paths.data_dir() / "downloads.json"
        assert queue.models_dir == paths.models_dir()
        assert bridge_for(queue) is bridge and queue.max_parallel == 1
        client.list_gguf_files(GATED)
        assert hub.requests[-1].headers.get("authorization") == f"Bearer {TOKEN}"
        window = DownloadsDialog(queue, client)  # finds the bridge by itself
        qtbot.addWidget(window)
        assert window.bridge is bridge
        with qtbot.waitSignal(window.modelDownloaded, timeout=10000):
            queue.add(GATED, "gated.Q4_K_M.gguf", client.download_url(GATED, "gated.Q4_K_M.gguf"))
        assert hub.file_requests("gated.Q4_K_M.gguf")[-1].headers.get("authorization") == f"Bearer {TOKEN}"
    finally:
        queue.close(timeout=2)


def test_the_dialog_is_not_modal(dialog: DownloadsDialog) -> None:
    assert dialog.objectName() == "downloadsDialog"
    assert not dialog.isModal()
    assert dialog.parallelSpin.value() == 1


# --- models and the bridge -----------------------------------------------------------------------------


def _item(n: int, state: DownloadState, done: int = 0, total: int | None = 1000, error: str | None = None):
    return DownloadItem(
        id=f"id{n}",
        repo_id="a/b",
        filename=f"dir/f{n}.gguf",
        url="http://x",
        dest=f"/m/a/b/f{n}.gguf",
        part_path=f"/m/a/b/f{n}.gguf.part",
        total=total,
        done=done,
        state=state,
        error=error,
    )


def test_download_table_model_passes_qtmodeltester(qtmodeltester) -> None:
    items = [
        _item(1, DownloadState.RUNNING, 250),
        _item(2, DownloadState.PAUSED, 500, None),
        _item(3, DownloadState.FAILED, 10, error="The server said no."),
        _item(4, DownloadState.COMPLETE, 1000),
    ]
    model = DownloadTableModel(items)
    qtmodeltester.check(model)
    assert model.index(0, DownloadColumn.PROGRESS).data() == "250 B / 1 KB (25%)"
    assert model.index(0, DownloadColumn.FILE).data() == "f1.gguf"
    assert model.index(2, DownloadColumn.STATE).data(Qt.ItemDataRole.ToolTipRole) == "The server said no."
    assert model.index(1, DownloadColumn.PROGRESS).data(FRACTION_ROLE) is None
    assert model.index(0, 0).data(ITEM_ID_ROLE) == "id1"

    model.apply_event(DownloadEvent(EventKind.ADDED, _item(5, DownloadState.QUEUED)))
    model.apply_event(DownloadEvent(EventKind.PROGRESS, _item(1, DownloadState.RUNNING, 600), speed=2_000_000, eta=125))
    model.apply_event(DownloadEvent(EventKind.REMOVED, _item(2, DownloadState.PAUSED)))
    qtmodeltester.check(model)
    assert model.rowCount() == 4
    assert model.index(0, DownloadColumn.SPEED).data() == "2.0 MB/s"
    assert model.index(0, DownloadColumn.ETA).data() == "2 min 5 s"


def test_names_from_the_network_are_never_rendered_as_html() -> None:
    hostile = _item(1, DownloadState.FAILED, error="<img src='x'> <b>bold</b>")
    hostile.filename = "<b>x</b>.gguf"
    model = DownloadTableModel([hostile])
    assert model.index(0, DownloadColumn.STATE).data(Qt.ItemDataRole.ToolTipRole) == (
        "<qt>&lt;img src=&#x27;x&#x27;&gt; &lt;b&gt;bold&lt;/b&gt;</qt>"
    )
    assert "&lt;b&gt;x&lt;/b&gt;.gguf<br>" in model.index(0, DownloadColumn.FILE).data(Qt.ItemDataRole.ToolTipRole)


def test_only_the_changed_row_and_cells_are_updated() -> None:
    model = DownloadTableModel([_item(1, DownloadState.RUNNING), _item(2, DownloadState.RUNNING)])
    changes: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(lambda a, b, *_: changes.append((a.row(), a.column(), b.row(), b.column())))
    model.apply_event(DownloadEvent(EventKind.PROGRESS, _item(2, DownloadState.RUNNING, 300), speed=1.0, eta=1.0))
    assert changes == [(1, DownloadColumn.PROGRESS, 1, DownloadColumn.ETA)]
    model.apply_event(DownloadEvent(EventKind.STATE, _item(1, DownloadState.PAUSED, 200)))
    assert changes[-1] == (0, DownloadColumn.PROGRESS, 0, DownloadColumn.STATE)
    assert model.index(0, DownloadColumn.SPEED).data() == ""


def test_search_and_file_models_pass_qtmodeltester(qtmodeltester) -> None:
    from datetime import datetime

    search = RepoSearchModel()
    search.set_results(
        [
            RepoSummary("a/x-GGUF", "a", 10, 2, datetime(2024, 1, 2, tzinfo=UTC)),
            RepoSummary("b/y-GGUF", "b", 5, 9, None, gated=True),
        ]
    )
    qtmodeltester.check(search)
    assert search.index(1, SearchColumn.REPO).data() == "b/y-GGUF  (gated)"

    files = QuantFileModel()
    files.set_files(
        [
            QuantFile("Q4_K_M", "m.Q4_K_M", ["m.Q4_K_M.gguf"], 1_000_000, "s", ["s"], [1_000_000]),
            QuantFile("Q8_0", "m-Q8_0", ["m-Q8_0-00001-of-00002.gguf"], None, None, [None], [None], complete=False),
            QuantFile("F16", "mmproj-F16", ["mmproj-F16.gguf"], 500_000, None, [None], [500_000]),
        ],
        MemoryInfo(None, None),
    )
    qtmodeltester.check(files)
    assert files.index(0, QuantColumn.FIT).data() == "can't tell"
    assert files.flags(files.index(1, 0)) == Qt.ItemFlag.NoItemFlags  # parts missing: can't be chosen
    assert files.index(2, QuantColumn.QUANT).data() == "vision projector"


def test_live_dialog_models_pass_qtmodeltester(qtbot, qtmodeltester, dialog: DownloadsDialog) -> None:
    qtbot.keyClicks(dialog.searchEdit, "GGUF")
    qtbot.keyClick(dialog.searchEdit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.resultsModel.rowCount() == 5, timeout=5000)
    qtmodeltester.check(dialog.resultsModel)
    qtmodeltester.check(dialog.resultsProxy)
    open_repo(qtbot, dialog, REPO)
    qtmodeltester.check(dialog.filesModel)
    with qtbot.waitSignal(dialog.modelDownloaded, timeout=10000):
        download(qtbot, dialog, Q4)
    qtmodeltester.check(dialog.downloadsModel)


def test_bridge_delivers_in_order_on_the_gui_thread_and_coalesces_progress(qtbot) -> None:
    bridge = DownloadBridge()
    received: list[tuple[str, str, int, bool]] = []
    main = threading.get_ident()
    bridge.eventReceived.connect(
        lambda e: received.append((e.kind.value, e.item.id, e.item.done, threading.get_ident() == main))
    )

    def worker() -> None:
        for done in (100, 200, 300):
            bridge.emit_event(DownloadEvent(EventKind.PROGRESS, _item(1, DownloadState.RUNNING, done)))
        bridge.emit_event(DownloadEvent(EventKind.PROGRESS, _item(2, DownloadState.RUNNING, 50)))
        bridge.emit_event(DownloadEvent(EventKind.STATE, _item(1, DownloadState.PAUSED, 300)))
        bridge.emit_event(DownloadEvent(EventKind.PROGRESS, _item(1, DownloadState.RUNNING, 400)))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert received == [] and bridge.pending() == 4  # nothing runs on the worker thread
    qtbot.waitUntil(lambda: len(received) == 4)
    assert received == [
        ("progress", "id1", 300, True),  # 100 and 200 were superseded before the GUI got to them
        ("progress", "id2", 50, True),
        ("state", "id1", 300, True),
        ("progress", "id1", 400, True),  # after a state change: kept, in order
    ]


def test_eta_words() -> None:
    assert format_eta(None) == "" and format_eta(7) == "7 s" and format_eta(3725) == "1 h 2 min"
