"""The walking skeleton in the real window, with real llama.cpp on the real demo model."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.core.conversation import MessageState, Role
from app.core.markdown_html import render_plain
from app.session import EngineState
from app.ui.main_window import MainWindow

pytestmark = pytest.mark.model
LOAD_TIMEOUT = 120_000


@pytest.fixture
def make_window(open_main_window):
    return open_main_window


def _type_and_send(qtbot, window: MainWindow, text: str) -> None:
    qtbot.keyClicks(window.input, text)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)


def _visible(text: str) -> str:
    """Words only: the view shows markdown rendered, so compare what a reader sees."""
    return " ".join(re.findall(r"[^\W_]+", text))


def _last(window: MainWindow):
    return window.session.conversation.messages[-1]


def test_demo_model_is_selected_and_the_input_has_focus(make_window, demo_model: Path) -> None:
    window = make_window()
    assert window.model_picker.currentData() == str(demo_model)
    assert "SmolLM2" in window.model_picker.currentText()
    assert window.focusWidget() is window.input
    assert "Ready" in window.status.currentMessage()
    # objectName for tests, a human name for screen readers (tests/test_accessibility.py walks all)
    for name, human in (
        ("messageInput", "Message"),
        ("sendButton", "Send"),
        ("stopButton", "Stop"),
        ("modelPicker", "Model"),
        ("chatView", "Conversation"),
    ):
        widget = window.findChild(object, name)
        assert widget is not None and widget.accessibleName() == human


def test_shift_enter_makes_a_new_line_and_enter_sends(qtbot, make_window) -> None:
    window = make_window()
    qtbot.keyClicks(window.input, "line one")
    qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.input, "line two")
    assert window.input.toPlainText() == "line one\nline two"
    assert window.session.conversation.messages == []
    with qtbot.waitSignal(window.session.replyFinished, timeout=60_000):
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert window.session.conversation.messages[0].text == "line one\nline two"
    assert window.input.toPlainText() == ""


def test_reply_streams_into_the_chat_view(qtbot, make_window) -> None:
    window = make_window(max_tokens=40)
    batches: list[str] = []
    window.session.replyText.connect(batches.append)
    with qtbot.waitSignal(window.session.replyFinished, timeout=60_000) as finished:
        _type_and_send(qtbot, window, "What is the capital of France?")
        qtbot.waitUntil(lambda: len(batches) >= 1, timeout=30_000)
        assert window.session.state is EngineState.GENERATING
        assert window.stop_button.isEnabled()
    reply = finished.args[0]
    assert reply.state is MessageState.COMPLETE
    assert len(batches) >= 2, "tokens must stream in batches, not arrive at once"
    assert "".join(batches) == reply.text
    # the GGUF's ChatML template is applied: the model answers instead of babbling
    assert "Paris" in reply.text
    assert _visible(render_plain(reply.text)) in _visible(window.chat_view.toPlainText())
    assert reply.stats["tokens"] > 0 and reply.stats["tokens_per_s"] > 0
    assert not window.stop_button.isEnabled()


def test_stop_mid_stream_keeps_the_text_and_send_works_again(qtbot, make_window) -> None:
    window = make_window(max_tokens=600, temperature=0.8)
    session = window.session
    batches: list[str] = []
    session.replyText.connect(batches.append)
    _type_and_send(qtbot, window, "Write a long story about a dragon who learns to cook.")
    qtbot.waitUntil(lambda: len(batches) >= 3, timeout=60_000)
    qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=1500)  # "within a second"
    reply = _last(window)
    assert reply.state is MessageState.STOPPED and reply.text
    assert reply.stats["tokens"] < 600
    view = window.chat_view.toPlainText()
    assert _visible(render_plain(reply.text))[:40] in _visible(view) and "stopped" in view
    # Esc stops too, and sending again works
    batches.clear()
    _type_and_send(qtbot, window, "Tell me another one.")
    qtbot.waitUntil(lambda: len(batches) >= 2, timeout=60_000)
    qtbot.keyClick(window.input, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=1500)
    assert _last(window).state is MessageState.STOPPED
    assert [m.role for m in session.conversation.messages] == [Role.USER, Role.ASSISTANT] * 2


def test_engine_killed_mid_stream_window_survives_and_restarts(qtbot, make_window) -> None:
    window = make_window(max_tokens=600, temperature=0.8)
    session = window.session
    batches: list[str] = []
    session.replyText.connect(batches.append)
    _type_and_send(qtbot, window, "Write a poem about the sea.")
    qtbot.waitUntil(lambda: len(batches) >= 2, timeout=60_000)
    os.kill(session.worker.engine_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: window.crash_bar.isVisible(), timeout=10_000)
    assert "signal 9" in window.crash_bar.label.text()
    assert "conversation is safe" in window.crash_bar.label.text()
    reply = _last(window)
    assert reply.state is MessageState.INTERRUPTED and reply.text == "".join(batches)
    assert "interrupted" in window.chat_view.toPlainText()
    assert not window.send_button.isEnabled()
    qtbot.mouseClick(window.crash_bar.action, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=LOAD_TIMEOUT)
    assert not window.crash_bar.isVisible()
    session.settings.max_tokens = 8
    with qtbot.waitSignal(session.replyFinished, timeout=60_000) as finished:
        _type_and_send(qtbot, window, "Hello again")
    assert finished.args[0].state is MessageState.COMPLETE


def test_broken_files_give_a_clear_message_and_chat_goes_on(
    qtbot, make_window, tmp_path: Path, demo_model: Path
) -> None:
    from tiny_model import write_tiny_llama

    window = make_window(max_tokens=8)
    session = window.session
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.gguf"
    noise.write_bytes(os.urandom(100_000))
    truncated = tmp_path / "truncated.gguf"
    with demo_model.open("rb") as src, truncated.open("wb") as dst:
        dst.write(src.read(demo_model.stat().st_size // 2))
    for bad in (empty, noise, truncated):
        assert session.add_model(str(bad)) is None
        assert window.notice_bar.isVisible() and bad.name in window.notice_bar.label.text()
    assert window.model_picker.count() == 1

    # A well-formed header that makes llama.cpp abort: only the engine child dies.
    crafted = write_tiny_llama(tmp_path / "crafted.gguf", block_count=100000)
    assert session.add_model(str(crafted)) is not None
    assert window.model_picker.count() == 2
    window.notice_bar.hide()
    window.model_picker.setCurrentIndex(window.model_picker.findData(str(crafted.resolve())))
    window.model_picker.activated.emit(window.model_picker.currentIndex())
    qtbot.waitUntil(lambda: window.notice_bar.isVisible(), timeout=60_000)
    assert "crafted.gguf" in window.notice_bar.label.text()
    # the previous model is back and answers
    qtbot.waitUntil(lambda: session.state is EngineState.READY, timeout=LOAD_TIMEOUT)
    assert window.model_picker.currentData() == str(demo_model)
    with qtbot.waitSignal(session.replyFinished, timeout=60_000) as finished:
        _type_and_send(qtbot, window, "Hi")
    assert finished.args[0].state is MessageState.COMPLETE and finished.args[0].text


def test_closing_while_streaming_exits_promptly(qtbot, make_window) -> None:
    window = make_window(max_tokens=600, temperature=0.8)
    session = window.session
    batches: list[str] = []
    session.replyText.connect(batches.append)
    _type_and_send(qtbot, window, "Write a long story about a dragon who learns to cook.")
    qtbot.waitUntil(lambda: len(batches) >= 2, timeout=60_000)
    assert session.state is EngineState.GENERATING
    pid = session.worker.engine_pid
    started = time.monotonic()
    window.close()
    elapsed = time.monotonic() - started
    assert not session._thread.isRunning()
    assert elapsed < 2.0, f"closing took {elapsed:.1f}s"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the engine child is gone (and reaped)
    assert _last(window).state is MessageState.INTERRUPTED


def test_settings_panel_values_reach_the_model(qtbot, make_window) -> None:
    window = make_window(max_tokens=60)
    assert not window.settings_dock.isVisible()  # closed at first start: the window invites typing
    qtbot.mouseClick(window.settings_button, Qt.MouseButton.LeftButton)  # the one control that opens it
    assert window.settings_dock.isVisible()
    spin = window.settings_panel.findChild(object, "setting_max_tokens")
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "4")
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert window.session.settings.max_tokens == 4
    with qtbot.waitSignal(window.session.replyFinished, timeout=60_000) as finished:
        _type_and_send(qtbot, window, "Tell me about the moon.")
    reply = finished.args[0]
    assert reply.stats["finish_reason"] == "length" and reply.stats["tokens"] <= 5
    assert reply.settings["max_tokens"] == 4  # recorded with the reply


def test_invalid_setting_is_never_sent(qtbot, make_window) -> None:
    window = make_window()
    spin = window.settings_panel.findChild(object, "setting_top_p")
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "0")
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    problem = window.settings_panel.findChild(object, "problem_top_p")
    assert problem.isVisibleTo(window.settings_panel) and "Top-p" in problem.text()
    assert window.session.settings.top_p > 0  # the session still has the last valid value


def test_input_grows_with_its_text_up_to_a_limit(qtbot, make_window) -> None:
    window = make_window()
    empty = window.input.height()
    for _ in range(4):
        qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    grown = window.input.height()
    assert grown > empty
    for _ in range(30):
        qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    capped = window.input.height()
    assert grown < capped < empty * 6


def test_context_meter_counts_with_the_models_tokenizer(qtbot, make_window, demo_model: Path) -> None:
    from llama_cpp import Llama  # only the test process; the app never imports it

    window = make_window(max_tokens=16)
    qtbot.keyClicks(window.input, "How many tokens is this sentence?")
    qtbot.waitUntil(
        lambda: window.session.context_used > 0 and window.context_meter.text().endswith("1,024 tokens"), timeout=10_000
    )
    llm = Llama(model_path=str(demo_model), n_ctx=256, n_threads=1, verbose=False)
    prompt = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHow many tokens is this sentence?<|im_end|>\n<|im_start|>assistant\n"
    )
    expected = len(llm.tokenize(prompt.encode(), add_bos=False, special=True))
    llm.close()
    assert window.session.context_used == expected
    assert window.context_meter.text() == f"{expected:,} / 1,024 tokens"
    # while the reply streams, the meter grows with it and the status shows live stats
    seen: list[str] = []
    window.session.statusText.connect(seen.append)
    with qtbot.waitSignal(window.session.replyFinished, timeout=60_000) as finished:
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    reply = finished.args[0]
    assert reply.stats["prompt_tokens"] == expected
    assert any("tokens/s" in text and "writing" in text for text in seen)
    assert window.session.context_used >= expected + reply.stats["tokens"] - 2
    qtbot.waitUntil(lambda: window.context_bar.value() == window.session.context_used)  # the bar follows
    # the meter warns near the end of the context and when it is full, and calms down again
    for used, colour, warns in (
        (900, "#e65100", True),
        (1024, "#c62828", True),
        (950, "#e65100", True),
        (10, "", False),
    ):
        window._show_context(used, 1024)
        assert window.context_bar.value() == used and window.context_meter.text() == f"{used:,} / 1,024 tokens"
        assert (colour in window.context_meter.styleSheet()) if colour else window.context_meter.styleSheet() == ""
        assert window.context_meter.toolTip().startswith("Near the end") is warns


def test_a_long_conversation_drops_the_oldest_turns_and_says_so(qtbot, make_window) -> None:
    window = make_window(max_tokens=16)
    session = window.session
    from app.core.conversation import Message

    for i in range(12):  # ~1,700 tokens of history in a 1,024-token context
        session.conversation.messages.append(Message(Role.USER, f"Question {i}: " + "tell me about rivers " * 15))
        session.conversation.messages.append(Message(Role.ASSISTANT, "Rivers flow to the sea. " * 10))
    session.settings.system_prompt = "You are terse."
    with qtbot.waitSignal(session.replyFinished, timeout=60_000) as finished:
        _type_and_send(qtbot, window, "Last question: name a river.")
    stats = finished.args[0].stats
    assert finished.args[0].state is MessageState.COMPLETE
    assert stats["dropped_turns"] > 0 and stats["prompt_tokens"] <= 1024 - 16
    assert "oldest" in window.info_bar.label.text() and window.info_bar.isVisible()


def test_preferences_apply_live_ctrl_enter_mode_and_font(qtbot, make_window, tmp_path: Path) -> None:
    from app.core.preferences import Preferences

    window = make_window(max_tokens=4)
    window.findChild(object, "preferencesAction").trigger()
    dialog = window.findChild(object, "preferencesDialog")
    assert dialog is not None and dialog.isVisible()
    dialog.close()
    window.apply_preferences(Preferences(theme="dark", chat_font_size=16, send_with="ctrl+enter"))
    assert window.chat_view.font().pointSize() == 16
    qtbot.waitUntil(lambda: window.palette().window().color().lightness() < 128, timeout=3000)  # recoloured live
    # widgets with their own style sheet follow too (the settings panel stayed light once)
    spin = window.settings_panel.findChild(object, "setting_temperature")
    qtbot.waitUntil(lambda: spin.palette().base().color().lightness() < 128, timeout=3000)
    qtbot.keyClicks(window.input, "first line")
    qtbot.keyClick(window.input, Qt.Key.Key_Return)  # Enter now adds a line
    assert window.input.toPlainText() == "first line\n" and window.session.conversation.messages == []
    with qtbot.waitSignal(window.session.replyFinished, timeout=60_000):
        qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert window.session.conversation.messages[0].text == "first line"
    window.apply_preferences(Preferences(theme="system"))


def test_presets_export_and_import_through_the_file_menu(qtbot, make_window, tmp_path: Path, monkeypatch) -> None:
    from app.core.presets import Preset

    window = make_window()
    window._presets.save(
        Preset.from_dict(
            {
                "name": "Pirate",
                "description": "Arr",
                "system_prompt": "Talk like a pirate.",
                "settings": {"temperature": 1.1},
                "few_shot": [],
            }
        )
    )
    out = tmp_path / "mine.json"
    monkeypatch.setattr("app.ui.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(out), ""))
    window.findChild(object, "exportPresetsAction").trigger()
    assert "Pirate" in out.read_text() and "Exported 1 preset" in window.info_bar.label.text()
    window._presets.delete("Pirate")
    monkeypatch.setattr("app.ui.main_window.QFileDialog.getOpenFileName", lambda *a, **k: (str(out), ""))
    window.findChild(object, "importPresetsAction").trigger()
    assert window._presets.get("Pirate") is not None
    assert window.settings_panel.findChild(object, "presetPicker").findText("Pirate") >= 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    monkeypatch.setattr("app.ui.main_window.QFileDialog.getOpenFileName", lambda *a, **k: (str(bad), ""))
    window.findChild(object, "importPresetsAction").trigger()
    assert "No presets were imported" in window.notice_bar.label.text()


def test_few_shot_examples_for_a_conversation_are_sent_as_turns_and_saved(qtbot, make_window, monkeypatch) -> None:
    window = make_window(max_tokens=4)
    answers = iter([("Translate: cat", True), ("chat (French)", True)])
    monkeypatch.setattr("app.ui.settings_panel.QInputDialog.getMultiLineText", lambda *a, **k: next(answers))
    qtbot.mouseClick(window.settings_panel.findChild(object, "fewShotAdd"), Qt.MouseButton.LeftButton)
    assert window.settings_panel.findChild(object, "fewShotList").count() == 1
    with qtbot.waitSignal(window.session.replyFinished, timeout=60_000):
        _type_and_send(qtbot, window, "Translate: dog")
    turns = window.session.prompt_messages()
    assert turns[0] == {"role": "user", "content": "Translate: cat"}
    assert turns[1] == {"role": "assistant", "content": "chat (French)"}
    conv_id = window.session.conversation.id
    window.session.conversations.new_conversation()
    assert window.session.few_shot == [] and window.settings_panel.findChild(object, "fewShotList").count() == 0
    window.session.conversations.open_conversation(conv_id)
    assert window.session.few_shot == [("Translate: cat", "chat (French)")]
    assert window.settings_panel.findChild(object, "fewShotList").count() == 1
    assert window.settings_panel.findChild(object, "precedenceNote").text().startswith("Which value wins")


def test_gpu_layers_is_disabled_on_a_cpu_only_build(qtbot, make_window) -> None:
    window = make_window()
    spin = window.settings_panel.findChild(object, "setting_n_gpu_layers")
    # this machine's llama.cpp is a portable CPU build
    qtbot.waitUntil(lambda: not spin.isEnabled(), timeout=5000)
    assert "CPU only" in spin.toolTip()
