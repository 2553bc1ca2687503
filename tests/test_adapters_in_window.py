"""LoRA adapters in the window, on the real demo model (SmolLM2, a llama): add one in Manage
models (Add… and a dropped file), turn it on in the settings panel, the model reloads with it,
and the reply's record and its line in the chat say it was on."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_adapter import write_tiny_lora

from app.session import EngineState
from app.ui.main_window import MainWindow

pytestmark = pytest.mark.model

SMOL = {"n_embd": 576, "n_ff": 1536, "targets": ("attn_q", "attn_output", "ffn_up")}  # SmolLM2-135M's sizes


def _reply(qtbot, window: MainWindow, text: str) -> str:
    with qtbot.waitSignal(window.session.replyFinished, timeout=60_000) as finished:
        window.input.setPlainText(text)
        window.send_current()
    return finished.args[0]


def test_add_turn_on_reload_and_record(qtbot, open_main_window, tmp_path: Path, demo_model: Path) -> None:
    window = open_main_window(n_ctx=512, max_tokens=8)
    session = window.session
    style = write_tiny_lora(tmp_path / "smol-style.gguf", name="smol-style", **SMOL)
    dialog = window.show_models()
    dialog.select_path(str(demo_model))

    # an adapter made for other sizes is explained, and not kept
    wrong = write_tiny_lora(tmp_path / "tiny-only.gguf")
    assert dialog.add_adapters([str(wrong)])
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert "tiny-only.gguf was made for a model of other sizes" in dialog.message.text()
    assert session.current_model.adapters == []

    assert dialog.add_adapters([str(style)])
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert [a.name for a in session.current_model.adapters] == ["smol-style"]
    assert dialog.adapters_box.list.count() == 1
    # a dropped adapter file goes to the selected model, never into the list of models
    second = write_tiny_lora(tmp_path / "second.gguf", name="second", seed=5, **SMOL)
    models_before = len(session.library.models())
    assert dialog.import_files([str(second)])
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert len(session.library.models()) == models_before
    assert [a.name for a in session.current_model.adapters] == ["smol-style", "second"]
    dialog.remove_adapter(str(second.resolve()))
    assert [a.name for a in session.current_model.adapters] == ["smol-style"]

    panel = window.settings_panel
    check = panel.findChild(type(panel._adapter_rows[0][1]), "adapter_on_0")
    assert check is not None and check.accessibleName() == "Use adapter smol-style" and not check.isChecked()
    plain = _reply(qtbot, window, "Say hello.")
    assert "adapters" not in (plain.stats or {})

    check.setChecked(True)  # the session reloads the model with the adapter on
    qtbot.waitUntil(lambda: session.loaded_info is not None and bool(session.loaded_info.loras), timeout=60_000)
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=60_000)
    assert session.loaded_info.loras == ((str(style.resolve()), 1.0),)
    assert session.conversation.settings["adapters"] == [{"path": str(style.resolve()), "scale": 1.0}]
    with qtbot.waitSignal(session.replyFinished, timeout=60_000) as finished:
        assert session.regenerate()
    reply = finished.args[0]
    assert reply.stats["adapters"] == [{"name": "smol-style", "path": str(style.resolve()), "scale": 1.0}]
    assert reply.text != plain.text  # a random adapter at scale 1 changes the greedy reply
    assert "adapters: smol-style ×1" in window.chat_view.toPlainText()

    panel._adapter_rows[0][2].setValue(0.5)  # a new scale reloads too
    qtbot.waitUntil(
        lambda: session.state is EngineState.READY and session.loaded_info.loras == ((str(style.resolve()), 0.5),),
        timeout=60_000,
    )
    check.setChecked(False)
    qtbot.waitUntil(lambda: session.state is EngineState.READY and session.loaded_info.loras == (), timeout=60_000)
