"""Completion mode: a notebook in which the model continues the person's text (issue 16, point 5).

The text is kept as segments (the person's, the model's) of a conversation whose settings say
"mode": "notebook"; generation is an interactive job on the engine service's queue, read off
the GUI thread. Real llama.cpp on the demo model, and on a tiny base model with no template.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt
from tiny_model import write_tiny_llama

from app import paths
from app.core.config import AppConfig
from app.core.conversation import MessageState, Role
from app.core.export import from_json, save_export
from app.core.library import ModelLibrary
from app.core.store import ConversationStore
from app.session import ChatSession, EngineState
from app.session.notebook import NotebookController, is_notebook, notebook_text

LOAD_TIMEOUT = 120_000


# -- the text is kept, whatever the person does to it -------------------------------------------

_pieces = st.text(alphabet="ab \n.é😀", max_size=6)
# an edit: ("type", at, text) inserts at a relative position; ("cut", at, n) deletes; ("model", text)
# is a continuation the model wrote at the end
_edits = st.lists(
    st.one_of(
        st.tuples(st.just("type"), st.floats(0, 1), _pieces),
        st.tuples(st.just("cut"), st.floats(0, 1), st.integers(0, 5)),
        st.tuples(st.just("model"), _pieces.filter(bool)),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_edits)
def test_every_edit_is_saved_and_reopens_as_typed(hearth_home, edits) -> None:
    """Whatever is typed, cut or continued, the saved notebook reopens with exactly the text
    that was shown, and the model's continuations keep their place until edited."""
    from app.core.conversation import Message

    db = paths.data_dir() / f"nb-{abs(hash(str(edits)))}.sqlite3"
    store = ConversationStore(db)
    session = ChatSession(ModelLibrary(), AppConfig(), store)
    notebook = NotebookController(session)
    assert notebook.new_notebook()
    notebook.show(session.conversation)
    text = ""
    for edit in edits:
        if edit[0] == "model":  # what continue_text leaves when a continuation has finished
            notebook.set_text(text)
            notebook._append(session.conversation, Message(Role.ASSISTANT, edit[1]))
            text += edit[1]
            continue
        at = int(edit[1] * len(text))
        text = text[:at] + edit[2] + text[at:] if edit[0] == "type" else text[:at] + text[at + edit[2] :]
        notebook.set_text(text)
        assert notebook_text(session.conversation) == text
    store.flush()
    conv_id = session.conversation.id
    if text or session.conversations.saved:
        reopened = ConversationStore(db).load(conv_id)
        assert notebook_text(reopened) == text
        assert is_notebook(reopened)
        roles = [m.role for m in reopened.messages]
        assert all(a != b or a is Role.ASSISTANT for a, b in zip(roles, roles[1:]))  # the person's text is one run
    store.close()


def test_a_notebook_survives_export_and_import(hearth_home, tmp_path: Path) -> None:
    store = ConversationStore(paths.data_dir() / "c.sqlite3")
    session = ChatSession(ModelLibrary(), AppConfig(), store)
    notebook = NotebookController(session)
    notebook.new_notebook()
    notebook.show(session.conversation)
    notebook.set_text("The lighthouse keeper")
    for fmt in ("md", "html", "txt", "json"):
        save_export(str(tmp_path / f"n.{fmt}"), fmt, [session.conversation])
        assert "The lighthouse keeper" in (tmp_path / f"n.{fmt}").read_text(encoding="utf-8")
    (back,) = from_json((tmp_path / "n.json").read_text(encoding="utf-8"))
    assert is_notebook(back) and notebook_text(back) == "The lighthouse keeper"
    store.close()


# -- in the window, on real models -------------------------------------------------------------


def _continue(qtbot, window, timeout: int = 120_000) -> None:
    """Ctrl+Enter in the notebook, as a person does; waits for the continuation to end."""
    with qtbot.waitSignal(window.notebook.generatingChanged, timeout=timeout, check_params_cb=lambda on: not on):
        qtbot.keyClick(window.notebook_view.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.session.state is EngineState.READY, timeout=30_000)


@pytest.mark.model
def test_continue_stop_undo_and_reopen_on_the_demo_model(qtbot, open_main_window) -> None:
    window = open_main_window(max_tokens=16)
    session = window.session
    window.findChild(object, "newNotebookAction").trigger()
    view = window.notebook_view
    assert window.chat_stack.currentWidget() is view and not window.input.isVisible()
    assert window.notebook_toggle.isChecked()
    view.editor.setFocus()
    typed = "The three primary colors are red, yellow and"
    qtbot.keyClicks(view.editor, typed)

    _continue(qtbot, window)
    text = view.editor.toPlainText()
    assert text.startswith(typed) and len(text) > len(typed)  # appended, nothing typed changed
    roles = [m.role for m in session.conversation.messages]
    assert roles == [Role.USER, Role.ASSISTANT]
    reply = session.conversation.messages[-1]
    assert reply.state is MessageState.COMPLETE and reply.model and reply.stats["tokens"] > 0
    assert reply.settings["max_tokens"] == 16
    assert view.undo_button.isEnabled()
    assert not session.regenerate() and not session.send("a chat message")  # a notebook is not chatted with

    # Undo takes back exactly the continuation
    qtbot.mouseClick(view.undo_button, Qt.MouseButton.LeftButton)
    assert view.editor.toPlainText() == typed
    assert [m.role for m in session.conversation.messages] == [Role.USER]
    assert not view.undo_button.isEnabled()

    # Stop: a long continuation ends at once, what was written stays, marked stopped
    session.settings.max_tokens = 600
    with qtbot.waitSignal(window.notebook.textAppended, timeout=LOAD_TIMEOUT):
        qtbot.mouseClick(view.continue_button, Qt.MouseButton.LeftButton)
    assert view.editor.isReadOnly() and view.stop_button.isEnabled()
    with qtbot.waitSignal(window.notebook.generatingChanged, timeout=30_000):
        qtbot.keyClick(view.editor, Qt.Key.Key_Escape)
    stopped = session.conversation.messages[-1]
    assert stopped.state is MessageState.STOPPED and stopped.stats["tokens"] < 600
    assert view.editor.toPlainText() == typed + stopped.text and not view.editor.isReadOnly()

    # typed after the continuation, then the window closes: all of it comes back
    view.editor.moveCursor(view.editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(view.editor, " THE END")
    final = view.editor.toPlainText()
    window.close()  # saves what was typed in the last half second too

    again = open_main_window()
    assert is_notebook(again.session.conversation)
    assert again.chat_stack.currentWidget() is again.notebook_view
    assert again.notebook_view.editor.toPlainText() == final
    assert [m.role for m in again.session.conversation.messages] == [Role.USER, Role.ASSISTANT, Role.USER]
    assert again.session.conversation.messages[1].state is MessageState.STOPPED


@pytest.mark.model
def test_a_base_model_offers_completion_mode(qtbot, open_main_window, tmp_path: Path) -> None:
    window = open_main_window(max_tokens=8)
    session = window.session
    base = session.add_model(str(write_tiny_llama(tmp_path / "base.gguf", chat_template=None)))
    assert base is not None
    index = window.model_picker.findData(base.path)
    window.model_picker.setCurrentIndex(index)
    window.model_picker.activated.emit(index)
    qtbot.waitUntil(
        lambda: session.state is EngineState.READY and session.loaded_info.model_path == base.path, timeout=60_000
    )
    bar = window.template_bar
    qtbot.waitUntil(bar.isVisible)
    assert bar.completion_button.isVisible() and bar.completion_button.accessibleName()
    qtbot.mouseClick(bar.completion_button, Qt.MouseButton.LeftButton)
    assert is_notebook(session.conversation) and window.chat_stack.currentWidget() is window.notebook_view
    qtbot.keyClicks(window.notebook_view.editor, "Once upon a time")
    _continue(qtbot, window)
    assert window.notebook_view.editor.toPlainText().startswith("Once upon a time")
    last = session.conversation.messages[-1]
    assert last.role is Role.ASSISTANT and last.model == base.name  # written by the base model, no template


@pytest.mark.model
def test_continue_without_a_model_says_so_and_keeps_the_text(qtbot, open_main_window) -> None:
    window = open_main_window()
    session = window.session
    session.unload_if_current(session.current_model.path)
    window.new_notebook()
    qtbot.keyClicks(window.notebook_view.editor, "Keep me")
    assert not window.notebook_view.continue_text()
    assert "No model is loaded" in window.notebook_view.status.text()
    assert window.notebook_view.editor.toPlainText() == "Keep me"
    assert notebook_text(session.conversation) == "Keep me"  # saved anyway


@pytest.mark.model
def test_a_continuation_goes_before_queued_api_jobs(qtbot, open_main_window) -> None:
    """The notebook is the person's own: it waits only for the API job already running."""
    import threading

    from app.engine.jobs import JobRequest

    window = open_main_window(max_tokens=4)
    service = window.session.worker
    ask = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
    order: list[str] = []
    first = service.submit(JobRequest("chat", messages=ask, settings={"max_tokens": 120, "seed": 1}, client="first"))
    qtbot.waitUntil(lambda: service._api_running, timeout=30_000)  # started, not only queued
    queued = [
        service.submit(JobRequest("chat", messages=ask, settings={"max_tokens": 4, "seed": 1}, client=f"q{i}"))
        for i in (1, 2)
    ]
    for job, name in ((first, "first"), (queued[0], "q1"), (queued[1], "q2")):
        threading.Thread(
            target=lambda j=job, n=name: (list(j.events(timeout=120)), order.append(n)), daemon=True
        ).start()
    window.notebook.generatingChanged.connect(lambda on: on or order.append("notebook"))
    window.new_notebook()
    qtbot.keyClicks(window.notebook_view.editor, "The lighthouse keeper")
    assert window.notebook_view.continue_text()
    qtbot.waitUntil(lambda: len(order) == 4, timeout=180_000)
    assert order == ["first", "notebook", "q1", "q2"]
    assert window.notebook.conversation.messages[-1].state is MessageState.COMPLETE
