"""Conversations are saved as they happen and come back: sidebar, restart, SIGKILL, export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app import paths
from app.core.config import AppConfig
from app.core.conversation import Message, MessageState, Role
from app.core.library import ModelLibrary
from app.core.presets import PresetStore
from app.core.store import ConversationStore
from app.session import ChatSession
from app.ui.conversation_list import ConversationListModel
from app.ui.main_window import MainWindow

pytestmark = pytest.mark.model


@pytest.fixture
def open_window(open_main_window):
    return lambda: open_main_window(max_tokens=40)


def chat(qtbot, window: MainWindow, text: str) -> None:
    with qtbot.waitSignal(window.session.replyFinished, timeout=60_000):
        qtbot.keyClicks(window.input, text)
        qtbot.keyClick(window.input, Qt.Key.Key_Return)


def titles(window: MainWindow) -> list[str]:
    model = window.conversation_model
    return [
        model.index(r, 0).data()
        for r in range(model.rowCount())
        if model.index(r, 0).data(ConversationListModel.KindRole) == "conversation"
    ]


def test_sidebar_new_rename_pin_delete_undo_and_restart(qtbot, qtmodeltester, open_window, monkeypatch) -> None:
    window = open_window()
    sidebar_list = window.findChild(object, "conversationList")
    assert sidebar_list.accessibleName() == "Conversations"
    chat(qtbot, window, "What is the capital of France?")
    first_id = window.session.conversation.id
    assert titles(window) == ["What is the capital of France?"]  # titled from the first message
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # Ctrl+N
    assert window.session.conversation.messages == [] and window.chat_view.toPlainText().strip() == ""
    chat(qtbot, window, "Name a color.")
    assert titles(window) == ["Name a color.", "What is the capital of France?"]  # newest first
    assert window.conversation_model.index(0, 0).data() == "Today"
    qtmodeltester.check(window.conversation_model)

    monkeypatch.setattr("app.ui.main_window.QInputDialog.getText", lambda *a, **k: ("France trivia", True))
    window.sidebar.renameRequested.emit(first_id)
    window.sidebar.pinRequested.emit(first_id, True)
    assert titles(window)[0] == "France trivia"  # under "Pinned", no glyph that needs emoji fonts
    assert window.conversation_model.index(0, 0).data() == "Pinned"

    # open the first conversation by clicking it in the list
    row = window.conversation_model.row_of(first_id)
    rect = sidebar_list.visualRect(window.conversation_model.index(row, 0))
    qtbot.mouseClick(sidebar_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.session.conversation.id == first_id
    assert "Paris" in window.chat_view.toPlainText()

    window.sidebar.deleteRequested.emit(first_id)
    assert len(titles(window)) == 1 and window.undo_bar.isVisible()
    qtbot.mouseClick(window.undo_bar.action, Qt.MouseButton.LeftButton)
    assert len(titles(window)) == 2 and window.session.conversation.id == first_id

    window.close()  # the app quits; everything is on disk
    again = open_window()
    assert again.session.conversation.id == first_id  # the most recent (pinned) one is open
    assert [m.role for m in again.session.conversation.messages] == [Role.USER, Role.ASSISTANT]
    assert "Paris" in again.chat_view.toPlainText()
    assert titles(again) == ["France trivia", "Name a color."]


def test_search_finds_titles_and_text(qtbot, open_window) -> None:
    window = open_window()
    chat(qtbot, window, "Tell me about volcanoes")
    window.session.conversations.new_conversation()
    chat(qtbot, window, "What is the capital of France?")
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.sidebar.search.hasFocus()
    qtbot.keyClicks(window.sidebar.search, "volcan")
    assert titles(window) == ["Tell me about volcanoes"]
    window.sidebar.search.clear()
    qtbot.keyClicks(window.sidebar.search, "Paris")  # only in the model's reply
    assert titles(window) == ["What is the capital of France?"]
    window.sidebar.search.clear()
    assert len(titles(window)) == 2


def test_export_and_import_round_trip(qtbot, open_window, tmp_path: Path) -> None:
    window = open_window()
    chat(qtbot, window, "What is the capital of France?")
    session = window.session
    out = tmp_path / "all.json"
    assert session.conversations.export_conversations(str(out), "json")
    data = json.loads(out.read_text())
    assert data["format"] == "hearth.conversations" and len(data["conversations"]) == 1
    for fmt in ("md", "html", "txt"):
        assert session.conversations.export_conversations(str(tmp_path / f"one.{fmt}"), fmt, [session.conversation.id])
        assert "capital of France" in (tmp_path / f"one.{fmt}").read_text()
    with qtbot.waitSignal(session.conversations.importFinished, timeout=10_000) as done:  # read off the GUI thread
        assert session.conversations.import_conversations(str(out))
    assert done.args == [1]
    assert len(titles(window)) == 2 and window.info_bar.isVisible()
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "hearth.conversations", "version": 1, "conversations": [{"title": 5}]}')
    with qtbot.waitSignal(session.conversations.importFinished, timeout=10_000) as done:
        session.conversations.import_conversations(str(bad))
    assert done.args == [0]
    assert "Nothing was imported" in window.notice_bar.label.text() and len(titles(window)) == 2


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication
    from app import paths
    paths.set_root(sys.argv[1])
    from app.core.config import AppConfig
    from app.core.library import ModelLibrary
    from app.core.presets import PresetStore
    from app.core.settings import LoadSettings, SamplingSettings
    from app.core.store import ConversationStore
    from app.session import ChatSession, EngineState
    from app.ui.main_window import MainWindow

    app = QApplication([])
    store = ConversationStore(paths.data_dir() / "conversations.sqlite3")
    session = ChatSession(ModelLibrary(), AppConfig(), store,
                          settings=SamplingSettings(temperature=0.8, seed=3, max_tokens=500),
                          load_settings=LoadSettings(n_ctx=1024, n_threads=1))
    window = MainWindow(session, PresetStore(paths.config_dir() / "presets.json"))
    window.show()
    received = []

    def on_state(state):
        if state == EngineState.READY.value and not session.conversation.messages:
            window.input.setPlainText("Write a long story about a brave mouse.")
            window.send_current()

    def on_text(text):
        received.append(text)
        if len("".join(received)) > 150:
            store.flush(5)  # what was saved so far is on disk; the rest is at most 0.5 s
            print("SAVED", len(session.conversation.messages[-1].text), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    session.stateChanged.connect(on_state)
    session.replyText.connect(on_text)
    session.start()
    app.exec()
    """
)


def test_sigkill_mid_reply_loses_nothing(tmp_path: Path, demo_model: Path, qtbot) -> None:
    home = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(home)],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    saved = int(proc.stdout.split("SAVED")[1].split()[0])
    paths.set_root(home)
    store = ConversationStore(paths.data_dir() / "conversations.sqlite3")
    session = ChatSession(ModelLibrary(), AppConfig(), store)
    window = MainWindow(session, PresetStore(paths.config_dir() / "presets.json"))
    qtbot.addWidget(window)
    window.show()
    session.start()
    try:
        messages = session.conversation.messages
        assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT]
        assert messages[0].text == "Write a long story about a brave mouse."
        reply = messages[1]
        assert reply.state is MessageState.INTERRUPTED
        assert len(reply.text) >= saved - 200  # within about a second of the moment it died
        assert len(reply.text) > 0 and reply.text in window.chat_view.toPlainText()
        assert "interrupted" in window.chat_view.toPlainText()
        assert window.info_bar.isVisible() and "unexpectedly" in window.info_bar.label.text()
    finally:
        window.close()


def test_export_through_the_file_menu(qtbot, open_window, tmp_path: Path, monkeypatch) -> None:
    window = open_window()
    chat(qtbot, window, "What is the capital of France?")
    out = tmp_path / "chat.html"
    monkeypatch.setattr(
        "app.ui.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(out), "Web page (HTML) (*.html)")
    )
    window.findChild(object, "exportAction").trigger()
    page = out.read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "capital of France" in page
    assert "<script" not in page.lower()
    md = tmp_path / "all"
    monkeypatch.setattr("app.ui.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(md), "Markdown (*.md)"))
    window.findChild(object, "exportAllAction").trigger()
    assert "capital of France" in (tmp_path / "all.md").read_text()
    assert "Exported 1 conversation" in window.info_bar.label.text()


def _click_link(qtbot, view, href_part: str) -> None:
    """Click the link whose target contains ``href_part``, where it is drawn (scrolled into view)."""
    from PySide6.QtGui import QTextCursor

    doc = view.document()
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if href_part in fragment.charFormat().anchorHref():
                cursor = QTextCursor(doc)
                cursor.setPosition(fragment.position() + fragment.length() // 2)
                view.setTextCursor(cursor)
                view.ensureCursorVisible()
                qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.cursorRect(cursor).center())
                return
            it += 1
        block = block.next()
    raise AssertionError(f"no link to {href_part!r} in the chat view")


def test_regenerated_and_edited_versions_are_kept_and_flipped_with_arrows(qtbot, open_window) -> None:
    """‹ 1/2 ›: a regenerated reply and an edited question keep what they replaced; the
    arrows under a message flip between versions (with what followed each), and the choice
    is saved."""
    window = open_window()
    session, view = window.session, window.chat_view
    session.settings.temperature = 0.9
    session.settings.seed = 5
    chat(qtbot, window, "Say something about cats.")
    first = session.conversation.messages[-1]
    session.settings.seed = 6
    with qtbot.waitSignal(session.replyFinished, timeout=60_000):
        assert session.regenerate()
    second = session.conversation.messages[-1]
    assert second.id != first.id and session.conversation.variant_position(second.id) == (2, 2)
    assert "2/2" in view.toPlainText()

    _click_link(qtbot, view, f"variant/{second.id}/prev")
    qtbot.waitUntil(lambda: session.conversation.messages[-1].id == first.id)
    assert "1/2" in view.toPlainText() and first.text.strip().split("\n")[0] in view.toPlainText()

    # an edited question: the original and its reply stay as version 1
    chat(qtbot, window, "And dogs?")
    dogs_question = session.conversation.messages[2]
    with qtbot.waitSignal(session.replyFinished, timeout=60_000):
        assert session.edit_and_resend(dogs_question.id, "And birds?")
    edited = session.conversation.messages[2]
    assert edited.text == "And birds?" and len(session.conversation.messages) == 4
    assert "And dogs?" not in view.toPlainText()
    _click_link(qtbot, view, f"variant/{edited.id}/prev")
    qtbot.waitUntil(lambda: session.conversation.messages[2].id == dogs_question.id)
    assert "And dogs?" in view.toPlainText() and len(session.conversation.messages) == 4

    # a reply that failed before writing anything is replaced, not kept as a version
    failed = session.conversation.messages[-1]
    failed.text, failed.state = "", MessageState.FAILED
    session.store.update_message(failed)
    with qtbot.waitSignal(session.replyFinished, timeout=60_000):
        assert session.regenerate()
    assert all(m.id != failed.id for m in session.conversation.all_messages())
    assert session.conversation.variant_position(session.conversation.messages[-1].id) == (1, 1)

    # the choices are in the database: what opens next time is what was shown
    stored = session.store.load(session.conversation.id)
    assert [m.id for m in stored.messages] == [m.id for m in session.conversation.messages]
    assert stored.messages[1].id == first.id and len(stored.branches) == 3

    # deleting a message keeps what followed it; the next turn is saved after it
    assert session.conversations.delete_message(session.conversation.messages[0].id)
    conv_id = session.conversation.id
    assert [m.role for m in session.store.load(conv_id).messages] == [Role.ASSISTANT, Role.USER, Role.ASSISTANT]
    chat(qtbot, window, "One more question?")
    stored = session.store.load(conv_id)
    assert [m.role for m in stored.messages] == [Role.ASSISTANT, Role.USER, Role.ASSISTANT, Role.USER, Role.ASSISTANT]
    assert stored.messages[3].text == "One more question?"


def test_a_search_hit_on_another_branch_opens_that_branch(qtbot, open_window) -> None:
    """Text that is only in an older version (a regenerated reply) is found by search, and
    opening the result shows that version, not the newer one."""
    window = open_window()
    session = window.session
    chat(qtbot, window, "Name a colour.")
    old_reply = session.conversation.messages[-1]
    old_reply.text = "Vermilion is my answer."  # a word the new reply will not have
    session.store.update_message(old_reply)
    with qtbot.waitSignal(session.replyFinished, timeout=60_000):
        assert session.regenerate()
    conv_id = session.conversation.id
    session.conversations.new_conversation()

    window.sidebar.search.setText("vermilion")
    qtbot.waitUntil(lambda: window.conversation_model.best_hit_message(conv_id) == old_reply.id)
    row = window.conversation_model.row_of(conv_id)
    index = window.conversation_model.index(row, 0)
    qtbot.mouseClick(
        window.sidebar.list.viewport(), Qt.MouseButton.LeftButton, pos=window.sidebar.list.visualRect(index).center()
    )
    qtbot.waitUntil(lambda: session.conversation.id == conv_id)
    assert session.conversation.messages[-1].id == old_reply.id
    assert "Vermilion is my answer." in window.chat_view.toPlainText()
    assert session.store.load(conv_id).messages[-1].id == old_reply.id  # and it stays chosen


def test_continue_in_a_new_chat_from_a_message(qtbot, open_window) -> None:
    """The context menu's "Continue in a new chat from here": a new conversation with the
    turns up to that message opens, and the original is left as it was."""
    window = open_window()
    session, view = window.session, window.chat_view
    chat(qtbot, window, "Name a planet.")
    chat(qtbot, window, "Name a moon.")
    original = session.conversation
    before = [(m.role, m.text) for m in original.messages]
    first_reply = original.messages[1]

    cursor = view.document().find(first_reply.text.strip().split("\n")[0][:20])
    assert not cursor.isNull()
    menu = view.build_context_menu(view.cursorRect(cursor).center())
    next(a for a in menu.actions() if a.objectName() == "continueInNewChatAction").trigger()

    qtbot.waitUntil(lambda: session.conversation.id != original.id)
    new = session.conversation
    assert [(m.role, m.text) for m in new.messages] == before[:2]
    assert new.title == f"{original.title} (continued)"
    assert not {m.id for m in new.messages} & {m.id for m in original.messages}
    assert "Name a moon." not in view.toPlainText()
    assert [(m.role, m.text) for m in session.store.load(original.id).messages] == before
    assert titles(window)[0] == new.title  # newest at the top of the sidebar
    chat(qtbot, window, "Name a star.")  # and it carries on from the copied turns
    assert [m.text for m in session.store.load(new.id).messages][:3] == [before[0][1], before[1][1], "Name a star."]


def test_a_chat_that_starts_with_an_image_alone_is_titled_by_it(tmp_path) -> None:
    from app.core.config import AppConfig
    from app.core.settings import SamplingSettings
    from app.core.vision import Attachment
    from app.session.conversations import ConversationsController

    store = ConversationStore(tmp_path / "c.sqlite3")
    convs = ConversationsController(store, AppConfig(), SamplingSettings(), lambda: False)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    convs.append(Message(Role.USER, "", images=[Attachment("image/png", png, "harbour.png")]))
    assert convs.current.title == "Image: harbour.png"
    convs.new_conversation()
    convs.append(Message(Role.USER, "  ", images=[Attachment("image/png", png)] * 2))
    assert convs.current.title == "2 images"
    convs.new_conversation()
    convs.append(Message(Role.USER, "What is in it?", images=[Attachment("image/png", png, "x.png")]))
    assert convs.current.title == "What is in it?"
    store.close()
