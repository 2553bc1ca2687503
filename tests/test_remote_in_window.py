"""Chat with a model served by another program, in the real window.

The server is llama-cpp-python's own OpenAI-compatible server (a program no one here wrote),
serving the demo model on 127.0.0.1. The connection is added through Models > Connections,
the remote model is picked in the picker, a reply streams, Stop closes the stream (the server
logs that the client left) and the next request is answered.
"""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest
from llama_server import running_server
from memory_keyring import MemoryKeyring
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from app.core import secrets
from app.core.conversation import MessageState
from app.core.remote_models import remote_model_info, remote_ref
from app.session import EngineState

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def server(demo_model: Path, tmp_path_factory):
    with running_server(demo_model, tmp_path_factory.mktemp("llama-server") / "server.log") as running:
        yield running


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch):
    before = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    monkeypatch.setattr(secrets, "_session", {})
    yield
    keyring.set_keyring(before)


def _pick(window, path: str) -> None:
    index = window.model_picker.findData(path)
    assert index >= 0, [window.model_picker.itemText(i) for i in range(window.model_picker.count())]
    window.model_picker.setCurrentIndex(index)
    window.model_picker.activated.emit(index)


def _add_connection(qtbot, window, name: str, url: str) -> None:
    dialog = window.show_connections()
    dialog.name_edit.setText(name)
    dialog.url_edit.setText(url)
    with qtbot.waitSignal(dialog.connectionsChanged, timeout=10_000):
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    dialog.close()


def test_a_remote_model_chats_stops_and_answers_again(qtbot, open_main_window, server) -> None:
    window = open_main_window()
    session = window.session
    _add_connection(qtbot, window, "lab", server.url)
    ref = remote_ref("lab", "smol")
    qtbot.waitUntil(lambda: window.model_picker.findData(ref) >= 0, timeout=30_000)
    labels = [window.model_picker.itemText(i) for i in range(window.model_picker.count())]
    assert "On this computer" in labels and any(label.startswith("lab — on this computer") for label in labels)

    _pick(window, ref)
    qtbot.waitUntil(
        lambda: session.state is EngineState.READY and session.loaded_info.model_path == ref, timeout=30_000
    )
    assert session.loaded_info.n_ctx == 1024  # asked from the server
    assert not window.remote_badge.isVisible()  # 127.0.0.1: the text stays on this computer

    with qtbot.waitSignal(session.replyFinished, timeout=120_000) as finished:
        window.input.setPlainText("Name three colours.")
        window.send_current()
    reply = finished.args[0]
    assert reply.state is MessageState.COMPLETE and reply.text.strip()
    assert reply.model == "smol · lab"  # which model, on which server
    assert reply.stats["tokens"] > 0

    # Stop mid-stream: the stream is closed at once and the server stops generating.
    session.settings.max_tokens = 400
    session.settings.stop = []
    with qtbot.waitSignal(session.replyText, timeout=60_000):
        window.input.setPlainText("Write a long story about a lighthouse.")
        window.send_current()
    qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=5_000)
    assert session.conversation.messages[-1].state is MessageState.STOPPED
    qtbot.waitUntil(lambda: "Disconnected from client" in server.log(), timeout=10_000)

    session.settings.max_tokens = 8
    with qtbot.waitSignal(session.replyFinished, timeout=60_000) as again:
        window.input.setPlainText("Say hi.")
        window.send_current()
    assert again.args[0].state is MessageState.COMPLETE and again.args[0].text.strip()


def test_a_connection_that_does_not_answer_is_listed_with_the_reason(qtbot, open_main_window) -> None:
    from llama_server import free_port

    window = open_main_window()
    _add_connection(qtbot, window, "gone", f"http://127.0.0.1:{free_port()}")
    qtbot.waitUntil(
        lambda: any("not answering" in window.model_picker.itemText(i) for i in range(window.model_picker.count())),
        timeout=30_000,
    )
    assert window.session.state is EngineState.READY  # the local model is still there


def test_the_badge_says_when_text_leaves_this_computer(qtbot, open_main_window) -> None:
    window = open_main_window()
    session = window.session
    gateway = session.connections.add_or_update("gateway", "https://api.example.com/v1")
    session.current_model = remote_model_info(gateway, "big-model")
    window._show_remote_badge()
    assert window.remote_badge.isVisible() and window.remote_badge.text() == "Sent to api.example.com"
    assert "api.example.com" in window.remote_badge.accessibleName()


def test_settings_the_server_ignores_are_marked_in_the_panel(qtbot, open_main_window, server) -> None:
    window = open_main_window()
    session = window.session
    _add_connection(qtbot, window, "lab", server.url)
    ref = remote_ref("lab", "smol")
    qtbot.waitUntil(lambda: window.model_picker.findData(ref) >= 0, timeout=30_000)
    panel = window.settings_panel
    top_k = panel.findChild(QWidget, "setting_top_k")
    assert top_k.isEnabled()
    _pick(window, ref)
    qtbot.waitUntil(
        lambda: session.state is EngineState.READY and session.loaded_info.model_path == ref, timeout=30_000
    )
    ignored = session.loaded_info.ignored_settings
    assert "system_prompt" not in ignored and "temperature" not in ignored
    for name in ignored:
        control = panel.findChild(QWidget, f"setting_{name}")
        if control is not None:
            assert not control.isEnabled() and "ignores this setting" in control.toolTip()
    note = panel.findChild(QLabel, "ignoredNote")
    assert note.isVisibleTo(panel) == bool(ignored)
    # back on a local model, every knob is there again
    _pick(window, session.library.models()[0].path)
    qtbot.waitUntil(
        lambda: session.state is EngineState.READY and session.loaded_info.model_path != ref, timeout=60_000
    )
    assert top_k.isEnabled() and not note.isVisibleTo(panel)
