"""Ratings (👍/👎) and the preferred version of a reply: stored, migrated, exported, imported."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.core.conversation import Conversation, Message, Role
from app.core.export import ImportFormatError, from_json, to_json
from app.core.store import SCHEMA_VERSION, ConversationStore, StoreError


def _chat_with_two_versions() -> Conversation:
    conv = Conversation(title="rated")
    question = Message(Role.USER, "What is a quokka?", created=1)
    first = Message(Role.ASSISTANT, "A small wallaby.", model="Model A", created=2)
    conv.messages = [question, first]
    conv.link()
    second = Message(Role.ASSISTANT, "A marsupial.", model="Model B", created=3, parent_id=question.id, active=False)
    conv.branches = [second]
    return conv


@pytest.fixture
def store(tmp_path: Path):
    s = ConversationStore(tmp_path / "c.db")
    yield s
    s.close()


def test_ratings_and_the_preferred_version_are_stored_and_counted_per_model(store: ConversationStore) -> None:
    conv = _chat_with_two_versions()
    store.import_conversations([conv])
    first, second = conv.messages[1], conv.branches[0]
    store.set_rating(first.id, 1)
    store.set_rating(second.id, -1)
    store.set_preferred(second.id)
    store.set_preferred(first.id)  # clears the mark on its sibling, in the same transaction
    loaded = store.load(conv.id)
    got = {m.text: (m.rating, m.preferred) for m in loaded.all_messages()}
    assert got == {"What is a quokka?": (None, False), "A small wallaby.": (1, True), "A marsupial.": (-1, False)}
    assert store.ratings_by_model() == {"Model A": (1, 0), "Model B": (0, 1)}
    store.set_rating(first.id, None)
    store.set_preferred(first.id, False)
    loaded = store.load(conv.id)
    assert [(m.rating, m.preferred) for m in loaded.messages] == [(None, False), (None, False)]
    assert store.ratings_by_model() == {"Model B": (0, 1)}
    with pytest.raises(ValueError):
        store.set_rating(first.id, 5)


def test_in_memory_preferred_is_one_among_the_versions() -> None:
    conv = _chat_with_two_versions()
    first, second = conv.messages[1], conv.branches[0]
    assert conv.set_preferred(first.id) and first.preferred
    assert conv.set_preferred(second.id) and second.preferred and not first.preferred
    assert conv.set_rating(second.id, -1) and second.rating == -1
    assert not conv.set_rating("nope", 1)
    with pytest.raises(ValueError):
        conv.set_rating(first.id, 2)


def test_a_rating_survives_json_export_and_import(store: ConversationStore) -> None:
    conv = _chat_with_two_versions()
    conv.messages[1].rating = 1
    conv.branches[0].rating = -1
    conv.branches[0].preferred = True
    text = to_json([conv])
    rows = json.loads(text)["conversations"][0]
    assert rows["messages"][1]["rating"] == 1 and rows["branches"][0]["preferred"] is True
    back = from_json(text)[0]
    assert {m.id: (m.rating, m.preferred) for m in back.all_messages()} == {
        m.id: (m.rating, m.preferred) for m in conv.all_messages()
    }
    store.import_conversations([back])  # and through the store again
    again = store.load(conv.id)
    assert {m.text: (m.rating, m.preferred) for m in again.all_messages()}["A marsupial."] == (-1, True)
    # a file written before ratings existed still imports, unrated
    data = json.loads(text)
    for m in data["conversations"][0]["messages"] + data["conversations"][0]["branches"]:
        del m["rating"], m["preferred"]
    old = from_json(json.dumps(data))[0]
    assert all(m.rating is None and not m.preferred for m in old.all_messages())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rating", 3, "rating must be 1, -1 or null"),
        ("rating", "good", "rating must be 1, -1 or null"),
        ("rating", True, "rating must be 1, -1 or null"),
        ("preferred", 1, "preferred must be true or false"),
    ],
)
def test_a_wrong_rating_in_an_imported_file_is_named(field: str, value: object, message: str) -> None:
    data = json.loads(to_json([_chat_with_two_versions()]))
    data["conversations"][0]["messages"][1][field] = value
    with pytest.raises(ImportFormatError, match=f"conversation 1, message 2: {message}"):
        from_json(json.dumps(data))


def test_two_preferred_versions_of_one_reply_are_refused_on_import() -> None:
    conv = _chat_with_two_versions()
    conv.messages[1].preferred = conv.branches[0].preferred = True
    with pytest.raises(ImportFormatError, match="more than one version"):
        from_json(to_json([conv]))


def test_a_version_2_database_gains_ratings_and_keeps_its_messages(tmp_path: Path) -> None:
    from app.core.sqlite_util import run_migrations
    from app.core.store import _MIGRATIONS

    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    run_migrations(raw, _MIGRATIONS[:2], StoreError("newer"))
    raw.execute("INSERT INTO conversations (id, title, created, updated) VALUES ('c1', 'Old chat', 1, 2)")
    raw.execute(
        "INSERT INTO messages (id, conversation_id, position, role, text, state, created, model) "
        "VALUES ('m1', 'c1', 0, 'user', 'hello', 'complete', 10, NULL), "
        "('m2', 'c1', 1, 'assistant', 'hi', 'complete', 11, 'Old model')"
    )
    raw.execute("UPDATE messages SET parent_id = 'm1' WHERE id = 'm2'")
    raw.commit()
    raw.close()
    store = ConversationStore(path)
    try:
        old = store.load("c1")
        assert [(m.text, m.rating, m.preferred) for m in old.messages] == [("hello", None, False), ("hi", None, False)]
        store.set_rating("m2", 1)
        assert store.load("c1").messages[1].rating == 1
        assert store.ratings_by_model() == {"Old model": (1, 0)}
    finally:
        store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    raw.close()


def test_a_damaged_rating_in_the_database_reads_as_unrated(store: ConversationStore) -> None:
    conv = _chat_with_two_versions()
    store.import_conversations([conv])
    store._call(lambda c: c.execute("UPDATE messages SET rating = 'x', preferred = 'y'"), "test")
    loaded = store.load(conv.id)
    assert all(m.rating is None and not m.preferred for m in loaded.all_messages())
