"""Connections to OpenAI-compatible servers: the store, the command line and the dialog."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import keyring
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memory_keyring import MemoryKeyring
from PySide6.QtCore import Qt

from app import paths
from app.application import run
from app.core import secrets
from app.core.connections import ConnectionError_, ConnectionStore, normalise_url
from app.ui.connections_dialog import ConnectionsDialog

KEY = "sk-live-Secret987654321"


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch) -> MemoryKeyring:
    before = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    monkeypatch.setattr(secrets, "_session", {})
    yield backend
    keyring.set_keyring(before)


def _file() -> str:
    return (paths.config_dir() / "connections.json").read_text()


# -- the store -------------------------------------------------------------------------------


def test_addresses_are_normalised_and_bad_ones_refused() -> None:
    assert normalise_url("localhost:8080") == "http://localhost:8080"
    assert normalise_url(" http://127.0.0.1:8000/v1/ ") == "http://127.0.0.1:8000"
    assert normalise_url("https://gateway.example.com/openai/v1") == "https://gateway.example.com/openai"
    assert normalise_url("http://[::1]:11434") == "http://[::1]:11434"
    for bad in ("ftp://host", "http://user:pass@host", "http://host:99999", "", "http://"):
        with pytest.raises(ConnectionError_):
            normalise_url(bad)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_address_text_is_normalised_or_refused_in_words(text: str) -> None:
    try:
        url = normalise_url(text)
    except ConnectionError_ as exc:
        assert str(exc)
    else:
        assert url.startswith(("http://", "https://")) and normalise_url(url) == url


def test_the_key_goes_to_the_keyring_never_to_the_file(memory_keyring: MemoryKeyring) -> None:
    store = ConnectionStore()
    box = store.add_or_update("GPU box", "192.168.1.20:8000/v1", KEY)
    assert box.base_url == "http://192.168.1.20:8000" and not box.is_local
    assert KEY not in _file() and "GPU box" in _file()
    assert ConnectionStore.api_key(box) == KEY
    # a new address keeps the key when asked to; the record is updated, not duplicated
    store.add_or_update("gpu box", "http://192.168.1.21:8000", None, keep_key=True)
    reopened = ConnectionStore()
    assert [c.base_url for c in reopened.all()] == ["http://192.168.1.21:8000"]
    assert ConnectionStore.api_key(reopened.all()[0]) == KEY
    assert reopened.remove("GPU BOX") and secrets.get_secret("endpoint:GPU box") is None
    assert ConnectionStore().all() == []


def test_a_damaged_connections_file_loses_only_the_damaged_entries() -> None:
    path = paths.config_dir() / "connections.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "connections": [
                    {"name": "ok", "base_url": "http://127.0.0.1:1"},
                    {"name": 5, "base_url": "http://x"},
                    {"name": "bad url", "base_url": "gopher://x"},
                    "nonsense",
                    {"name": "odd fields", "base_url": "http://h", "kind": ["x"], "added": "yesterday"},
                ]
            }
        )
    )
    names = [c.name for c in ConnectionStore().all()]
    assert names == ["odd fields", "ok"]
    path.write_text("{ not json")
    assert ConnectionStore().all() == []


# -- the command line ------------------------------------------------------------------------


def test_cli_adds_updates_and_removes_endpoints(monkeypatch, capsys) -> None:
    monkeypatch.setenv("BOX_KEY", KEY)
    assert run(["--add-endpoint", "box=127.0.0.1:8080/v1", "--api-key-env", "BOX_KEY"]) == 0
    out = capsys.readouterr().out
    assert "box" in out and KEY not in out
    box = ConnectionStore().get("box")
    assert box is not None and box.base_url == "http://127.0.0.1:8080" and box.is_local
    assert ConnectionStore.api_key(box) == KEY and KEY not in _file()

    assert run(["--add-endpoint", "box=http://127.0.0.1:9090"]) == 0  # the key stays
    box = ConnectionStore().get("box")
    assert box is not None and box.base_url == "http://127.0.0.1:9090" and ConnectionStore.api_key(box) == KEY

    assert run(["--add-endpoint", "no-equals-sign"]) == 2
    assert run(["--add-endpoint", "x=ftp://nope"]) == 2
    assert run(["--add-endpoint", "x=http://h", "--api-key-env", "UNSET_VARIABLE_FOR_TEST"]) == 2
    assert run(["--api-key-env", "BOX_KEY"]) == 2
    err = capsys.readouterr().err
    assert "NAME=URL" in err and "http://" in err and "UNSET_VARIABLE_FOR_TEST" in err

    assert run(["--remove-endpoint", "box"]) == 0
    assert run(["--remove-endpoint", "box"]) == 1
    assert ConnectionStore().all() == [] and secrets.get_secret("endpoint:box") is None


# -- the dialog ------------------------------------------------------------------------------


@dataclass
class FakeProbe:
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    fail: str = ""

    def __call__(self, base_url: str, api_key: str | None):
        self.calls.append((base_url, api_key))
        if self.fail:
            raise RuntimeError(self.fail)

        @dataclass
        class Result:
            kind: str = "llama.cpp server"
            version: str | None = "b5000"
            latency_ms: float = 12.0
            models: list = field(default_factory=lambda: ["smol", "big"])

        return Result()


def test_the_dialog_adds_tests_and_removes_a_connection(qtbot, monkeypatch) -> None:
    probe = FakeProbe()
    dialog = ConnectionsDialog(ConnectionStore(), probe=probe)
    qtbot.addWidget(dialog)
    dialog.show()
    for widget in (dialog.name_edit, dialog.url_edit, dialog.key_edit, dialog.table, dialog.test_button):
        assert widget.accessibleName() and widget.isEnabled() or widget is dialog.test_button
    assert dialog.key_edit.echoMode() == dialog.key_edit.EchoMode.Password

    qtbot.keyClicks(dialog.name_edit, "GPU box")
    qtbot.keyClicks(dialog.url_edit, "ftp://wrong")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert "http://" in dialog.message.text() and dialog.table.rowCount() == 0

    dialog.url_edit.setText("http://127.0.0.1:8080/v1")
    qtbot.keyClicks(dialog.key_edit, KEY)
    with qtbot.waitSignal(dialog.connectionsChanged):
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.table.rowCount() == 1 and dialog.table.item(0, 1).text() == "http://127.0.0.1:8080"
    assert KEY not in _file()

    dialog.table.selectRow(0)
    with qtbot.waitSignal(dialog.connectionsChanged, timeout=10_000):
        qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    assert probe.calls == [("http://127.0.0.1:8080", KEY)]
    assert "Answers in 12 ms — llama.cpp server b5000, 2 models" in dialog.message.text()
    assert dialog.table.item(0, 2).text() == "llama.cpp server"
    assert ConnectionStore().get("GPU box").kind == "llama.cpp server"

    probe.fail = "The server at 127.0.0.1:8080 refused the connection."
    dialog.table.selectRow(0)
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "No answer" in dialog.message.text(), timeout=10_000)
    assert "refused the connection" in dialog.table.item(0, 3).text()

    monkeypatch.setattr("app.ui.connections_dialog.ask", lambda *a, **k: True)
    dialog.table.selectRow(0)
    with qtbot.waitSignal(dialog.connectionsChanged):
        qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert dialog.table.rowCount() == 0 and ConnectionStore().all() == []


def test_the_settings_panel_marks_what_a_server_ignores(qtbot) -> None:
    from PySide6.QtWidgets import QLabel, QWidget

    from app.core.presets import PresetStore
    from app.ui.settings_panel import SettingsPanel

    panel = SettingsPanel(PresetStore(paths.config_dir() / "presets.json"))
    qtbot.addWidget(panel)
    panel.show()
    top_k, min_p = (panel.findChild(QWidget, f"setting_{n}") for n in ("top_k", "min_p"))
    help_text = top_k.toolTip()
    panel.set_ignored(frozenset({"top_k", "min_p"}), "Ollama")
    assert not top_k.isEnabled() and not min_p.isEnabled()
    assert top_k.toolTip() == "Ollama ignores this setting."
    note = panel.findChild(QLabel, "ignoredNote")
    assert note.isVisible() and "Ollama ignores: Min-p, Top-k" in note.text()
    panel.set_ignored(frozenset(), "")
    assert top_k.isEnabled() and min_p.isEnabled() and top_k.toolTip() == help_text and not note.isVisible()
