"""Start-up: the first frame comes before everything it does not need (issue 18).

The real entry point runs in a fresh interpreter (bench/startup_probe.py: offscreen, its own
data folder), which reports what was imported, and which child processes were alive, at the
main window's first paint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import paths
from app.ui.lazy_downloads import LazyDownloads, pending_downloads

PROBE = Path(__file__).resolve().parent.parent / "bench" / "startup_probe.py"

# What the first frame must not wait for: the Hub client and its HTTP stack, numpy, the
# document readers, markdown and highlighting, the download queue, the documents package.
NOT_BEFORE_FIRST_FRAME = [
    "huggingface_hub",
    "httpx",
    "httpx2",
    "numpy",
    "pypdf",
    "docx",
    "markdown_it",
    "pygments",
    "app.core.downloads",
    "app.core.documents",
    "asyncio",  # the API server's reader only
    "importlib.metadata",  # the welcome screen's demo-model lookup, after its first paint
]


def run_probe(home: Path, *args: str) -> dict:
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        HEARTH_HOME=str(home),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",  # never a real keyring in tests
    )
    out = subprocess.run(
        [sys.executable, str(PROBE), "hearth", *args], env=env, capture_output=True, text=True, timeout=180
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("PROBE ")]
    assert lines, f"no report (exit {out.returncode}):\n{out.stdout}\n{out.stderr[-4000:]}"
    assert "Traceback" not in out.stderr, out.stderr
    return json.loads(lines[-1][len("PROBE ") :])


def test_first_frame_comes_before_heavy_imports_and_the_engine(tmp_path: Path) -> None:
    report = run_probe(tmp_path / "home", "--wait-engine", "60")
    loaded = set(report["modules"])
    assert "app.ui.main_window" in loaded  # the report is from the real window
    early = [name for name in NOT_BEFORE_FIRST_FRAME if name in loaded]
    assert early == [], f"imported before the first frame: {early}"
    assert report["engine_at_frame"] == [], "the engine child was started before the window was shown"
    # nor any other process: multiprocessing's resource tracker is a Python start of its own
    assert report["children_at_frame"] == [], "a child process was started before the window was shown"
    # ...and it does start, right after: the app did not simply lose it
    assert "hearth-engine" in report["engine_later"]
    later = set(report["modules_later"])
    assert "app.core.documents" in later  # the document index opened after the frame
    assert "app.core.downloads" not in later  # nothing pending: no download machinery at all


def test_pending_downloads_bring_the_queue_after_the_first_frame(tmp_path: Path) -> None:
    home = tmp_path / "home"
    state = home / "data" / "downloads.json"
    state.parent.mkdir(parents=True)
    item = {"id": "a1", "repo_id": "alice/Tiny-GGUF", "filename": "tiny.gguf", "state": "running"}
    state.write_text(json.dumps({"version": 1, "items": [item]}), encoding="utf-8")
    report = run_probe(home, "--settle", "0.2")
    assert "app.core.downloads" not in report["modules"]
    assert "app.core.downloads" in report["modules_later"]


@pytest.mark.parametrize(
    ("content", "pending"),
    [
        (None, False),
        ({"version": 1, "items": []}, False),
        ({"version": 1, "items": [{"state": "complete"}, {"state": "cancelled"}]}, False),
        ({"version": 1, "items": [{"state": "complete"}, {"state": "paused"}]}, True),
        ({"version": 1, "items": [{"state": "failed"}]}, True),
        ({"version": 1, "items": [{"state": "running"}]}, True),
        ("not json {", True),  # the queue, which can read it, decides
    ],
)
def test_pending_downloads_reads_the_state_file(tmp_path: Path, content, pending: bool) -> None:
    path = tmp_path / "downloads.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif content is not None:
        path.write_text(json.dumps(content), encoding="utf-8")
    assert pending_downloads(path) is pending


def test_lazy_downloads_builds_the_queue_once_and_keeps_settings(monkeypatch, tmp_path: Path) -> None:
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    lazy = LazyDownloads(max_parallel=1)
    lazy.set_max_parallel(3)  # before the queue exists: applied when it is made
    lazy.set_models_dir(tmp_path / "elsewhere")  # nothing to move yet: a queue made later reads paths
    assert not lazy.started
    queue, hub = lazy.get()
    try:
        assert lazy.started and lazy.get() == (queue, hub)
        assert queue.max_parallel == 3
        assert queue.models_dir == paths.models_dir()
        lazy.set_max_parallel(2)
        lazy.set_models_dir(tmp_path / "other")
        assert queue.max_parallel == 2 and queue.models_dir == tmp_path / "other"
    finally:
        lazy.close()


def test_main_window_opens_the_download_manager_only_with_its_dialog(qtbot, monkeypatch) -> None:
    import keyring
    from keyring.backends import fail

    from app.core.config import AppConfig
    from app.core.library import ModelLibrary
    from app.core.presets import PresetStore
    from app.core.store import ConversationStore
    from app.session import ChatSession
    from app.ui.main_window import MainWindow

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    store = ConversationStore(paths.data_dir() / "conversations.sqlite3")
    session = ChatSession(ModelLibrary(), AppConfig(), store)
    lazy = LazyDownloads()
    win = MainWindow(session, PresetStore(paths.config_dir() / "presets.json"), downloads=lazy)
    qtbot.addWidget(win)
    try:
        assert not lazy.started
        win.findChild(object, "downloadModelsAction").trigger()
        assert lazy.started and win.downloads_dialog is not None
        win.downloads_dialog.close()
    finally:
        lazy.close()
        session.shutdown()
