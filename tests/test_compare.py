"""View > Compare: two settings on the demo model (real generation) through the real window,
a blind vote recorded as the preferred version, and a column continued in the chat; a remote
contender runs while the local one does."""

from __future__ import annotations

import keyring
import pytest
from memory_keyring import MemoryKeyring
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from app.core import secrets
from app.core.conversation import MessageState, Role
from app.core.presets import Preset

pytestmark = pytest.mark.model


def _open_compare(window):
    action = window.findChild(QAction, "compareAction")
    assert action is not None and action.shortcut().toString() == "Ctrl+Shift+K"
    action.trigger()
    compare = window.compare_window
    assert compare is not None and compare.isVisible()
    return compare


def test_two_settings_on_the_demo_model_blind_vote_and_continue(qtbot, open_main_window) -> None:
    window = open_main_window(max_tokens=8)
    session = window.session
    window._presets.save(
        Preset("Pirate", system_prompt="You are a pirate. Answer like one.", settings={"seed": 7, "temperature": 0.8})
    )
    compare = _open_compare(window)
    controller = compare.controller
    assert len(compare.rows) == 2
    demo = session.current_model
    assert demo is not None
    for row in compare.rows:
        assert row.model.currentData() == demo.path
    compare.rows[1].preset.setCurrentIndex(compare.rows[1].preset.findData("Pirate"))
    compare.blind.setChecked(True)
    controller.shuffle = lambda contenders: contenders.reverse()  # the draw: the second listed is "A"
    compare.prompt.setPlainText("Say hello.")
    qtbot.mouseClick(compare.start_button, Qt.MouseButton.LeftButton)
    assert compare.stop_button.isEnabled()
    with qtbot.waitSignal(controller.saved, timeout=180_000) as saved:
        pass
    conv_id = saved.args[0]

    # both columns filled, with their figures; the names stay hidden until the vote
    for index, view in enumerate(compare.columns):
        column = controller.columns[index]
        assert column.state == "done", column.error
        assert column.text.strip() and view.text.toPlainText() == column.text
        stats = view.stats.text()
        for figure in ("tokens", "tok/s", "first token", "peak RAM"):
            assert figure in stats, stats
        assert column.peak_rss and column.peak_rss > 20 * 2**20  # the engine process holds the model
        assert view.title.text() == "AB"[index]
        assert demo.name not in view.title.text() and "Pirate" not in view.title.text()
    assert controller.columns[0].contender.preset == "Pirate"  # letters drawn, not in the listed order
    assert controller.columns[0].text != controller.columns[1].text  # a different system prompt and seed
    assert not compare.stop_button.isEnabled()

    # the vote: A is better; the names are revealed and the store has A as the preferred version
    qtbot.mouseClick(compare.columns[0].vote, Qt.MouseButton.LeftButton)
    assert "Pirate" in compare.columns[0].title.text() and demo.name in compare.columns[1].title.text()
    assert not compare.columns[1].vote.isEnabled()
    stored = session.store.load(conv_id)
    prompt = next(m for m in stored.all_messages() if m.role is Role.USER)
    assert prompt.text == "Say hello."
    replies = stored.variants(next(m.id for m in stored.all_messages() if m.role is Role.ASSISTANT))
    assert len(replies) == 2 and all(r.parent_id == prompt.id for r in replies)
    by_column = {r.stats["compare"]["column"]: r for r in replies}
    pirate, plain = by_column["A"], by_column["B"]
    assert pirate.preferred and not plain.preferred
    assert pirate.stats["compare"]["winner"] and not plain.stats["compare"]["winner"]
    assert pirate.stats["compare"]["blind"] and pirate.stats["compare"]["preset"] == "Pirate"
    assert pirate.settings["system_prompt"].startswith("You are a pirate") and pirate.settings["seed"] == 7
    assert plain.settings["seed"] == 1 and plain.model == pirate.model == demo.name
    assert plain.state is pirate.state is MessageState.COMPLETE and pirate.stats["tokens"] > 0
    assert pirate.text == controller.columns[0].text
    assert stored.messages[-1].id == pirate.id  # the winner is the version shown when it opens

    # B continues as a normal conversation: opened in the window with B's version shown
    qtbot.mouseClick(compare.columns[1].carry_on, Qt.MouseButton.LeftButton)
    assert session.conversation.id == conv_id
    assert session.conversation.messages[-1].id == plain.id
    assert session.conversation.variant_position(plain.id)[1] == 2
    with qtbot.waitSignal(session.replyFinished, timeout=120_000) as finished:
        window.input.setPlainText("And goodbye?")
        window.send_current()
    assert finished.args[0].text.strip()
    again = session.store.load(conv_id)
    assert [m.role for m in again.messages] == [Role.USER, Role.ASSISTANT, Role.USER, Role.ASSISTANT]
    assert again.messages[1].id == plain.id


def test_two_models_take_turns_on_the_last_turn_and_the_window_gets_its_model_back(
    qtbot, open_main_window, tiny
) -> None:
    window = open_main_window(max_tokens=8)
    session = window.session
    demo = session.current_model
    other = session.add_model(str(tiny))
    assert demo is not None and other is not None
    with qtbot.waitSignal(session.replyFinished, timeout=120_000) as first:
        window.input.setPlainText("Name a colour.")
        window.send_current()
    compare = _open_compare(window)
    controller = compare.controller
    compare.rows[1].model.setCurrentIndex(compare.rows[1].model.findData(other.path))
    compare.rerun.setChecked(True)
    assert not compare.prompt.isEnabled()
    qtbot.mouseClick(compare.start_button, Qt.MouseButton.LeftButton)
    assert "next: B" in compare.progress.text()
    with qtbot.waitSignal(controller.saved, timeout=120_000) as saved:
        pass
    a, b = controller.columns
    assert a.state == b.state == "done", (a.error, b.error)
    assert a.load_seconds is None and "already loaded" in compare.columns[0].stats.text()
    assert b.load_seconds is not None and f"load {b.load_seconds:.2f} s" in compare.columns[1].stats.text()
    assert a.text == first.args[0].text  # the same turn, settings and seed: the same greedy reply
    stored = session.store.load(saved.args[0])
    assert [m.text for m in stored.messages[:-1]] == ["Name a colour."]
    assert {m.model for m in stored.variants(stored.messages[-1].id)} == {demo.name, other.name}
    # the window follows a contender's model while it runs, then gets its own model back
    qtbot.waitUntil(
        lambda: session.loaded_info is not None and session.loaded_info.model_path == demo.path, timeout=60_000
    )
    assert session.current_model.path == demo.path

    # voting while the comparison is open in the window: the mark and the version shown follow there
    qtbot.mouseClick(compare.columns[1].carry_on, Qt.MouseButton.LeftButton)
    assert session.conversation.messages[-1].id == b.message.id
    with qtbot.waitSignal(session.conversations.conversationOpened, timeout=5_000):
        qtbot.mouseClick(compare.columns[0].vote, Qt.MouseButton.LeftButton)
    shown = session.conversation.messages[-1]
    assert shown.id == a.message.id and shown.preferred
    assert session.store.load(saved.args[0]).messages[-1].id == a.message.id


def test_stop_stops_every_contender_and_nothing_waits(qtbot, open_main_window) -> None:
    window = open_main_window(max_tokens=200, stop=[])
    compare = _open_compare(window)
    controller = compare.controller
    compare.prompt.setPlainText("Write a long story about a lighthouse keeper.")
    qtbot.mouseClick(compare.start_button, Qt.MouseButton.LeftButton)
    assert "next: B" in compare.progress.text()  # one local model at a time: B waits its turn
    qtbot.waitUntil(lambda: bool(controller.columns[0].text), timeout=60_000)
    qtbot.mouseClick(compare.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not controller.running, timeout=10_000)
    a, b = controller.columns
    assert a.state == "stopped" and a.text and a.stats["tokens"] < 200
    assert b.state == "stopped" and not b.text and b.job is None  # never started
    assert compare.start_button.isEnabled()


@pytest.fixture
def memory_keyring(monkeypatch):
    before = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    monkeypatch.setattr(secrets, "_session", {})
    yield
    keyring.set_keyring(before)


def test_a_remote_contender_runs_while_the_local_one_does(qtbot, open_main_window, memory_keyring) -> None:
    from fake_openai_server import FakeOpenAI

    from app.core.remote_models import remote_ref

    window = open_main_window(max_tokens=8)
    with FakeOpenAI() as server:
        dialog = window.show_connections()
        dialog.name_edit.setText("lab")
        dialog.url_edit.setText(server.url)
        with qtbot.waitSignal(dialog.connectionsChanged, timeout=10_000):
            qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
        dialog.close()
        compare = _open_compare(window)
        controller = compare.controller
        qtbot.waitUntil(lambda: any(p.startswith("remote://") for p, _ in controller.model_choices()), timeout=30_000)
        ref = next(p for p, _ in controller.model_choices() if p.startswith("remote://"))
        assert ref.startswith(remote_ref("lab", "")[:12])
        compare.refresh_choices()
        compare.rows[1].model.setCurrentIndex(compare.rows[1].model.findData(ref))
        compare.prompt.setPlainText("Say hello.")
        server.mode = "silent_stream"  # the remote reply writes "Hello", then waits
        qtbot.mouseClick(compare.start_button, Qt.MouseButton.LeftButton)
        a, b = controller.columns
        assert b.remote and not a.remote
        # in parallel: the local contender writes its whole reply while the remote one is mid-reply
        qtbot.waitUntil(lambda: a.ended, timeout=120_000)
        assert a.state == "done" and a.text.strip(), a.error
        assert b.state == "writing" and b.text == "Hello"
        qtbot.mouseClick(compare.stop_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not controller.running, timeout=10_000)
        assert b.state == "stopped" and b.text == "Hello"
        stats = compare.columns[1].stats.text()
        assert "load n/a" in stats and "peak RAM n/a" in stats
        server.release.set()

        # a server that fails: that column says why, in plain words; the local one is unaffected
        server.mode = "500"
        compare.prompt.setPlainText("<b>Say</b> hello.")
        qtbot.mouseClick(compare.start_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not controller.running, timeout=120_000)
        a, b = controller.columns
        assert a.state == "done" and b.state == "failed" and not b.text
        assert "CUDA out of memory" in compare.columns[1].state.text()
        assert compare.columns[1].state.textFormat() == Qt.TextFormat.PlainText
        assert compare.columns[0].vote.isEnabled() and not compare.columns[1].vote.isEnabled()
