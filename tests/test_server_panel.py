"""The Local API server panel in the real window: start, serve the demo model to the official
openai client (a client no one here wrote), log each request, use the chat while it serves,
keep the key in the keyring, and stop."""

from __future__ import annotations

import threading

import keyring
import pytest
from llama_server import free_port
from memory_keyring import MemoryKeyring
from PySide6.QtCore import Qt

from app.core import secrets
from app.core.conversation import MessageState
from app.session import EngineState
from app.ui.server_panel import KEY_NAME

pytestmark = pytest.mark.model


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch):
    before = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    monkeypatch.setattr(secrets, "_session", {})
    yield
    keyring.set_keyring(before)


def _start(qtbot, panel) -> None:
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.server is not None or "Could not" in panel.state.text(), timeout=30_000)
    assert panel.server is not None, panel.state.text()


def test_the_panel_serves_the_window_model_to_the_openai_client(qtbot, open_main_window) -> None:
    import openai

    window = open_main_window()
    session = window.session
    panel = window.show_server_panel()
    assert panel.local_only.isChecked() and not panel.network_warning.isVisible()  # safe by default
    panel.port.setValue(free_port())
    panel.key.setText("sk-test-123")
    _start(qtbot, panel)
    assert panel.url.text() == f"http://127.0.0.1:{panel.port.value()}/v1"
    assert "API key required" in panel.state.text() and not panel.local_only.isEnabled()
    assert secrets.get_secret(KEY_NAME) == "sk-test-123"  # in the keyring, not in a file

    client = openai.OpenAI(base_url=panel.url.text(), api_key="sk-test-123", max_retries=0)
    results: dict[str, object] = {}

    def ask() -> None:
        try:
            results["models"] = [m.id for m in client.models.list()]
            stream = client.chat.completions.create(
                model=results["models"][0],  # type: ignore[index]
                messages=[{"role": "user", "content": "Name three colours."}],
                max_tokens=24,
                temperature=0,
                stream=True,
            )
            results["text"] = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            try:
                openai.OpenAI(base_url=panel.url.text(), api_key="wrong", max_retries=0).models.list()
            except openai.AuthenticationError:
                results["wrong_key"] = 401
        except Exception as exc:  # reported by the assertion below
            results["error"] = exc

    thread = threading.Thread(target=ask)
    thread.start()
    # the chat window is used while the API request streams: the person's reply comes too
    with qtbot.waitSignal(session.replyFinished, timeout=120_000) as finished:
        window.input.setPlainText("Say hello.")
        window.send_current()
    assert finished.args[0].state is MessageState.COMPLETE
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=120_000)
    assert "error" not in results, results.get("error")
    assert str(results["text"]).strip() and results["wrong_key"] == 401
    qtbot.waitUntil(lambda: panel.log_model.rowCount() >= 3, timeout=10_000)
    endpoints = {panel.log_model.index(r, 2).data() for r in range(panel.log_model.rowCount())}
    statuses = {panel.log_model.index(r, 6).data() for r in range(panel.log_model.rowCount())}
    assert {"/v1/models", "/v1/chat/completions"} <= endpoints and {"200", "401"} <= statuses

    with qtbot.waitSignal(panel.serverChanged, timeout=15_000) as stopped:
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert stopped.args == [False] and panel.url.text() == "" and panel.local_only.isEnabled()
    with pytest.raises(openai.APIConnectionError):
        client.models.list()
    assert session.state is EngineState.READY


def test_a_port_in_use_is_said_plainly_and_network_use_warns(qtbot, open_main_window) -> None:
    import socket

    window = open_main_window()
    panel = window.show_server_panel()
    panel.network.setChecked(True)
    assert panel.network_warning.isVisible() and "API key" in panel.network_warning.text()
    panel.local_only.setChecked(True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        panel.port.setValue(taken.getsockname()[1])
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "Could not start" in panel.state.text(), timeout=30_000)
    assert "in use" in panel.state.text() and panel.server is None and panel.start_button.isEnabled()


def test_hearths_own_remote_backend_talks_to_hearths_server(qtbot, open_main_window) -> None:
    from app.engine import protocol as p
    from app.engine.remote import RemoteBackend

    window = open_main_window()
    panel = window.show_server_panel()
    panel.port.setValue(free_port())
    _start(qtbot, panel)
    results: dict[str, object] = {}

    def talk() -> None:
        backend = RemoteBackend(panel.url.text())
        try:
            probe = backend.probe()
            results["kind"] = probe.kind
            model = probe.models[0].id
            results["loaded"] = backend.load(p.Load(model))
            events = [e for e in backend.chat(p.Chat([{"role": "user", "content": "Hi"}], {"max_tokens": 8}))]
            results["events"] = events
        except Exception as exc:
            results["error"] = exc
        finally:
            backend.close()

    thread = threading.Thread(target=talk)
    thread.start()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=120_000)
    assert "error" not in results, results.get("error")
    events = results["events"]
    assert isinstance(events[-1], p.Done) and "".join(e.text for e in events if isinstance(e, p.Delta)).strip()
    panel.shutdown()
