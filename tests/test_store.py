"""The conversation store: round trips, ordering, streaming updates, search, crash safety,
errors and lifecycle, against a real SQLite file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.conversation import Conversation, Message, MessageState, Role
from app.core.store import (
    SCHEMA_VERSION,
    ConversationNotFound,
    ConversationStore,
    StoreClosedError,
    StoreError,
    _Op,
    fts_query,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "conversations.sqlite3"


@pytest.fixture
def store(db_path: Path):
    s = ConversationStore(db_path)
    yield s
    s.close()


def make_conversation(title: str, texts: list[str], **kw) -> Conversation:
    conv = Conversation(title=title, **kw)
    for i, text in enumerate(texts):
        conv.messages.append(Message(Role.USER if i % 2 == 0 else Role.ASSISTANT, text))
    conv.link()
    return conv


def save_whole(store: ConversationStore, conv: Conversation) -> None:
    store.save_conversation(conv)
    conv.link()
    for i, m in enumerate(conv.messages):
        store.add_message(conv.id, m, i)


class Gate:
    """Holds the writer thread inside an op until opened, so a test controls what queues up."""

    def __init__(self, store: ConversationStore) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

        def run(conn: sqlite3.Connection) -> None:
            self.entered.set()
            assert self.release.wait(10)

        store._submit(_Op(run, "the test gate"))
        assert self.entered.wait(5)

    def open(self) -> None:
        self.release.set()


# -- round trips -------------------------------------------------------------------------------


def test_every_field_survives_a_round_trip_through_the_file(db_path: Path) -> None:
    conv = Conversation(
        title='Ünïcode & "quotes" — 日本語 🚀',
        created=1_700_000_000.125,
        updated=1_700_000_500.5,
        pinned=True,
        settings={"temperature": 0.3, "stop": ["\n\n", "###"], "seed": None, "nested": {"a": [1, 2.5]}},
    )
    conv.messages = [
        Message(Role.SYSTEM, "You are terse.", created=1_700_000_001.0),
        Message(Role.USER, "Hi there\nsecond line", created=1_700_000_002.0),
        Message(
            Role.ASSISTANT,
            "Hello! 👋",
            MessageState.STOPPED,
            model="SmolLM2 135M Q4_1",
            settings={"temperature": 0.3, "system_prompt": "You are terse."},
            stats={"tokens": 3, "tokens_per_s": 41.5, "ttft": 0.12, "seed": 7, "finish_reason": "stop"},
            created=1_700_000_003.0,
        ),
        Message(Role.ASSISTANT, "", MessageState.FAILED, created=1_700_000_004.0),
    ]
    s = ConversationStore(db_path)
    save_whole(s, conv)
    s.close()

    s = ConversationStore(db_path)
    loaded = s.load(conv.id)
    s.close()
    assert loaded == conv
    assert isinstance(loaded.messages[2].role, Role) and loaded.messages[2].state is MessageState.STOPPED
    assert loaded.pinned is True

    raw = sqlite3.connect(db_path)
    assert raw.execute("SELECT role, state FROM messages ORDER BY position").fetchall() == [
        ("system", "complete"),
        ("user", "complete"),
        ("assistant", "stopped"),
        ("assistant", "failed"),
    ]
    assert raw.execute("SELECT pinned FROM conversations").fetchone() == (1,)
    raw.close()


def test_import_and_restore_write_whole_conversations(store: ConversationStore) -> None:
    convs = [make_conversation(f"Chat {i}", [f"question {i}", f"answer {i}"]) for i in range(5)]
    assert store.import_conversations(convs) == 5
    assert [store.load(c.id) for c in convs] == convs
    # importing again replaces instead of duplicating
    convs[0].messages = convs[0].messages[:1]
    store.import_conversations([convs[0]])
    assert store.load(convs[0].id) == convs[0]
    assert store.count_conversations() == 5


def test_load_of_an_unknown_conversation_raises_a_typed_error(store: ConversationStore) -> None:
    with pytest.raises(ConversationNotFound):
        store.load("0" * 32)


# -- list ----------------------------------------------------------------------------------------


def test_list_is_pinned_first_then_most_recent_and_pages(store: ConversationStore) -> None:
    convs = []
    for i in range(12):
        c = make_conversation(f"Chat {i}", ["q"] * (i % 4), updated=1000.0 + i, pinned=i in (2, 7))
        save_whole(store, c)
        convs.append(c)
    summaries = store.list_conversations()
    assert [s.title for s in summaries] == ["Chat 7", "Chat 2"] + [
        f"Chat {i}" for i in (11, 10, 9, 8, 6, 5, 4, 3, 1, 0)
    ]
    assert [s.pinned for s in summaries[:3]] == [True, True, False]
    by_id = {s.id: s for s in summaries}
    for c in convs:
        assert by_id[c.id].message_count == len(c.messages)
        assert by_id[c.id].updated == c.updated and by_id[c.id].created == c.created
    pages = (
        store.list_conversations(limit=5)
        + store.list_conversations(limit=5, offset=5)
        + store.list_conversations(limit=5, offset=10)
    )
    assert pages == summaries
    assert store.list_conversations(limit=5, offset=12) == []
    assert store.count_conversations() == 12

    store.touch(convs[0].id)
    store.set_pinned(convs[7].id, False)
    store.rename(convs[3].id, "Renamed")
    order = [s.id for s in store.list_conversations(limit=3)]
    assert order == [convs[2].id, convs[0].id, convs[11].id]
    assert {s.id: s.title for s in store.list_conversations()}[convs[3].id] == "Renamed"


def test_reads_see_writes_enqueued_before_them(store: ConversationStore) -> None:
    for i in range(300):
        store.save_conversation(Conversation(title=f"c{i}"))
    # no explicit flush: the read itself waits for the queue
    assert store.count_conversations() == 300


def test_writes_return_while_the_writer_is_busy(store: ConversationStore) -> None:
    gate = Gate(store)
    conv = make_conversation("Busy", ["hello"])
    save_whole(store, conv)  # would hang here if a write waited for the disk
    store.update_message(conv.messages[0])
    assert store.flush(timeout=0.05) is False  # nothing was written yet
    gate.open()
    assert store.flush(timeout=5) is True
    assert store.load(conv.id) == conv


# -- streaming -------------------------------------------------------------------------------


def test_update_while_streaming_keeps_the_last_text_and_indexes_it_when_done(store: ConversationStore) -> None:
    conv = make_conversation("Stream", ["tell me about otters"])
    save_whole(store, conv)
    reply = Message(Role.ASSISTANT, "", MessageState.STREAMING, model="m", parent_id=conv.messages[0].id)
    store.add_message(conv.id, reply, 1)
    for i in range(200):
        reply.text += f"word{i} "
        store.update_message(reply)
    reply.text += "platypus"
    store.update_message(reply)
    loaded = store.load(conv.id).messages[1]
    assert loaded.text == reply.text and loaded.state is MessageState.STREAMING
    assert store.search("platypus") == []  # still streaming: not in the index yet

    reply.state = MessageState.COMPLETE
    reply.stats = {"tokens": 201, "finish_reason": "stop"}
    store.update_message(reply)
    hits = store.search("platypus")
    assert [(h.message_id, h.conversation_id) for h in hits] == [(reply.id, conv.id)]
    assert store.load(conv.id).messages[1] == reply

    # editing the text later keeps the index in step: old words gone, new ones found
    reply.text = "a wombat instead"
    store.update_message(reply)
    assert store.search("platypus") == []
    assert [h.message_id for h in store.search("wombat")] == [reply.id]


def test_queued_updates_of_one_message_collapse_into_one_transaction(store: ConversationStore) -> None:
    conv = make_conversation("Coalesce", ["hi"])
    save_whole(store, conv)
    reply = Message(Role.ASSISTANT, "", MessageState.STREAMING, parent_id=conv.messages[0].id)
    store.add_message(conv.id, reply, 1)
    store.flush()
    gate = Gate(store)
    before = store.transactions
    n = ConversationStore.MAX_BATCH // 2
    for i in range(n):
        reply.text += f"t{i} "
        store.update_message(reply)
        store.touch(conv.id)
    gate.open()
    store.flush()
    # the gate's commit and one for everything queued behind it, in which only the last
    # update and the last touch were run
    assert store.transactions - before == 2
    assert store.superseded == 2 * n - 2
    assert store.load(conv.id).messages[1].text == reply.text


def test_variants_are_kept_and_the_chosen_branch_is_what_loads(store: ConversationStore) -> None:
    """A regenerated reply and an edited message keep what they replaced as variants; the
    store saves which variant is shown, and search still finds text on other branches."""
    conv = make_conversation("Branches", ["first question", "first answer kiwi", "follow-up", "second answer"])
    save_whole(store, conv)
    q1, a1, q2, a2 = conv.messages
    # regenerate the first answer: a variant of a1 (same parent), the later turns stay on a1's branch
    a1b = Message(Role.ASSISTANT, "another answer mango", parent_id=q1.id)
    store.set_active(conv.id, a1b.id)  # before the row exists: nothing to do, nothing breaks
    store.add_message(conv.id, a1b, 1)
    store.set_active(conv.id, a1b.id)
    loaded = store.load(conv.id)
    assert [m.id for m in loaded.messages] == [q1.id, a1b.id]
    assert {m.id for m in loaded.branches} == {a1.id, q2.id, a2.id}
    assert loaded.variant_position(a1b.id) == (2, 2) and loaded.variant_position(a1.id) == (1, 2)
    assert {h.message_id for h in store.search("kiwi")} == {a1.id}  # other branches stay searchable

    # flip back: the old answer and what followed it are the path again
    store.set_active(conv.id, a1.id)
    loaded = store.load(conv.id)
    assert [m.id for m in loaded.messages] == [q1.id, a1.id, q2.id, a2.id]
    assert loaded.messages == conv.messages

    # deleting a message on the path keeps what followed it, now after its parent
    store.delete_message(q2.id)
    loaded = store.load(conv.id)
    assert [m.id for m in loaded.messages] == [q1.id, a1.id, a2.id]
    assert loaded.messages[2].parent_id == a1.id
    assert store.list_conversations()[0].message_count == 4


def test_a_whole_tree_round_trips_through_restore(store: ConversationStore) -> None:
    conv = make_conversation("Tree", ["q", "a1", "q2", "a2"])
    q1, a1, _, _ = conv.messages
    conv.branches = [Message(Role.ASSISTANT, "a1 again", parent_id=q1.id, active=False, created=a1.created + 1)]
    store.restore_conversation(conv)
    loaded = store.load(conv.id)
    assert loaded.messages == conv.messages and loaded.branches == conv.branches
    loaded.select(conv.branches[0].id)
    assert [m.text for m in loaded.messages] == ["q", "a1 again"]


def test_delete_and_restore_conversation_and_delete_message(store: ConversationStore) -> None:
    keep = make_conversation("Keeper", ["nothing to see"])
    conv = make_conversation("Marmot facts", ["tell me about marmots", "marmots whistle"], pinned=True)
    save_whole(store, keep)
    save_whole(store, conv)
    store.delete_conversation(conv.id)
    with pytest.raises(ConversationNotFound):
        store.load(conv.id)
    assert store.count_conversations() == 1
    assert store.search("marmot") == []  # title and messages left the index too
    raw = sqlite3.connect(store.path)
    assert raw.execute("SELECT count(*) FROM messages WHERE conversation_id = ?", (conv.id,)).fetchone() == (0,)
    raw.close()

    store.restore_conversation(conv)
    assert store.load(conv.id) == conv
    assert store.list_conversations()[0].id == conv.id  # still pinned
    hits = store.search("marmot")
    assert {h.message_id for h in hits} == {None, conv.messages[0].id, conv.messages[1].id}

    store.delete_message(conv.messages[0].id)
    conv.remove(conv.messages[0].id)  # what followed it now follows its parent (none: it is first)
    assert store.load(conv.id).messages == conv.messages and conv.messages[0].parent_id is None
    assert {h.message_id for h in store.search("marmots")} == {conv.messages[0].id}


# -- search --------------------------------------------------------------------------------------


def test_search_finds_titles_and_text_with_highlights(store: ConversationStore) -> None:
    a = make_conversation("Lighthouse keeper", ["Who keeps the light?", "The keeper does, every night."])
    b = make_conversation("Cooking", ["How do I bake bread?", "Knead it; the lighthouse bakery trick helps."])
    save_whole(store, a)
    save_whole(store, b)

    hits = store.search("lighthouse")
    assert hits[0].message_id is None and hits[0].conversation_id == a.id  # title hits first
    assert hits[0].title == "Lighthouse keeper" and hits[0].snippet == "Lighthouse keeper"
    assert hits[0].highlights == ((0, 10),)
    assert [(h.conversation_id, h.message_id) for h in hits[1:]] == [(b.id, b.messages[1].id)]
    hit = hits[1]
    assert hit.title == "Cooking"
    start, end = hit.highlights[0]
    assert hit.snippet[start:end] == "lighthouse"
    assert "\x02" not in hit.snippet and "\x03" not in hit.snippet

    # the last word is a prefix while typing; a trailing space ends it
    assert {h.conversation_id for h in store.search("lightho")} == {a.id, b.id}
    assert store.search("lightho ") == []
    # all words must match
    assert [h.message_id for h in store.search("bake bread")] == [b.messages[0].id]
    assert store.search("bake keeper") == []
    # rank: best first within message hits
    ranks = [h.rank for h in store.search("the") if h.message_id]
    assert ranks == sorted(ranks)
    assert store.search("lighthouse", limit=1) == hits[:1]


def test_search_handles_unicode_and_diacritics(store: ConversationStore) -> None:
    conv = make_conversation("Café talk", ["The naïve résumé", "日本語のテキスト", "emoji 🎉 party"])
    save_whole(store, conv)
    assert [h.message_id for h in store.search("naive resume")] == [conv.messages[0].id]
    assert [h.message_id for h in store.search("résumé")] == [conv.messages[0].id]
    assert [h.conversation_id for h in store.search("cafe")] == [conv.id]
    assert [h.message_id for h in store.search("日本")] == [conv.messages[1].id]
    assert [h.message_id for h in store.search("party 🎉")] == [conv.messages[2].id]


HOSTILE = [
    '"',
    '""',
    '"unbalanced',
    "'",
    "*",
    "**",
    "-",
    "-kiwi",
    "kiwi-",
    "AND",
    "OR",
    "NOT",
    "kiwi AND",
    "AND kiwi",
    "NOT kiwi",
    "kiwi OR",
    "NEAR(kiwi",
    "NEAR(kiwi fig, 2)",
    "(",
    ")",
    "()",
    "^kiwi",
    "kiwi:",
    "text:kiwi",
    "title:kiwi",
    "{kiwi}",
    "[kiwi]",
    "kiwi*",
    "*kiwi",
    "k*i",
    "+",
    "\\",
    "\x00",
    "kiwi\x00fig",
    "\ud800",
    "kiwi \udfff",
    "   ",
    "",
    "\n\t",
    "🎉",
    "🎉*",
    "x" * 5000,
    "kiwi " * 300,
    "%_",
    "kiwi; DROP TABLE messages; --",
    ":",
    "@",
    "$",
    "'kiwi'",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_search_never_raises_on_typed_text(store: ConversationStore, query: str) -> None:
    conv = make_conversation("kiwi fig", ['kiwi "fig" -a AND b'])
    save_whole(store, conv)
    hits = store.search(query)
    assert isinstance(hits, list)
    match = fts_query(query)
    if match is not None:  # the query itself is valid FTS5, not just caught
        raw = sqlite3.connect(store.path)
        raw.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?", (match,)).fetchall()
        raw.close()


def test_search_treats_operators_as_words(store: ConversationStore) -> None:
    conv = make_conversation("ops", ["cats and dogs", "cats not dogs"])
    save_whole(store, conv)
    # "and" / "NOT" are words to find, not FTS5 operators
    assert [h.message_id for h in store.search("cats AND dogs")] == [conv.messages[0].id]
    assert [h.message_id for h in store.search("cats NOT dogs")] == [conv.messages[1].id]
    assert [h.message_id for h in store.search('"cats" dogs')] != []


@pytest.fixture(scope="module")
def populated_store(tmp_path_factory):
    s = ConversationStore(tmp_path_factory.mktemp("search") / "c.sqlite3")
    s.import_conversations(
        make_conversation(f"chat {i} ünï", [f'message {i} with kiwi {i % 3} "quoted" - * AND']) for i in range(20)
    )
    yield s
    s.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_search_with_arbitrary_text_never_raises(populated_store: ConversationStore, query: str) -> None:
    hits = populated_store.search(query)
    assert all(h.title.startswith("chat") for h in hits)
    match = fts_query(query)
    if match is not None:
        with populated_store._read_lock:
            populated_store._rconn.execute(
                "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?", (match,)
            ).fetchall()


# -- recovery and crash safety -----------------------------------------------------------------


def test_recover_interrupted_marks_streaming_replies(store: ConversationStore) -> None:
    a = make_conversation("A", ["q"])
    b = make_conversation("B", ["q"])
    save_whole(store, a)
    save_whole(store, b)
    ra = Message(Role.ASSISTANT, "half an answer about zebras", MessageState.STREAMING, parent_id=a.messages[0].id)
    rb = Message(Role.ASSISTANT, "", MessageState.STREAMING, parent_id=b.messages[0].id)
    done = Message(Role.ASSISTANT, "complete zebras", MessageState.COMPLETE, parent_id=rb.id)
    store.add_message(a.id, ra, 1)
    store.add_message(b.id, rb, 1)
    store.add_message(b.id, done, 2)
    assert [h.message_id for h in store.search("zebras")] == [done.id]
    assert store.recover_interrupted() == 2
    assert store.load(a.id).messages[1].state is MessageState.INTERRUPTED
    assert [m.state for m in store.load(b.id).messages[1:]] == [MessageState.INTERRUPTED, MessageState.COMPLETE]
    assert store.load(a.id).messages[1].text == ra.text
    assert {h.message_id for h in store.search("zebras")} == {ra.id, done.id}
    assert store.recover_interrupted() == 0


CHILD = r"""
import sys, time
from app.core.conversation import Conversation, Message, MessageState, Role
from app.core.store import ConversationStore

store = ConversationStore(sys.argv[1])
conv = Conversation(title="Crash test")
store.save_conversation(conv)
user = Message(Role.USER, "Tell me a long story")
store.add_message(conv.id, user, 0)
reply = Message(Role.ASSISTANT, "", MessageState.STREAMING, model="demo", parent_id=user.id)
store.add_message(conv.id, reply, 1)
i = 0
for i in range(300):
    reply.text += f"w{i} "
    store.update_message(reply)
assert store.flush(10)
print(conv.id, user.id, reply.id, len(reply.text), flush=True)
while True:
    i += 1
    reply.text += f"w{i} "
    store.update_message(reply)
    time.sleep(0.0005)
"""


def test_everything_flushed_survives_sigkill(db_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db_path)], stdout=subprocess.PIPE, text=True, cwd=REPO, env=env
    )
    try:
        line = proc.stdout.readline()
        assert line, "the child died before flushing"
        conv_id, user_id, reply_id, flushed = line.split()
        time.sleep(0.3)  # keep streaming updates in flight when the kill lands
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    store = ConversationStore(db_path)
    try:
        assert store.recover_interrupted() == 1
        conv = store.load(conv_id)
    finally:
        store.close()
    assert conv.title == "Crash test"
    user, reply = conv.messages
    assert (user.id, user.text, user.state) == (user_id, "Tell me a long story", MessageState.COMPLETE)
    assert reply.id == reply_id and reply.state is MessageState.INTERRUPTED
    expected = "".join(f"w{i} " for i in range(300))
    assert len(reply.text) >= int(flushed) == len(expected)
    assert reply.text.startswith(expected)
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    raw.close()


# -- errors --------------------------------------------------------------------------------------


def test_a_failing_write_is_reported_and_later_writes_still_work(db_path: Path) -> None:
    errors: list[str] = []
    threads: list[str] = []

    def on_error(message: str) -> None:
        errors.append(message)
        threads.append(threading.current_thread().name)

    store = ConversationStore(db_path, on_error=on_error)
    try:
        conv = make_conversation("ok", ["fine"])
        save_whole(store, conv)
        # a message for a conversation that is not there: refused by the foreign key
        store.add_message("f" * 32, Message(Role.USER, "orphan"), 0)
        later = Message(Role.ASSISTANT, "still saved", parent_id=conv.messages[0].id)
        store.add_message(conv.id, later, 1)
        store.flush()
        assert errors == [
            "Could not save the message: its conversation is not in the database (it may have been deleted)."
        ]
        assert threads == ["conversation-store"]
        assert store.load(conv.id).messages == conv.messages + [later]
        assert list(store.errors) == errors
    finally:
        store.close()


def test_disk_full_is_reported_once_then_writing_recovers(db_path: Path) -> None:
    errors: list[str] = []
    store = ConversationStore(db_path, on_error=errors.append)
    try:
        conv = make_conversation("Full disk", ["hello"])
        save_whole(store, conv)
        reply = Message(Role.ASSISTANT, "", MessageState.STREAMING, parent_id=conv.messages[0].id)
        store.add_message(conv.id, reply, 1)
        # the database may not grow any more: SQLite then fails exactly as on a full disk
        store._call(lambda c: c.execute("PRAGMA max_page_count = 1"), "test")
        for i in range(20):
            reply.text = "x" * 200_000 + str(i)
            store.update_message(reply)
            store.flush()
        assert errors == ["Could not save the reply: the disk is full."]
        assert len(store.errors) == 20

        store._call(lambda c: c.execute("PRAGMA max_page_count = 1073741823"), "test")
        reply.text, reply.state = "short and complete", MessageState.COMPLETE
        store.update_message(reply)
        assert store.load(conv.id).messages[1].text == "short and complete"
        # the same problem coming back after writes worked again is news: reported again
        store._call(lambda c: c.execute("PRAGMA max_page_count = 1"), "test")
        reply.text = "y" * 200_000
        store.update_message(reply)
        store.flush()
        assert errors == ["Could not save the reply: the disk is full."] * 2
    finally:
        store.close()


def test_opening_a_file_that_is_not_a_database_raises_store_error(db_path: Path) -> None:
    db_path.write_bytes(b"this is not sqlite, just text " * 100)
    with pytest.raises(StoreError, match="damaged"):
        ConversationStore(db_path)


def test_a_database_from_a_newer_version_is_refused(db_path: Path) -> None:
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer version"):
        ConversationStore(db_path)


def test_a_version_1_database_is_migrated_and_its_conversations_read_as_before(db_path: Path) -> None:
    """Version 1 had no branches: each message follows the one before it (by position,
    gaps left by deleted messages included), and all are shown."""
    from app.core.sqlite_util import run_migrations
    from app.core.store import _MIGRATIONS

    raw = sqlite3.connect(db_path)
    run_migrations(raw, _MIGRATIONS[:1], StoreError("newer"))
    raw.execute("INSERT INTO conversations (id, title, created, updated) VALUES ('c1', 'Old chat', 1, 2)")
    raw.execute("INSERT INTO conversations (id, title, created, updated) VALUES ('c2', 'Other', 1, 3)")
    rows = [
        ("m1", "c1", 0, "user", "old question about quokkas"),
        ("m2", "c1", 1, "assistant", "old answer"),
        ("m4", "c1", 3, "user", "after a deleted one"),
        ("m5", "c1", 4, "assistant", "last"),
        ("n1", "c2", 0, "user", "other chat"),
    ]
    raw.executemany(
        "INSERT INTO messages (id, conversation_id, position, role, text, state, created) "
        "VALUES (?, ?, ?, ?, ?, 'complete', 10)",
        rows,
    )
    raw.commit()
    raw.close()

    store = ConversationStore(db_path)
    try:
        old = store.load("c1")
        assert [m.id for m in old.messages] == ["m1", "m2", "m4", "m5"] and old.branches == []
        assert [m.parent_id for m in old.messages] == [None, "m1", "m2", "m4"]
        assert [m.id for m in store.load("c2").messages] == ["n1"]
        assert [h.message_id for h in store.search("quokkas")] == ["m1"]
        # and it takes branches from now on
        again = Message(Role.ASSISTANT, "a new answer", parent_id="m1", created=20)
        store.add_message("c1", again, 1)
        store.set_active("c1", again.id)
        assert [m.id for m in store.load("c1").messages] == ["m1", again.id]
    finally:
        store.close()
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    raw.close()


def test_schema_and_connection_settings(store: ConversationStore, db_path: Path) -> None:
    assert store._call(lambda c: c.execute("PRAGMA synchronous").fetchone()[0], "test") == 1  # NORMAL
    assert store._call(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0], "test") == 1
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    plan = " ".join(
        r[3]
        for r in raw.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM conversations ORDER BY pinned DESC, updated DESC, id LIMIT 200"
        )
    )
    assert "conversations_list_order" in plan and "TEMP B-TREE" not in plan
    plan = " ".join(
        r[3]
        for r in raw.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE conversation_id = ? ORDER BY position", ("x",)
        )
    )
    assert "messages_by_conversation" in plan and "TEMP B-TREE" not in plan
    raw.close()


# -- lifecycle -----------------------------------------------------------------------------------


def test_close_drains_the_queue_and_is_idempotent(db_path: Path) -> None:
    store = ConversationStore(db_path)
    conv = make_conversation("Many", [f"m{i}" for i in range(500)])
    save_whole(store, conv)
    store.close()
    store.close()
    assert store.closed
    store.save_conversation(Conversation(title="after close"))  # dropped, does not raise
    with pytest.raises(StoreClosedError):
        store.list_conversations()
    with pytest.raises(StoreClosedError):
        store.recover_interrupted()

    again = ConversationStore(db_path)
    try:
        assert again.load(conv.id) == conv
        assert again.count_conversations() == 1
    finally:
        again.close()


def test_store_module_does_not_import_qt() -> None:
    code = (
        "import sys, app.core.store\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'PyQt5', 'PyQt6'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    source = (REPO / "app" / "core" / "store.py").read_text()
    assert "PySide6" not in source and "from app.ui" not in source and "from app.engine" not in source


def test_a_damaged_database_is_moved_aside_never_overwritten(tmp_path: Path) -> None:
    from app.core.store import open_or_move_aside

    db = tmp_path / "conversations.sqlite3"
    junk = b"this is not a database at all" * 100
    db.write_bytes(junk)
    store, note = open_or_move_aside(db)
    try:
        assert note is not None and "unreadable" in note
        aside = [p for p in tmp_path.iterdir() if ".unreadable-" in p.name]
        assert len(aside) == 1 and aside[0].read_bytes() == junk  # kept byte for byte
        assert str(aside[0]) in note
        assert store.count_conversations() == 0
    finally:
        store.close()
    again, note = open_or_move_aside(db)  # the fresh one opens normally next time
    again.close()
    assert note is None
