"""The conversation store: every conversation and message, in one SQLite file.

API summary
-----------
``ConversationStore(path, on_error=None)`` opens (creating or migrating) the database.

Writes enqueue and return at once; one writer thread runs them in order, in small
transactions, so the GUI thread never waits on the disk:
``save_conversation(conv)``, ``add_message(conversation_id, message, position)``,
``update_message(message)``, ``delete_message(message_id)``,
``set_active(conversation_id, message_id)``, ``rename(conversation_id, title)``,
``set_pinned(conversation_id, pinned)``, ``touch(conversation_id)``,
``set_rating(message_id, rating)``, ``set_preferred(message_id, preferred=True)``,
``delete_conversation(conversation_id)``, ``restore_conversation(conv)``,
``import_conversations(convs)``.

Reads are synchronous and see every write enqueued before them:
``list_conversations(limit=None, offset=0) -> list[ConversationSummary]``,
``count_conversations() -> int``, ``load(conversation_id) -> Conversation``,
``search(query, limit=100) -> list[SearchHit]``, ``ratings_by_model() -> {model: (good, bad)}``. ``recover_interrupted() -> int`` runs once at
start. Lifecycle: ``flush(timeout=None) -> bool``, ``close()``.

A write that fails (disk full, database locked by another program) is reported through
``on_error(message)``, called on the writer thread with a plain-words message; the writer
keeps going. Reads and opening raise :class:`StoreError` (plain-words message).

Why it is built this way
------------------------
* A reply streams for minutes and is saved every ~0.5 s, so ``update_message`` is one UPDATE
  of one row, and queued updates of the same message collapse into the last one.
* Ids come from :mod:`app.core.conversation`, not the database, so a write can be queued
  before anything is on disk and nothing needs an id back.
* WAL with ``synchronous=NORMAL``: a commit survives the app being killed (it is in the WAL
  file the moment ``COMMIT`` returns); only a power cut can lose the last few commits.
  Readers never block the writer.
* The search index (FTS5) points at an explicit ``rid INTEGER PRIMARY KEY`` rather than the
  implicit rowid, because ``VACUUM`` may renumber implicit rowids and would silently break
  the index. ``id`` is ``TEXT NOT NULL UNIQUE``: the same lookup cost as a TEXT primary key.
* A message still streaming is kept out of the search index, so the updates while it
  streams do not churn the index; it is indexed once it ends (or is recovered).
"""

from __future__ import annotations

import enum
import json
import logging
import os
import queue
import sqlite3
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from app.core.conversation import Conversation, Message, MessageState, Role
from app.core.records import check_settings, check_stats, clean_text, is_number
from app.core.sqlite_util import connect, run_migrations
from app.core.vision import Attachment, sniff_image

log = logging.getLogger(__name__)

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)

SCHEMA_VERSION = 4

#: Markers SQLite puts around matched words in a snippet; parsed out into
#: :attr:`SearchHit.highlights`, so :attr:`SearchHit.snippet` is plain text.
_HL_OPEN = "\x02"
_HL_CLOSE = "\x03"
_ELLIPSIS = "…"


class StoreError(Exception):
    """The conversation database could not be opened or read; the message is plain words."""


class StoreClosedError(StoreError):
    """A read after :meth:`ConversationStore.close`."""


class ConversationNotFound(StoreError):
    """No conversation with that id (deleted, or never saved)."""


@dataclass(frozen=True)
class ConversationSummary:
    """One row of the conversation list: enough to draw it without loading messages."""

    id: str
    title: str
    created: float
    updated: float
    pinned: bool
    message_count: int


@dataclass(frozen=True)
class SearchHit:
    """A conversation whose title matched (``message_id`` is None) or one of its messages.

    ``rank`` is FTS5's bm25 score: lower is a better match. ``snippet`` is plain text;
    ``highlights`` are the (start, end) character spans in it of the matched words.
    """

    conversation_id: str
    title: str
    message_id: str | None
    snippet: str
    rank: float
    highlights: tuple[tuple[int, int], ...] = ()


# -- schema ----------------------------------------------------------------------------------

_TOKENIZE = "unicode61 remove_diacritics 2"

_SCHEMA_V1 = f"""
CREATE TABLE conversations (
    rid      INTEGER PRIMARY KEY,       -- stable row number the search index points at
    id       TEXT NOT NULL UNIQUE,
    title    TEXT NOT NULL DEFAULT '',
    created  REAL NOT NULL,
    updated  REAL NOT NULL,
    pinned   INTEGER NOT NULL DEFAULT 0,
    settings TEXT                       -- JSON
);
CREATE INDEX conversations_list_order ON conversations (pinned DESC, updated DESC, id);

CREATE TABLE messages (
    rid             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    role            TEXT NOT NULL,      -- Role.value
    text            TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL,      -- MessageState.value
    model           TEXT,
    settings        TEXT,               -- JSON
    stats           TEXT,               -- JSON
    created         REAL NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, position);
-- recover_interrupted() on start must not scan half a million rows
CREATE INDEX messages_streaming ON messages (state) WHERE state = 'streaming';

CREATE VIRTUAL TABLE conversations_fts USING fts5 (
    title, content='conversations', content_rowid='rid', tokenize='{_TOKENIZE}', prefix='2 3'
);
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    text, content='messages', content_rowid='rid', tokenize='{_TOKENIZE}', prefix='2 3'
);

CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO conversations_fts (rowid, title) VALUES (new.rid, new.title);
END;
CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
    INSERT INTO conversations_fts (conversations_fts, rowid, title) VALUES ('delete', old.rid, old.title);
END;
CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations
WHEN old.title IS NOT new.title BEGIN
    INSERT INTO conversations_fts (conversations_fts, rowid, title) VALUES ('delete', old.rid, old.title);
    INSERT INTO conversations_fts (rowid, title) VALUES (new.rid, new.title);
END;

-- A row is in messages_fts exactly when its state is not 'streaming'.
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.state != 'streaming' BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.rid, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.state != 'streaming' BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.rid, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, state ON messages
WHEN (old.state != 'streaming' OR new.state != 'streaming')
 AND (old.text IS NOT new.text OR (old.state = 'streaming') != (new.state = 'streaming')) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
        SELECT 'delete', old.rid, old.text WHERE old.state != 'streaming';
    INSERT INTO messages_fts (rowid, text)
        SELECT new.rid, new.text WHERE new.state != 'streaming';
END;
"""

# Version 2: branches.  Regenerated replies and edited messages are kept as variants: each
# message points at the one it follows, and ``active`` marks the variant shown.  Existing
# conversations become single branches (each message follows the one before it).
_SCHEMA_V2 = """
ALTER TABLE messages ADD COLUMN parent_id TEXT;
ALTER TABLE messages ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
UPDATE messages SET parent_id = (
    SELECT p.id FROM messages AS p
    WHERE p.conversation_id = messages.conversation_id
      AND (p.position < messages.position OR (p.position = messages.position AND p.rid < messages.rid))
    ORDER BY p.position DESC, p.rid DESC LIMIT 1
);
CREATE INDEX messages_by_parent ON messages (conversation_id, parent_id);
"""

# Version 3: ratings.  ``rating`` is +1 (good), -1 (bad) or NULL (not rated); ``preferred``
# marks the better one among a reply's versions (at most one among the same parent's).
_SCHEMA_V3 = """
ALTER TABLE messages ADD COLUMN rating INTEGER;
ALTER TABLE messages ADD COLUMN preferred INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_rated ON messages (model) WHERE rating IS NOT NULL;
"""

# Version 4: images attached to messages (vision models), kept in the database with their
# message (deleted with it), in order; the bytes as the person gave them.
_SCHEMA_V4 = """
CREATE TABLE message_images (
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    mime       TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    data       BLOB NOT NULL,
    PRIMARY KEY (message_id, position)
);
"""

#: Step ``i`` takes the schema from version ``i`` to ``i + 1``. Append, never edit.
_MIGRATIONS: list[str] = [_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; returns the version found on disk.

    Each step runs in its own transaction together with the ``user_version`` bump, so a
    crash mid-migration leaves the previous version intact. A database from a newer Hearth
    is refused rather than guessed at.
    """
    assert len(_MIGRATIONS) == SCHEMA_VERSION
    return run_migrations(
        conn,
        _MIGRATIONS,
        StoreError("The conversation database was written by a newer version of Hearth; update Hearth to open it."),
    )


# -- value conversion --------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _to_json(value: dict[str, Any] | None) -> str | None:
    """Encode now, on the caller's thread: the dict is snapshotted before the caller can
    change it, and odd values (enums, paths) never make the write fail later."""
    if value is None:
        return None
    return clean_text(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default))


def _text(value: str | None) -> str | None:
    """Lone surrogates (broken UTF-16, possible in an imported file) cannot be encoded for
    SQLite: the whole write would fail. They become U+FFFD instead."""
    return clean_text(value) if isinstance(value, str) else value


def _from_json(text: Any, label: str, notes: list[str]) -> Any:
    """The stored JSON value, or a note and None when it is not JSON at all."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        notes.append(f"{label} could not be read")
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        notes.append(f"{label} could not be read")
        return None


def _row_text(value: Any) -> str:
    """A TEXT column as text: SQLite keeps whatever type was written (a damaged or
    hand-edited database may hold a number or a blob where text belongs)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _row_time(value: Any, default: float) -> float:
    return float(value) if is_number(value) and 0 <= value <= 253402300799 else default


def _enum(cls: type[E], value: str, default: E) -> E:
    """A value a newer version wrote, read by this one, degrades instead of failing the load."""
    try:
        return cls(value)
    except ValueError:
        return default


def _value(x: Any) -> Any:
    return x.value if isinstance(x, enum.Enum) else x


_MessageRow = tuple[
    str, str, int, str, str, str, str | None, str | None, str | None, float, str | None, int, int | None, int
]


def _message_row(conversation_id: str, message: Message, position: int) -> _MessageRow:
    return (
        message.id,
        conversation_id,
        int(position),
        _value(message.role),
        _text(message.text) or "",
        _value(message.state),
        _text(message.model),
        _to_json(message.settings),
        _to_json(message.stats),
        float(message.created),
        message.parent_id,
        1 if message.active else 0,
        message.rating if message.rating in (1, -1) else None,
        1 if message.preferred else 0,
    )


def _conversation_row(conv: Conversation) -> tuple[str, str, float, float, int, str | None]:
    return (
        conv.id,
        _text(conv.title) or "",
        float(conv.created),
        float(conv.updated),
        1 if conv.pinned else 0,
        _to_json(conv.settings),
    )


_UPSERT_CONVERSATION = """
INSERT INTO conversations (id, title, created, updated, pinned, settings) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET title = excluded.title, created = excluded.created,
    updated = excluded.updated, pinned = excluded.pinned, settings = excluded.settings
"""

_INSERT_IMAGE = "INSERT OR REPLACE INTO message_images (message_id, position, mime, name, data) VALUES (?, ?, ?, ?, ?)"


def _image_rows(message: Message) -> list[tuple[str, int, str, str, bytes]]:
    return [(message.id, i, a.mime, _text(a.name) or "", bytes(a.data)) for i, a in enumerate(message.images)]


_UPSERT_MESSAGE = """
INSERT INTO messages (id, conversation_id, position, role, text, state, model, settings, stats, created,
                      parent_id, active, rating, preferred)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET conversation_id = excluded.conversation_id,
    position = excluded.position, role = excluded.role, text = excluded.text,
    state = excluded.state, model = excluded.model, settings = excluded.settings,
    stats = excluded.stats, created = excluded.created, parent_id = excluded.parent_id,
    active = excluded.active, rating = excluded.rating, preferred = excluded.preferred
"""


# -- search queries ----------------------------------------------------------------------------


def _is_token_char(ch: str) -> bool:
    # unicode61's default token characters: letters, numbers and private-use ("L* N* Co").
    cat = unicodedata.category(ch)
    return cat[0] in "LN" or cat == "Co"


def fts_query(text: str) -> str | None:
    """Turn what the user typed into a safe FTS5 query, or None when nothing is searchable.

    Each whitespace-separated word becomes a quoted phrase (so ``AND``, ``-``, ``*``,
    ``"`` and ``NEAR(`` are just text), all of them must match, and the last word matches
    as a prefix while the user is still typing it (no trailing space).
    """
    # Lone surrogates cannot be encoded for SQLite; control characters (NUL above all)
    # end an FTS5 string early.
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    words = [w for w in text.split() if any(_is_token_char(ch) for ch in w)]
    if not words:
        return None
    phrases = ['"' + w.replace('"', '""') + '"' for w in words]
    if text and not text[-1].isspace() and text.split()[-1] == words[-1]:
        phrases[-1] += "*"
    return " ".join(phrases)


def _parse_snippet(marked: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    plain: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    start: int | None = None
    for ch in marked:
        if ch == _HL_OPEN:
            start = length
        elif ch == _HL_CLOSE:
            if start is not None and length > start:
                spans.append((start, length))
            start = None
        else:
            plain.append(ch)
            length += 1
    return "".join(plain), tuple(spans)


# -- the writer's queue ------------------------------------------------------------------------


@dataclass(eq=False)
class _Op:
    """One queued write. ``key``: a later op with the same key makes this one pointless
    (it sets the same fields to absolute values), so it is dropped from the batch."""

    run: Callable[[sqlite3.Connection], Any]
    what: str  # plain words for error messages: "the reply", "the conversation"
    key: tuple[str, str] | None = None
    future: Future[Any] | None = None


_STOP = object()


def _reason(exc: BaseException) -> str:
    """Plain words for why a write or read failed."""
    if isinstance(exc, UnicodeError):
        return "it contains characters that cannot be saved"
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return "the disk is full"
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return "the conversation database is read-only"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return "another program is using the conversation database"
    if name.startswith("SQLITE_IOERR") or "disk i/o" in text:
        return "the disk could not be read or written"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return "the conversation database is damaged"
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return "the conversation database file could not be opened"
    if name == "SQLITE_CONSTRAINT_FOREIGNKEY" or "foreign key" in text:
        return "its conversation is not in the database (it may have been deleted)"
    if name.startswith("SQLITE_CONSTRAINT") or "constraint" in text:
        return "it conflicts with what is already saved"
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in text:
        return "the conversation database was closed"
    return f"an unexpected error ({exc})"


class ConversationStore:
    """All conversations in one SQLite file; see the module docstring for the API."""

    #: Most queued writes committed together; small, so a commit stays short.
    MAX_BATCH = 64

    def __init__(self, path: str | Path, on_error: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.on_error = on_error
        self.errors: deque[str] = deque(maxlen=50)  # recent write failures, newest last
        self.transactions = 0  # committed write transactions (for tests and benchmarks)
        self.superseded = 0  # queued writes dropped because a later one in the batch replaced them
        self._last_reported: str | None = None

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._wconn = self._connect(writer=True)
        try:
            migrate(self._wconn)
            self._rconn = self._connect(writer=False)
        except sqlite3.Error as exc:
            self._wconn.close()
            raise StoreError(f"Could not open the conversation database {self.path}: {_reason(exc)}.") from exc
        except BaseException:
            self._wconn.close()
            raise

        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _closed and _enqueued
        self._closed = False
        self._enqueued = 0
        self._done = 0
        self._done_cond = threading.Condition()
        self._read_lock = threading.Lock()
        self._thread = threading.Thread(target=self._writer_main, name="conversation-store", daemon=True)
        self._thread.start()

    def _connect(self, writer: bool) -> sqlite3.Connection:
        try:
            # readers get a bigger page cache: search touches many pages
            return connect(
                self.path, timeout=5.0, writer=writer, cache_kib=None if writer else 16000, what="conversation database"
            )
        except sqlite3.Error as exc:
            raise StoreError(f"Could not open the conversation database {self.path}: {_reason(exc)}.") from exc

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queue ---------------------------------------------------------------------------------

    def _submit(self, op: _Op) -> bool:
        with self._lock:
            if self._closed:
                log.warning("conversation store is closed; dropped a write of %s", op.what)
                if op.future is not None:
                    op.future.set_exception(StoreClosedError("The conversation database is closed."))
                return False
            self._enqueued += 1
            self._queue.put(op)
        return True

    def _call(self, fn: Callable[[sqlite3.Connection], T], what: str) -> T:
        """Run ``fn`` on the writer thread, in order with queued writes, and wait for it."""
        if threading.current_thread() is self._thread:
            raise StoreError("Synchronous writes cannot be made from the store's own thread.")
        future: Future[T] = Future()
        self._submit(_Op(fn, what, future=future))
        return future.result()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write enqueued before this call is committed (or has failed and
        been reported). False on timeout, when called on the writer thread (it would wait
        for itself), or when the writer is gone."""
        if threading.current_thread() is self._thread:
            return False
        with self._lock:
            target = self._enqueued
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done_cond:
            while self._done < target:
                if not self._thread.is_alive():
                    return False
                wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if wait <= 0:
                    return False
                self._done_cond.wait(wait)
        return True

    def close(self) -> None:
        """Commit everything queued, stop the writer and close both connections. Later
        writes are dropped (logged); later reads raise :class:`StoreClosedError`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        with self._read_lock:
            self._rconn.close()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- writer thread -------------------------------------------------------------------------

    def _writer_main(self) -> None:
        conn = self._wconn
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[_Op] = []
            if item is _STOP:
                stop = True
            else:
                batch.append(item)
                while len(batch) < self.MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
            if batch:
                try:
                    self._run_batch(conn, batch)
                except BaseException as exc:  # a bug must not stop later writes
                    log.exception("conversation store writer failed")
                    self._report(batch[0], exc)
                with self._done_cond:
                    self._done += len(batch)
                    self._done_cond.notify_all()
        try:
            conn.execute("PRAGMA optimize")
        except sqlite3.Error:
            pass
        conn.close()

    def _coalesce(self, batch: list[_Op]) -> list[_Op]:
        seen: set[tuple[str, str]] = set()
        kept: list[_Op] = []
        for op in reversed(batch):
            if op.key is not None:
                if op.key in seen:
                    continue
                seen.add(op.key)
            kept.append(op)
        kept.reverse()
        self.superseded += len(batch) - len(kept)
        return kept

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        ops = self._coalesce(batch)
        try:
            self._transaction(conn, ops)
            return
        except Exception as exc:
            if len(ops) == 1:
                self._failed(ops[0], exc)
                return
        # Something in the batch failed: replay one op per transaction so only the bad
        # one is lost.
        for op in ops:
            try:
                self._transaction(conn, [op])
            except Exception as exc:
                self._failed(op, exc)

    def _transaction(self, conn: sqlite3.Connection, ops: list[_Op]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = [op.run(conn) for op in ops]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback failed")
            raise
        self.transactions += 1
        self._last_reported = None  # writes work again: report the next problem
        for op, result in zip(ops, results):
            if op.future is not None:
                op.future.set_result(result)

    def _failed(self, op: _Op, exc: BaseException) -> None:
        if op.future is not None:
            op.future.set_exception(StoreError(f"Could not save {op.what}: {_reason(exc)}."))
            return
        self._report(op, exc)

    def _report(self, op: _Op, exc: BaseException) -> None:
        message = f"Could not save {op.what}: {_reason(exc)}."
        log.warning("%s (%r)", message, exc)
        self.errors.append(message)
        if message == self._last_reported:
            return  # the same problem is still going on; the user was told
        self._last_reported = message
        if self.on_error is not None:
            try:
                self.on_error(message)
            except Exception:
                log.exception("on_error callback failed")

    # -- writes (enqueue, return at once) ------------------------------------------------------

    def save_conversation(self, conv: Conversation) -> None:
        """Insert or update the conversation's own fields (not its messages)."""
        row = _conversation_row(conv)
        self._submit(_Op(lambda c: c.execute(_UPSERT_CONVERSATION, row), "the conversation"))

    def add_message(self, conversation_id: str, message: Message, position: int) -> None:
        """Write a new message at ``position`` (its depth on the shown path); it must say
        which message it follows (``parent_id``), except the first."""
        if position > 0 and message.parent_id is None:
            raise ValueError("a message after the first must name the message it follows (parent_id)")
        row = _message_row(conversation_id, message, position)
        images = _image_rows(message)

        def run(c: sqlite3.Connection) -> None:
            c.execute(_UPSERT_MESSAGE, row)
            c.executemany(_INSERT_IMAGE, images)

        self._submit(_Op(run, "the message"))

    def update_message(self, message: Message) -> None:
        """Save a message's text, state and stats: the cheap call made while a reply streams."""
        params = (_text(message.text) or "", _value(message.state), _to_json(message.stats), message.id)
        self._submit(
            _Op(
                lambda c: c.execute("UPDATE messages SET text = ?, state = ?, stats = ? WHERE id = ?", params),
                "the reply" if message.role is Role.ASSISTANT else "the message",
                key=("message", message.id),
            )
        )

    def delete_message(self, message_id: str) -> None:
        """Delete one message; what followed it now follows its parent (as
        :meth:`Conversation.remove` does in memory)."""

        def run(c: sqlite3.Connection) -> None:
            row = c.execute("SELECT parent_id, active FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return
            c.execute(
                "UPDATE messages SET parent_id = ?, active = active AND ? WHERE parent_id = ?",
                (row[0], row[1], message_id),
            )
            c.execute("DELETE FROM messages WHERE id = ?", (message_id,))

        self._submit(_Op(run, "the deletion"))

    def set_active(self, conversation_id: str, message_id: str) -> None:
        """Make this message the shown one among its variants (the caller has chosen its
        ancestors too, one call each)."""
        params = (message_id, conversation_id, message_id)
        self._submit(
            _Op(
                lambda c: c.execute(
                    "UPDATE messages SET active = (id = ?) WHERE conversation_id = ? "
                    "AND parent_id IS (SELECT parent_id FROM messages WHERE id = ?)",
                    params,
                ),
                "the choice of branch",
            )
        )

    def set_rating(self, message_id: str, rating: int | None) -> None:
        """+1 (good), -1 (bad) or None (not rated)."""
        if rating not in (1, -1, None):
            raise ValueError("a rating is +1, -1 or None")
        params = (rating, message_id)
        self._submit(
            _Op(
                lambda c: c.execute("UPDATE messages SET rating = ? WHERE id = ?", params),
                "the rating",
                key=("rating", message_id),
            )
        )

    def set_preferred(self, message_id: str, preferred: bool = True) -> None:
        """Mark this version as the better one among its variants, clearing the mark on the
        others in the same transaction (or clear its own mark)."""

        def run(c: sqlite3.Connection) -> None:
            if preferred:
                c.execute(
                    "UPDATE messages SET preferred = (id = ?) WHERE rid IN (SELECT s.rid FROM messages s "
                    "JOIN messages m ON m.id = ? AND s.conversation_id = m.conversation_id "
                    "AND s.parent_id IS m.parent_id)",
                    (message_id, message_id),
                )
            else:
                c.execute("UPDATE messages SET preferred = 0 WHERE id = ?", (message_id,))

        self._submit(_Op(run, "the preferred version"))

    def rename(self, conversation_id: str, title: str) -> None:
        params = (_text(title), conversation_id)
        self._submit(
            _Op(
                lambda c: c.execute("UPDATE conversations SET title = ? WHERE id = ?", params),
                "the new title",
                key=("title", conversation_id),
            )
        )

    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        params = (1 if pinned else 0, conversation_id)
        self._submit(
            _Op(
                lambda c: c.execute("UPDATE conversations SET pinned = ? WHERE id = ?", params),
                "the pin",
                key=("pinned", conversation_id),
            )
        )

    def touch(self, conversation_id: str) -> None:
        """Move the conversation to the top of its group: updated = now (when enqueued)."""
        params = (time.time(), conversation_id)
        self._submit(
            _Op(
                lambda c: c.execute("UPDATE conversations SET updated = ? WHERE id = ?", params),
                "the conversation",
                key=("touch", conversation_id),
            )
        )

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete it and its messages; keep the Conversation to :meth:`restore_conversation`."""
        self._submit(
            _Op(
                lambda c: c.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)),
                "the deletion",
            )
        )

    def restore_conversation(self, conv: Conversation) -> None:
        """Write ``conv`` and exactly its messages and branches: undo of delete."""
        self._submit(_Op(self._replace_conversations_op([conv]), "the restored conversation"))

    def import_conversations(self, convs: Iterable[Conversation]) -> int:
        """Write many whole conversations in one transaction (JSON import, benchmarks).

        A conversation already stored under the same id is replaced. Rows are built on the
        calling thread: call it off the GUI thread for a big import. Returns how many
        conversations were queued.
        """
        convs = list(convs)
        if convs:
            self._submit(_Op(self._replace_conversations_op(convs), "the imported conversations"))
        return len(convs)

    @staticmethod
    def _replace_conversations_op(convs: list[Conversation]) -> Callable[[sqlite3.Connection], None]:
        conv_rows = [_conversation_row(c) for c in convs]
        ids = [(c.id,) for c in convs]
        msg_rows = []
        image_rows = []
        for conv in convs:
            conv.link()
            msg_rows += [_message_row(conv.id, m, i) for i, m in enumerate(conv.messages)]
            msg_rows += [_message_row(conv.id, m, -1) for m in conv.branches]
            image_rows += [r for m in conv.all_messages() for r in _image_rows(m)]

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(_UPSERT_CONVERSATION, conv_rows)
            conn.executemany("DELETE FROM messages WHERE conversation_id = ?", ids)
            conn.executemany(_UPSERT_MESSAGE, msg_rows)
            conn.executemany(_INSERT_IMAGE, image_rows)

        return run

    def recover_interrupted(self) -> int:
        """On start: replies still 'streaming' were cut off when the app died; mark them
        interrupted (which also puts them in the search index). Returns how many."""

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE messages SET state = ? WHERE state = ?",
                (MessageState.INTERRUPTED.value, MessageState.STREAMING.value),
            )
            return cur.rowcount

        return self._call(run, "the interrupted replies")

    # -- reads (synchronous, after a barrier) --------------------------------------------------

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self.flush()
        with self._read_lock:
            if self._closed:
                raise StoreClosedError("The conversation database is closed.")
            conn = self._rconn
            try:
                conn.execute("BEGIN")  # one snapshot for all the queries of this read
                try:
                    return fn(conn)
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"Could not read the conversation database: {_reason(exc)}.") from exc

    def list_conversations(self, limit: int | None = None, offset: int = 0) -> list[ConversationSummary]:
        """Pinned first, then most recently updated; page with ``limit``/``offset``."""
        sql = """
            SELECT c.id, c.title, c.created, c.updated, c.pinned,
                   (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)
            FROM conversations c INDEXED BY conversations_list_order
            ORDER BY c.pinned DESC, c.updated DESC, c.id
            LIMIT ? OFFSET ?
        """
        params = (-1 if limit is None else max(0, int(limit)), max(0, int(offset)))
        rows = self._read(lambda c: c.execute(sql, params).fetchall())
        return [
            ConversationSummary(
                _row_text(r[0]),
                _row_text(r[1]),
                _row_time(r[2], 0.0),
                _row_time(r[3], 0.0),
                bool(r[4]) if isinstance(r[4], (int, float)) else False,
                r[5],
            )
            for r in rows
        ]

    def ratings_by_model(self) -> dict[str, tuple[int, int]]:
        """Model display name -> (good, bad): how many of its replies were rated each way."""
        sql = (
            "SELECT model, sum(rating = 1), sum(rating = -1) FROM messages "
            "WHERE rating IS NOT NULL AND model IS NOT NULL GROUP BY model"
        )
        rows = self._read(lambda c: c.execute(sql).fetchall())
        return {_row_text(r[0]): (int(r[1] or 0), int(r[2] or 0)) for r in rows}

    def count_conversations(self) -> int:
        count: int = self._read(lambda c: c.execute("SELECT count(*) FROM conversations").fetchone()[0])
        return count

    def load(self, conversation_id: str, problems: list[str] | None = None) -> Conversation:
        """The conversation: its shown path in ``messages``, other branches in ``branches``.

        A damaged row never makes it unreadable: every field is checked (``records``) and
        one of the wrong type is left out, or given a default; ``problems``, when passed,
        gets a plain note for each. Only a database that cannot be read raises.
        """
        notes: list[str] = [] if problems is None else problems

        def run(c: sqlite3.Connection) -> Conversation:
            row = c.execute(
                "SELECT id, title, created, updated, pinned, settings FROM conversations WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            if row is None:
                raise ConversationNotFound("That conversation is no longer in the database.")
            rows = c.execute(
                "SELECT role, text, state, model, settings, stats, created, id, parent_id, active, rating, preferred "
                "FROM messages WHERE conversation_id = ? ORDER BY rid",
                (conversation_id,),
            ).fetchall()
            images: dict[str, list[Attachment]] = {}
            for message_id, mime, name, data in c.execute(
                "SELECT i.message_id, i.mime, i.name, i.data FROM message_images i JOIN messages m "
                "ON m.id = i.message_id WHERE m.conversation_id = ? ORDER BY i.message_id, i.position",
                (conversation_id,),
            ):
                if isinstance(data, bytes) and isinstance(mime, str) and sniff_image(data) is not None:
                    images.setdefault(message_id, []).append(Attachment(mime, data, _row_text(name)))
            conv = _conversation_from_rows(row, rows, notes)
            for message in conv.all_messages():
                message.images = images.get(message.id, [])
            return conv

        return self._read(run)

    #: Message hits are the best ``limit`` (by bm25) among at most this many most recent
    #: matches: ranking every match of a common word in half a million messages would take
    #: seconds, and recent conversations are what people look for.
    SEARCH_CANDIDATES = 500

    def search(self, query: str, limit: int = 100) -> list[SearchHit]:
        """Conversations whose title matches (best first), then matching messages (best
        first among the most recent matches). Any typed text is safe."""
        match = fts_query(query)
        limit = max(0, int(limit))
        if match is None or limit == 0:
            return []
        candidates = max(limit, self.SEARCH_CANDIDATES)

        def run(c: sqlite3.Connection) -> list[SearchHit]:
            hits: list[SearchHit] = []
            for cid, title, marked, rank in c.execute(
                f"""SELECT c.id, c.title, highlight(conversations_fts, 0, '{_HL_OPEN}', '{_HL_CLOSE}'),
                           bm25(conversations_fts)
                    FROM conversations_fts JOIN conversations c ON c.rid = conversations_fts.rowid
                    WHERE conversations_fts MATCH ? ORDER BY rank LIMIT ?""",
                (match, limit),
            ):
                snippet, spans = _parse_snippet(marked)
                hits.append(SearchHit(cid, _row_text(title), None, snippet, rank, spans))
            room = limit - len(hits)
            if room <= 0:
                return hits
            # Rank the most recent matches, then make snippets for the chosen ones only:
            # the same cheap newest-first scan again, not a lookup per hit (each lookup
            # would evaluate a prefix query from scratch).
            scan = "FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid DESC LIMIT ?"
            ranked = c.execute(f"SELECT rowid, bm25(messages_fts) {scan}", (match, candidates)).fetchall()
            best = sorted(ranked, key=lambda r: (r[1], -r[0]))[:room]
            if not best:
                return hits
            # one JSON parameter instead of one per hit: no "too many SQL variables"
            rids = json.dumps([rid for rid, _ in best])
            chosen = "(SELECT value FROM json_each(?))"
            snippets = dict(
                c.execute(
                    f"""SELECT rowid, CASE WHEN rowid IN {chosen} THEN
                            snippet(messages_fts, 0, '{_HL_OPEN}', '{_HL_CLOSE}', '{_ELLIPSIS}', 12) END
                        {scan}""",
                    (rids, match, candidates),
                ).fetchall()
            )
            rows = {
                r[0]: r[1:]
                for r in c.execute(
                    f"""SELECT m.rid, m.conversation_id, c.title, m.id FROM messages m
                        JOIN conversations c ON c.id = m.conversation_id WHERE m.rid IN {chosen}""",
                    (rids,),
                )
            }
            for rid, rank in best:
                if rid in rows and snippets.get(rid) is not None:
                    cid, title, mid = rows[rid]
                    snippet, spans = _parse_snippet(snippets[rid])
                    hits.append(SearchHit(cid, _row_text(title), mid, snippet, rank, spans))
            return hits

        try:
            return self._read(run)
        except StoreError as exc:
            # fts_query should make this impossible; a search box must never crash the app.
            if "fts5" in str(exc.__cause__).lower():
                log.error("search query %r (%r) was refused: %s", query, match, exc.__cause__)
                return []
            raise


def _conversation_from_rows(row: tuple[Any, ...], rows: list[tuple[Any, ...]], notes: list[str]) -> Conversation:
    """Build the records from raw rows, repairing what a damaged row holds (see ``load``)."""
    conv_id = _row_text(row[0])
    created = _row_time(row[2], 0.0)
    settings, found = check_settings(
        _from_json(row[5], "the chat settings", notes), strict=False, conversation=True, label="the chat settings"
    )
    notes += found
    messages: list[Message] = []
    for n, m in enumerate(rows, 1):
        label = f"message {n}"
        msg_settings, found = check_settings(
            _from_json(m[4], f"{label}: settings", notes), strict=False, label=f"{label}: settings"
        )
        notes += found
        stats, found = check_stats(
            _from_json(m[5], f"{label}: figures", notes), strict=False, label=f"{label}: figures"
        )
        notes += found
        parent = m[8]
        messages.append(
            Message(
                role=_enum(Role, m[0], Role.ASSISTANT),
                text=_row_text(m[1]),
                state=_enum(MessageState, m[2], MessageState.COMPLETE),
                model=_row_text(m[3]) if m[3] is not None else None,
                settings=msg_settings,
                stats=stats,
                created=_row_time(m[6], created),
                id=_row_text(m[7]),
                parent_id=_row_text(parent) if parent is not None else None,
                active=bool(m[9]) if isinstance(m[9], (int, float)) else True,
                rating=m[10] if m[10] in (1, -1) and not isinstance(m[10], bool) else None,
                preferred=bool(m[11]) if isinstance(m[11], (int, float)) else False,
            )
        )
    conv = Conversation(
        title=_row_text(row[1]),
        id=conv_id,
        created=created,
        updated=_row_time(row[3], created),
        pinned=bool(row[4]) if isinstance(row[4], (int, float)) else False,
        settings=settings,
    )
    conv.rebuild(messages)  # the shown path through the tree of branches
    return conv


def open_or_move_aside(
    path: str | Path, on_error: Callable[[str], None] | None = None
) -> tuple[ConversationStore, str | None]:
    """Open the store; if the file is damaged or from a newer Hearth, keep it untouched under
    a new name and start a fresh history, returning a note that says where the old one is.

    A locked database (another program holds it) is not moved: that raises StoreError.
    """
    path = Path(path)
    try:
        return ConversationStore(path, on_error=on_error), None
    except StoreError as exc:
        if "locked" in str(exc).lower() or not path.exists():
            raise
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{path.stem}.unreadable-{stamp}{path.suffix}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(path) + suffix)
            if part.exists():
                os.replace(part, Path(str(aside) + suffix))
        store = ConversationStore(path, on_error=on_error)
        note = (
            f"Your conversation history could not be opened ({exc}). It was kept, unchanged, at "
            f"{aside}, and Hearth started a new history."
        )
        return store, note
