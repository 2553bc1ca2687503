"""The model library and the download manager reached from the main window, with real loads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app import paths
from app.core.config import AppConfig
from app.core.library import ModelLibrary
from app.core.presets import PresetStore
from app.core.settings import LoadSettings, SamplingSettings
from app.core.store import ConversationStore
from app.session import ChatSession, EngineState
from app.ui.main_window import MainWindow

pytestmark = pytest.mark.model


@pytest.fixture
def window(open_main_window, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

    keyring.set_keyring(FailKeyring())
    return open_main_window(n_ctx=512, max_tokens=8)


def test_switching_models_keeps_the_window_responsive(
    qtbot, window: MainWindow, tmp_path: Path, demo_model: Path
) -> None:
    from tiny_model import write_tiny_llama

    session = window.session
    tiny = write_tiny_llama(tmp_path / "tiny-chat.gguf")
    assert session.add_model(str(tiny)) is not None
    assert window.model_picker.count() == 2
    index = window.model_picker.findData(str(tiny.resolve()))
    assert "F32" in window.model_picker.itemText(index) or "tiny" in window.model_picker.itemText(index).lower()
    ticks: list[int] = []
    from PySide6.QtCore import QTimer

    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    window.model_picker.setCurrentIndex(index)
    window.model_picker.activated.emit(index)
    qtbot.waitUntil(
        lambda: session.state is EngineState.READY and session.loaded_info.model_path == str(tiny.resolve()),
        timeout=60_000,
    )
    back = window.model_picker.findData(str(demo_model))
    window.model_picker.setCurrentIndex(back)
    window.model_picker.activated.emit(back)
    qtbot.waitUntil(
        lambda: session.state is EngineState.READY and session.loaded_info.model_path == str(demo_model), timeout=60_000
    )
    timer.stop()
    assert len(ticks) > 5  # the event loop kept running while models loaded in the engine
    with qtbot.waitSignal(session.replyFinished, timeout=60_000) as finished:
        window.input.setPlainText("Hello")
        window.send_current()
    assert finished.args[0].model.startswith("SmolLM2")


def test_models_dialog_from_the_menu_removes_the_model_in_use(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch
) -> None:
    from tiny_model import write_tiny_llama

    session = window.session
    tiny = write_tiny_llama(tmp_path / "doomed.gguf")
    session.add_model(str(tiny))
    session.select_model(str(tiny.resolve()))
    qtbot.waitUntil(
        lambda: session.state is EngineState.READY and session.loaded_info.model_path == str(tiny.resolve()),
        timeout=60_000,
    )
    action = window.findChild(object, "manageModelsAction")
    action.trigger()
    dialog = window.models_dialog
    assert dialog is not None and dialog.isVisible()
    table = dialog.findChild(object, "modelTable")
    assert table.model().rowCount() == 2
    from PySide6.QtWidgets import QMessageBox

    monkeypatch.setattr("app.ui.models_dialog.QMessageBox.question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    row = dialog.proxy.mapFromSource(dialog.model.index(dialog.model.row_of(str(tiny.resolve())), 0)).row()
    dialog.table.selectRow(row)
    qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.state is EngineState.NO_MODEL, timeout=30_000)
    assert session.current_model is None
    assert table.model().rowCount() == 1 and window.model_picker.count() == 1
    assert tiny.exists()  # a linked model's file is the user's: only forgotten, never deleted
    # and the demo model can be chosen again from the dialog
    dialog.table.selectRow(0)
    qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=60_000)


def test_dropping_a_gguf_on_the_window_imports_it(qtbot, window: MainWindow, tmp_path: Path) -> None:
    from tiny_model import write_tiny_llama

    tiny = write_tiny_llama(tmp_path / "dropped.gguf")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tiny))])
    drop = QDropEvent(
        QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(drop)
    qtbot.waitUntil(lambda: window.model_picker.findData(str(tiny.resolve())) >= 0, timeout=30_000)


def test_download_from_the_menu_lands_in_the_model_picker(qtbot, demo_model: Path, tmp_path: Path, monkeypatch) -> None:
    """Search the (local, fake) Hub, download a real GGUF, and chat with it."""
    from fake_hub import FakeHub
    from tiny_model import write_tiny_llama

    from app.ui.downloads import create_download_manager

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

    keyring.set_keyring(FailKeyring())
    content = write_tiny_llama(tmp_path / "src.gguf").read_bytes()
    with FakeHub() as hub:
        hub.add_repo("alice/Tiny-GGUF", {"tiny.Q8_0.gguf": content})
        queue, client, _bridge = create_download_manager(endpoint=hub.url)
        store = ConversationStore(paths.data_dir() / "conversations.sqlite3")
        session = ChatSession(
            ModelLibrary(),
            AppConfig(),
            store,
            settings=SamplingSettings(temperature=0.0, seed=1, max_tokens=8),
            load_settings=LoadSettings(n_ctx=512, n_threads=1),
        )
        win = MainWindow(session, PresetStore(paths.config_dir() / "presets.json"), downloads=(queue, client))
        qtbot.addWidget(win)
        win.show()
        session.start()
        try:
            qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=120_000)
            win.findChild(object, "downloadModelsAction").trigger()
            dialog = win.downloads_dialog
            assert dialog is not None and dialog.isVisible()
            qtbot.keyClicks(dialog.searchEdit, "alice/Tiny-GGUF")
            qtbot.keyClick(dialog.searchEdit, Qt.Key.Key_Return)
            qtbot.waitUntil(lambda: dialog.filesModel.rowCount() == 1, timeout=10_000)
            dialog.filesView.selectRow(0)
            with qtbot.waitSignal(dialog.modelDownloaded, timeout=30_000) as done:
                qtbot.mouseClick(dialog.downloadButton, Qt.MouseButton.LeftButton)
            path = Path(done.args[0])
            assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(content).hexdigest()
            assert paths.models_dir() in path.parents
            # its header is read on a worker thread; the picker has it when that is done
            qtbot.waitUntil(lambda: win.model_picker.findData(str(path.resolve())) >= 0, timeout=20_000)
            index = win.model_picker.findData(str(path.resolve()))
            assert win.info_bar.isVisible()
            win.model_picker.setCurrentIndex(index)
            win.model_picker.activated.emit(index)
            qtbot.waitUntil(
                lambda: session.state is EngineState.READY and session.loaded_info.model_path == str(path.resolve()),
                timeout=60_000,
            )
        finally:
            win.close()
            queue.close()


def test_first_run_screen_when_there_is_no_model(qtbot, monkeypatch, tmp_path: Path) -> None:
    """No demo model installed and an empty library: a welcome screen, not an empty chat."""
    from tiny_model import write_tiny_llama

    monkeypatch.setattr("app.core.library.find_demo_model", lambda: None)
    store = ConversationStore(paths.data_dir() / "conversations.sqlite3")
    session = ChatSession(ModelLibrary(), AppConfig(), store, load_settings=LoadSettings(n_ctx=512, n_threads=1))
    win = MainWindow(session, PresetStore(paths.config_dir() / "presets.json"))
    qtbot.addWidget(win)
    win.show()
    session.start()
    try:
        assert win.chat_stack.currentWidget() is win.first_run and win.first_run.isVisible()
        tiny = write_tiny_llama(tmp_path / "first.gguf")
        monkeypatch.setattr("app.ui.main_window.QFileDialog.getOpenFileNames", lambda *a, **k: ([str(tiny)], ""))
        win.first_run.addModel.emit()
        qtbot.waitUntil(lambda: win.model_picker.count() == 1, timeout=20_000)  # read off the GUI thread
        assert win.chat_stack.currentWidget() is win.chat_view
        qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=60_000)  # chosen and loaded
    finally:
        win.close()
