"""A damaged record in the conversation store never stops Hearth from starting or opening it.

Hearth once imported a file whose ``settings``/``stats``/``sources`` held values of the wrong
type; at the next start the most recent conversation was opened and the window died, at
every launch after that. These tests write such rows straight into SQLite (as a damaged
database or an older, laxer import would leave them) and start the real window on them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from app import paths
from app.core.conversation import Conversation, Message, MessageState, Role
from app.core.store import ConversationStore

BAD_SETTINGS = {"temperature": "hot", "top_k": [1], "few_shot": 5, "stop": "###", "max_tokens": 10**30}
BAD_STATS = {
    "tokens": "many",
    "tokens_per_s": {"x": 1},
    "ttft": "soon",
    "sources": [{"number": "one", "label": ["a"], "text": 5, "cited": "yes"}],
}


def _db() -> Path:
    return paths.data_dir() / "conversations.sqlite3"


def _write_damaged(title: str = "Damaged chat") -> Conversation:
    """A normal conversation, then its JSON columns overwritten with wrong-typed values."""
    conv = Conversation(
        title=title,
        messages=[
            Message(Role.USER, "What is in the box?"),
            Message(
                Role.ASSISTANT,
                "A cat.",
                MessageState.COMPLETE,
                model="demo",
                stats={"tokens": 3, "tokens_per_s": 10.0, "ttft": 0.1},
            ),
        ],
    )
    with ConversationStore(_db()) as store:
        store.import_conversations([conv])
        store.flush()
    with sqlite3.connect(_db()) as conn:
        conn.execute("UPDATE conversations SET settings = ?, updated = 9e9", (json.dumps(BAD_SETTINGS),))
        conn.execute(
            "UPDATE messages SET settings = ?, stats = ? WHERE role = 'assistant'",
            (json.dumps(BAD_SETTINGS), json.dumps(BAD_STATS)),
        )
        conn.execute("UPDATE messages SET created = 'yesterday' WHERE role = 'user'")
    return conv


def test_store_repairs_wrong_typed_fields_and_says_what_was_left_out() -> None:
    conv = _write_damaged()
    with ConversationStore(_db()) as store:
        problems: list[str] = []
        back = store.load(conv.id, problems)
    assert [m.text for m in back.messages] == ["What is in the box?", "A cat."]
    assert "temperature" not in (back.settings or {}) and "few_shot" not in (back.settings or {})
    reply = back.messages[1]
    assert reply.stats is not None and "tokens" not in reply.stats and "sources" not in reply.stats
    assert all(isinstance(m.created, float) for m in back.messages)
    text = " ".join(problems)
    assert "temperature" in text and "tokens" in text and "source 1" in text


def test_window_starts_on_a_damaged_conversation_and_shows_a_notice(open_main_window, qtbot) -> None:
    conv = _write_damaged()
    window = open_main_window()  # it used to die here, before the window appeared
    session = window.session
    assert session.conversation.id == conv.id  # the most recent one is opened, as always
    assert "A cat." in window.chat_view.toPlainText()
    qtbot.waitUntil(lambda: window.notice_bar.isVisible())
    assert "could not be read" in window.notice_bar.label.text()
    assert session.settings.temperature == 0.0  # the bad value did not replace a good one


def test_opening_a_damaged_conversation_from_the_sidebar_never_fails(open_main_window, qtbot) -> None:
    window = open_main_window()
    conv = _write_damaged("Opened later")
    window.session.conversations.conversationsChanged.emit()
    assert window.session.conversations.open_conversation(conv.id)
    assert "A cat." in window.chat_view.toPlainText()
    qtbot.waitUntil(lambda: "could not be read" in window.notice_bar.label.text())
