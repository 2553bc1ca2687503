"""The document index: collections, documents, passages and their search index, in SQLite.

Its own database file (``paths.data_dir() / "documents.sqlite3"`` by default), apart from
the conversation store: an index can be large and is rebuildable from the files, so it can
be deleted or vacuumed without touching anyone's chats.

Collections
    A *folder collection* is backed by a folder: :meth:`DocumentIndex.sync_collection`
    picks up new supported files in it.  A *plain collection* holds files added one by one.
    A conversation's *attachments* are an implicit collection keyed by the conversation id
    (:meth:`DocumentIndex.attachments_collection`); it is hidden from
    :meth:`DocumentIndex.collections` and always searched for that conversation.  Other
    collections are enabled per conversation (a mapping table), and retrieval can be
    switched off per conversation.

Indexing
    :meth:`DocumentIndex.add_files` and :meth:`DocumentIndex.sync_collection` are blocking
    and meant for a worker thread: each file is read and chunked outside any lock, then
    written in its own short transaction, so the GUI thread's reads (WAL: readers never wait
    for the writer) stay fast, a cancel leaves every finished file indexed, and a crash
    loses at most the file in hand.  A file that cannot be read is stored with status
    ``unreadable`` and its reason, listed in the report's ``skipped``, and the rest go on.
    Sync re-reads a file only when its size or modification time changed, and re-indexes
    it only when its SHA-256 changed too (a ``touch`` costs one hash); files that no
    longer exist are dropped.

Search
    Passages are in an FTS5 table (external content, kept in step by this module) ranked
    with ``bm25()``; the Porter stemmer over unicode61 matches "install" with "installing"
    in English and is harmless elsewhere.  :mod:`app.core.documents.retrieval` builds the
    safe query; this module only runs it.

Vectors (hybrid retrieval, once an embedding model is chosen)
    Stored as float32 BLOBs in ``vectors`` beside the passages and searched with numpy
    (cosine similarity over one normalized matrix, cached until the index changes).  At our
    scale — tens of thousands of passages — one matrix product takes a few milliseconds
    (``python bench/rag.py``: 12k x 384, p95 under 1 ms), so a vector extension would add a native
    dependency for no measurable gain.  It would also not load everywhere: sqlite-vec is
    a loadable extension and needs ``sqlite3.Connection.enable_load_extension``, which
    Python builds without ``--enable-loadable-sqlite-extensions`` lack (the pyenv 3.11 on
    our CI machine is one: ``AttributeError`` with sqlite-vec 0.1 installed).
    Vectors are tagged with the model that made them; changing model means re-embedding.

Threads
    One SQLite connection per thread (WAL) and one lock around writes: indexing runs on a
    worker thread while the GUI thread lists documents and retrieves.

API::

    DocumentIndex(path=None)
      collections(include_attachments=False) -> list[Collection]
      collection(collection_id) -> Collection
      create_collection(name, folder=None) -> Collection
      rename_collection(collection_id, name) -> Collection
      delete_collection(collection_id) -> None
      attachments_collection(conversation_id, create=True) -> Collection | None
      enable_collection(conversation_id, collection_id, enabled=True) -> None
      enabled_collections(conversation_id) -> list[int]
      conversation_collection_ids(conversation_id) -> list[int]   (enabled + attachments)
      set_retrieval_enabled(conversation_id, enabled) / retrieval_enabled(conversation_id)
      forget_conversation(conversation_id) -> None
      add_files(collection_id, paths, progress=None, cancel=None) -> IndexReport
      attach_files(conversation_id, paths, progress=None, cancel=None) -> IndexReport
      sync_collection(collection_id, progress=None, cancel=None) -> IndexReport
      documents(collection_id) -> list[DocumentRecord]
      remove_document(document_id) -> None
      passages(document_id) -> list[StoredPassage]
      get_passages(passage_ids) -> dict[int, StoredPassage]
      search_passages(match, collection_ids, limit) -> list[tuple[int, float]]
      store_vectors(passage_ids, vectors, model="default") -> None
      vector_search(query_vec, k=6, collection_ids=None, model="default") -> list[tuple[int, float]]
      passages_missing_vectors(collection_ids, model="default", limit=256) -> list[tuple[int, str]]
      stats() -> IndexStats
      verify() / rebuild_search_index()
      close()
    IndexReport(added, updated, skipped: list[Skipped(path, reason)], removed, unchanged, cancelled)
    DocumentIndexError, CollectionNotFound
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from app import paths
from app.core.documents.chunking import DEFAULT_OVERLAP, DEFAULT_WORDS, Passage, chunk_sections
from app.core.documents.extract import ExtractionCancelled, UnreadableDocument, extract, is_supported
from app.core.sqlite_util import connect, run_migrations

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 1
DB_NAME = "documents.sqlite3"

Progress = Callable[[int, int, str], None]
Cancel = Callable[[], bool]


class DocumentIndexError(Exception):
    """The document index could not be opened, read or written; the message is plain words."""


class CollectionNotFound(DocumentIndexError):
    """No collection with that id (deleted, or never made)."""


class DocumentStatus(str, enum.Enum):
    # Values are stored on disk: never change or reuse one.
    INDEXED = "indexed"
    UNREADABLE = "unreadable"  # ``error`` says why


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    folder: Path | None  # a folder collection picks up new files from here on sync
    conversation_id: str | None  # set: the attachments of that conversation
    created: float
    documents: int = 0
    passages: int = 0

    @property
    def is_attachments(self) -> bool:
        return self.conversation_id is not None


@dataclass(frozen=True)
class DocumentRecord:
    id: int
    collection_id: int
    path: Path
    title: str
    kind: str | None
    status: DocumentStatus
    error: str | None  # plain words, for an unreadable document
    sha256: str | None
    mtime: float | None
    size: int | None
    passages: int
    indexed: float | None  # when it was last (re)indexed

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class StoredPassage:
    """A passage as stored, with what a citation needs about its document."""

    id: int
    passage: Passage
    path: Path
    title: str
    collection_id: int


class Skipped(NamedTuple):
    path: Path
    reason: str  # a whole sentence naming the file: "report.pdf is encrypted (…)"


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    removed: int = 0
    unchanged: int = 0
    cancelled: bool = False

    def merge(self, other: IndexReport) -> IndexReport:
        return IndexReport(
            self.added + other.added,
            self.updated + other.updated,
            self.skipped + other.skipped,
            self.removed + other.removed,
            self.unchanged + other.unchanged,
            self.cancelled or other.cancelled,
        )


@dataclass(frozen=True)
class IndexStats:
    collections: int
    documents: int
    passages: int
    vectors: int
    file_bytes: int  # the database and its WAL on disk


# -- schema ----------------------------------------------------------------------------------

_SCHEMA_V1 = """
CREATE TABLE collections (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    folder          TEXT,               -- NULL: files are added one by one
    conversation_id TEXT UNIQUE,        -- set: this is that conversation's attachments
    created         REAL NOT NULL
);

CREATE TABLE documents (
    id            INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    path          TEXT NOT NULL,        -- resolved absolute path
    title         TEXT NOT NULL DEFAULT '',
    kind          TEXT,                 -- extract's kind: pdf, docx, html, markdown, text, code
    sha256        TEXT,
    mtime         REAL,
    size          INTEGER,
    status        TEXT NOT NULL,        -- DocumentStatus.value
    error         TEXT,
    passages      INTEGER NOT NULL DEFAULT 0,
    indexed       REAL,
    UNIQUE (collection_id, path)
);

CREATE TABLE passages (
    -- explicit, and never reused: VACUUM must not renumber what FTS points at, and an id
    -- a citation kept must not come back as another passage
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id INTEGER NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal     INTEGER NOT NULL,
    text        TEXT NOT NULL,
    page        INTEGER,
    heading     TEXT,
    start_char  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX passages_document ON passages (document_id, ordinal);

CREATE VIRTUAL TABLE passages_fts USING fts5 (
    text, heading, content = 'passages', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
-- No triggers keep passages_fts in step: the code does (_insert_passages, _index_rows,
-- _drop_passages).
-- A statement run from a trigger makes FTS5 flush its pending terms at every row, which
-- made indexing 2-3x slower than inserting into the FTS table directly.

CREATE TABLE vectors (
    passage_id INTEGER PRIMARY KEY REFERENCES passages (id) ON DELETE CASCADE,
    model      TEXT NOT NULL,           -- which embedding model made it
    dim        INTEGER NOT NULL,
    data       BLOB NOT NULL            -- float32, little-endian
);
CREATE INDEX vectors_model ON vectors (model);

CREATE TABLE conversation_collections (
    conversation_id TEXT NOT NULL,
    collection_id   INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, collection_id)
) WITHOUT ROWID;
CREATE INDEX conversation_collections_collection ON conversation_collections (collection_id);

CREATE TABLE conversation_options (
    conversation_id TEXT PRIMARY KEY,
    retrieval       INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
"""

#: Step ``i`` takes the schema from version ``i`` to ``i + 1``. Append, never edit.
_MIGRATIONS: list[str] = [_SCHEMA_V1]


def _drop_passages(c: sqlite3.Connection, where: str, params: Sequence[Any]) -> None:
    """Delete passages and their search-index entries (external-content FTS5 needs the
    old text to remove a row).  Every deletion of passages goes through here."""
    # Any statement that writes to FTS5 other than a plain INSERT makes it flush the terms
    # it holds in memory; skipping the no-op case keeps a run of new files in one flush.
    if c.execute(f"SELECT 1 FROM passages WHERE {where} LIMIT 1", params).fetchone() is None:
        return
    c.execute(
        "INSERT INTO passages_fts (passages_fts, rowid, text, heading) "
        f"SELECT 'delete', id, text, heading FROM passages WHERE {where}",
        params,
    )
    c.execute(f"DELETE FROM passages WHERE {where}", params)


def _insert_passages(
    c: sqlite3.Connection, document_id: int, rows: Sequence[tuple[Any, ...]]
) -> list[tuple[int, str, str | None]]:
    """Insert ``(ordinal, text, page, heading, start_char)`` rows; returns the rows for
    the search index, which the caller inserts with :func:`_index_rows` once its other
    statements are done.

    Why later: a statement that may need a statement journal (an upsert, anything with a
    foreign key action) makes FTS5 flush the terms it holds in memory, so interleaving
    them with FTS inserts wrote one tiny segment per file and made indexing 2-3x slower.
    """
    if not rows:
        return []
    seq = c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'passages'").fetchone()
    first = (seq[0] if seq else 0) + 1
    c.executemany(
        "INSERT INTO passages (id, document_id, ordinal, text, page, heading, start_char) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(first + i, document_id, *r) for i, r in enumerate(rows)],
    )
    return [(first + i, r[1], r[3]) for i, r in enumerate(rows)]


def _index_rows(c: sqlite3.Connection, rows: Sequence[tuple[int, str, str | None]]) -> None:
    if rows:
        c.executemany("INSERT INTO passages_fts (rowid, text, heading) VALUES (?, ?, ?)", rows)


#: Memory FTS5 may hold for terms not yet written (default 1 MB): fewer, larger segments
#: while indexing, so fewer merges.  Older SQLite without the option ignores the attempt.
_FTS_HASHSIZE = 8 * 1024 * 1024


def _migrate(conn: sqlite3.Connection) -> None:
    found = run_migrations(
        conn,
        _MIGRATIONS,
        DocumentIndexError("The document index was written by a newer version of Hearth; update Hearth to open it."),
    )
    if found == 0:  # a new index: let FTS5 buffer more terms while indexing
        try:
            conn.execute(f"INSERT INTO passages_fts (passages_fts, rank) VALUES ('hashsize', {_FTS_HASHSIZE})")
        except sqlite3.Error:
            pass


def _reason(exc: BaseException) -> str:
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return "the disk is full"
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return "the document index is read-only"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return "another program is using the document index"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return "the document index is damaged (delete it to rebuild it from your files)"
    if name.startswith("SQLITE_IOERR") or "disk i/o" in text:
        return "the disk could not be read or written"
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return "the document index file could not be opened"
    return f"an unexpected error ({exc})"


#: Folders never walked in a folder collection: tool caches and dependencies, not documents.
_SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages", "target", "build", "dist"})


#: Why a file in a folder is not indexed when it is a link to a file elsewhere.
LINKS_OUTSIDE = "links outside the folder (only files inside it are indexed)"


def _walk_supported(folder: Path) -> Iterator[Path | Skipped]:
    """Supported files under ``folder``: hidden files and folders and tool caches skipped,
    symlinked folders not followed (no loops).

    A file symlink whose target is outside ``folder`` comes out as :class:`Skipped`: a
    folder someone else filled (a download, a shared drive) must not pull ``~/.ssh`` or
    another user's files into the index and from there into a prompt.
    """
    top = _resolve(folder)
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            if not is_supported(path):
                continue
            if path.is_symlink() and not _inside(_resolve(path), top):
                yield Skipped(path, str(UnreadableDocument(path, LINKS_OUTSIDE)))
                continue
            yield path


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def _resolve(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    try:
        return p.resolve()
    except OSError:
        return p.absolute()


# -- the index -------------------------------------------------------------------------------


class DocumentIndex:
    """See the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        words: int = DEFAULT_WORDS,
        overlap: int = DEFAULT_OVERLAP,
    ) -> None:
        self.path = Path(path) if path is not None else paths.data_dir() / DB_NAME
        self.words = words
        self.overlap = overlap
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._closed = False
        self._generation = 0  # bumped on every write: invalidates the vector cache
        self._vec_cache: dict[tuple[Any, ...], tuple[Any, tuple[Any, Any]]] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            with self._write_lock:
                _migrate(conn)
        except sqlite3.Error as exc:
            self.close()
            raise DocumentIndexError(f"Could not open the document index {self.path}: {_reason(exc)}.") from exc

    # -- connections -----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise DocumentIndexError("The document index is closed.")
        local: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if local is not None:
            return local
        conn = connect(self.path, timeout=10.0, cache_kib=16000, what="document index")
        self._local.conn = conn
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection; later calls raise :class:`DocumentIndexError`."""
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._vec_cache.clear()

    def __enter__(self) -> DocumentIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn()
        try:
            conn.execute("BEGIN")  # one snapshot for every query of this read
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise DocumentIndexError(f"Could not read the document index: {_reason(exc)}.") from exc

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn()
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise DocumentIndexError(f"Could not write to the document index: {_reason(exc)}.") from exc
            finally:
                self._generation += 1
            return result

    # -- collections -----------------------------------------------------------------------

    _COLLECTION_SQL = """
        SELECT c.id, c.name, c.folder, c.conversation_id, c.created,
               (SELECT count(*) FROM documents d WHERE d.collection_id = c.id),
               (SELECT coalesce(sum(d.passages), 0) FROM documents d WHERE d.collection_id = c.id)
        FROM collections c
    """

    @staticmethod
    def _collection_row(row: Sequence[Any]) -> Collection:
        return Collection(
            id=row[0],
            name=row[1],
            folder=Path(row[2]) if row[2] else None,
            conversation_id=row[3],
            created=row[4],
            documents=row[5],
            passages=row[6],
        )

    def collections(self, include_attachments: bool = False) -> list[Collection]:
        """Named collections by name (attachment collections too when asked)."""
        where = "" if include_attachments else " WHERE c.conversation_id IS NULL"
        sql = self._COLLECTION_SQL + where + " ORDER BY c.name COLLATE NOCASE, c.id"
        return self._read(lambda c: [self._collection_row(r) for r in c.execute(sql)])

    def collection(self, collection_id: int) -> Collection:
        def run(c: sqlite3.Connection) -> Collection:
            row = c.execute(self._COLLECTION_SQL + " WHERE c.id = ?", (collection_id,)).fetchone()
            if row is None:
                raise CollectionNotFound("That document collection no longer exists.")
            return self._collection_row(row)

        return self._read(run)

    @staticmethod
    def _check_name(c: sqlite3.Connection, name: str, exclude: int | None = None) -> str:
        name = " ".join((name or "").split())
        if not name:
            raise DocumentIndexError("A collection needs a name.")
        row = c.execute(
            "SELECT id FROM collections WHERE conversation_id IS NULL AND name = ? COLLATE NOCASE AND id IS NOT ?",
            (name, exclude),
        ).fetchone()
        if row is not None:
            raise DocumentIndexError(f"There is already a collection named “{name}”.")
        return name

    def create_collection(self, name: str, folder: str | os.PathLike[str] | None = None) -> Collection:
        """A named collection; with ``folder``, one that :meth:`sync_collection` fills from it."""
        folder_path = _resolve(folder) if folder is not None else None
        if folder_path is not None and not folder_path.is_dir():
            raise DocumentIndexError(f"{folder_path} is not a folder.")

        def run(c: sqlite3.Connection) -> int:
            clean = self._check_name(c, name)
            cur = c.execute(
                "INSERT INTO collections (name, folder, created) VALUES (?, ?, ?)",
                (clean, str(folder_path) if folder_path else None, time.time()),
            )
            return int(cur.lastrowid or 0)

        return self.collection(self._write(run))

    def rename_collection(self, collection_id: int, name: str) -> Collection:
        def run(c: sqlite3.Connection) -> None:
            clean = self._check_name(c, name, exclude=collection_id)
            if c.execute("UPDATE collections SET name = ? WHERE id = ?", (clean, collection_id)).rowcount == 0:
                raise CollectionNotFound("That document collection no longer exists.")

        self._write(run)
        return self.collection(collection_id)

    def delete_collection(self, collection_id: int) -> None:
        """Forget the collection and its index (the files themselves are never touched)."""

        def run(c: sqlite3.Connection) -> None:
            _drop_passages(c, "document_id IN (SELECT id FROM documents WHERE collection_id = ?)", (collection_id,))
            c.execute("DELETE FROM collections WHERE id = ?", (collection_id,))

        self._write(run)

    def attachments_collection(self, conversation_id: str, create: bool = True) -> Collection | None:
        """The implicit collection holding a conversation's attached files."""

        def find(c: sqlite3.Connection) -> Collection | None:
            row = c.execute(self._COLLECTION_SQL + " WHERE c.conversation_id = ?", (conversation_id,)).fetchone()
            return self._collection_row(row) if row else None

        found = self._read(find)
        if found is not None or not create:
            return found
        self._write(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO collections (name, conversation_id, created) VALUES (?, ?, ?)",
                ("Attachments", conversation_id, time.time()),
            )
        )
        return self._read(find)

    # -- conversations ---------------------------------------------------------------------

    def enable_collection(self, conversation_id: str, collection_id: int, enabled: bool = True) -> None:
        def run(c: sqlite3.Connection) -> None:
            if enabled:
                if c.execute("SELECT 1 FROM collections WHERE id = ?", (collection_id,)).fetchone() is None:
                    raise CollectionNotFound("That document collection no longer exists.")
                c.execute(
                    "INSERT OR IGNORE INTO conversation_collections (conversation_id, collection_id) VALUES (?, ?)",
                    (conversation_id, collection_id),
                )
            else:
                c.execute(
                    "DELETE FROM conversation_collections WHERE conversation_id = ? AND collection_id = ?",
                    (conversation_id, collection_id),
                )

        self._write(run)

    def conversations_using(self, name: str) -> set[str] | None:
        """The conversations that have the named collection switched on (None: no collection
        has that name), for the dataset export's filter."""

        def run(c: sqlite3.Connection) -> set[str] | None:
            ids = [
                r[0]
                for r in c.execute(
                    "SELECT id FROM collections WHERE conversation_id IS NULL AND name = ? COLLATE NOCASE", (name,)
                )
            ]
            if not ids:
                return None
            marks = ",".join("?" * len(ids))
            sql = f"SELECT conversation_id FROM conversation_collections WHERE collection_id IN ({marks})"
            return {r[0] for r in c.execute(sql, ids)}

        return self._read(run)

    def enabled_collections(self, conversation_id: str) -> list[int]:
        """Named collections the user switched on for this conversation."""
        return self._read(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT collection_id FROM conversation_collections WHERE conversation_id = ? ORDER BY collection_id",
                    (conversation_id,),
                )
            ]
        )

    def conversation_collection_ids(self, conversation_id: str) -> list[int]:
        """Everything retrieval searches for this conversation: enabled collections and its
        attachments; empty when retrieval is switched off for it."""
        if not self.retrieval_enabled(conversation_id):
            return []
        ids = self.enabled_collections(conversation_id)
        att = self.attachments_collection(conversation_id, create=False)
        if att is not None:
            ids.append(att.id)
        return ids

    def set_retrieval_enabled(self, conversation_id: str, enabled: bool) -> None:
        self._write(
            lambda c: c.execute(
                "INSERT INTO conversation_options (conversation_id, retrieval) VALUES (?, ?) "
                "ON CONFLICT (conversation_id) DO UPDATE SET retrieval = excluded.retrieval",
                (conversation_id, 1 if enabled else 0),
            )
        )

    def retrieval_enabled(self, conversation_id: str) -> bool:
        row = self._read(
            lambda c: c.execute(
                "SELECT retrieval FROM conversation_options WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()
        )
        return bool(row[0]) if row else True

    def forget_conversation(self, conversation_id: str) -> None:
        """Drop a deleted conversation's attachments, mappings and options."""

        def run(c: sqlite3.Connection) -> None:
            _drop_passages(
                c,
                "document_id IN (SELECT d.id FROM documents d JOIN collections c ON c.id = d.collection_id "
                "WHERE c.conversation_id = ?)",
                (conversation_id,),
            )
            c.execute("DELETE FROM collections WHERE conversation_id = ?", (conversation_id,))
            c.execute("DELETE FROM conversation_collections WHERE conversation_id = ?", (conversation_id,))
            c.execute("DELETE FROM conversation_options WHERE conversation_id = ?", (conversation_id,))

        self._write(run)

    # -- documents -------------------------------------------------------------------------

    _DOC_COLUMNS = "id, collection_id, path, title, kind, status, error, sha256, mtime, size, passages, indexed"

    @staticmethod
    def _document_row(row: Sequence[Any]) -> DocumentRecord:
        try:
            status = DocumentStatus(row[5])
        except ValueError:
            status = DocumentStatus.UNREADABLE
        return DocumentRecord(
            id=row[0],
            collection_id=row[1],
            path=Path(row[2]),
            title=row[3],
            kind=row[4],
            status=status,
            error=row[6],
            sha256=row[7],
            mtime=row[8],
            size=row[9],
            passages=row[10],
            indexed=row[11],
        )

    def documents(self, collection_id: int) -> list[DocumentRecord]:
        """Every document of the collection with its status, by path."""
        sql = f"SELECT {self._DOC_COLUMNS} FROM documents WHERE collection_id = ? ORDER BY path"
        return self._read(lambda c: [self._document_row(r) for r in c.execute(sql, (collection_id,))])

    def remove_document(self, document_id: int) -> None:
        self._write(lambda c: self._delete_documents(c, [document_id]))

    @staticmethod
    def _delete_documents(c: sqlite3.Connection, document_ids: Sequence[int]) -> None:
        for doc_id in document_ids:
            _drop_passages(c, "document_id = ?", (doc_id,))
            c.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    def add_files(
        self,
        collection_id: int,
        paths: Iterable[str | os.PathLike[str]],
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> IndexReport:
        """Index files (folders are searched for supported files) into the collection.

        Blocking: run it on a worker thread.  ``progress(done, total, file_name)`` is called
        on that thread before each file and once at the end; ``cancel()`` is checked
        between files and inside one (PDF pages, .docx parts, HTML slices, passages).
        Any error reading one file lists it in ``skipped`` with the reason; the rest go on.  Files already indexed and unchanged
        are counted in ``unchanged``; unreadable ones are tried again.
        """
        self.collection(collection_id)  # raises CollectionNotFound
        files: list[Path] = []
        report = IndexReport()
        seen: set[Path] = set()
        for raw in paths:
            p = _resolve(raw)
            candidates: list[Path | Skipped] = list(_walk_supported(p)) if p.is_dir() else [p]
            for f in candidates:
                if isinstance(f, Skipped):
                    report.skipped.append(f)
                    continue
                f = _resolve(f)  # a link inside the folder and its target are one document
                if f not in seen:
                    seen.add(f)
                    files.append(f)
        known = {d.path: d for d in self.documents(collection_id)}
        return self._index_files(collection_id, files, known, report, progress, cancel, retry_unreadable=True)

    def attach_files(
        self,
        conversation_id: str,
        paths: Iterable[str | os.PathLike[str]],
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> IndexReport:
        """:meth:`add_files` into the conversation's attachments (made on first use)."""
        att = self.attachments_collection(conversation_id, create=True)
        assert att is not None
        return self.add_files(att.id, paths, progress, cancel)

    def sync_collection(
        self, collection_id: int, progress: Progress | None = None, cancel: Cancel | None = None
    ) -> IndexReport:
        """Bring the collection up to date with the disk (call it when a collection is opened).

        Changed files (size or mtime, then SHA-256) are re-indexed, files that no longer
        exist are dropped, and a folder collection picks up new supported files; a link to
        a file outside its folder is listed in ``skipped`` (and dropped if an older Hearth
        had indexed its target).  An unreadable file is tried again only when it changed.
        A folder collection whose folder is missing raises :class:`DocumentIndexError` and
        keeps its documents.
        """
        coll = self.collection(collection_id)
        if coll.folder is not None and not coll.folder.is_dir():
            # an unplugged drive or an unmounted share must not empty the collection
            raise DocumentIndexError(
                f"The folder {coll.folder} of “{coll.name}” cannot be found; "
                "if it is on a drive that is not connected, connect it and try again."
            )
        known = {d.path: d for d in self.documents(collection_id)}
        report = IndexReport()
        top = _resolve(coll.folder) if coll.folder is not None else None
        gone = [d for p, d in known.items() if not p.is_file() or (top is not None and not _inside(p, top))]
        if gone:
            ids = [d.id for d in gone]
            self._write(lambda c: self._delete_documents(c, ids))
            report.removed = len(gone)
            for d in gone:
                known.pop(d.path, None)
        files = list(known)
        if coll.folder is not None:
            seen = set(files)
            for f in _walk_supported(coll.folder):
                if isinstance(f, Skipped):
                    report.skipped.append(f)
                    continue
                rf = _resolve(f)
                if rf not in seen:
                    seen.add(rf)
                    files.append(rf)
        return self._index_files(collection_id, files, known, report, progress, cancel, retry_unreadable=False)

    #: A batch of indexed files is written in one transaction once it holds this much text
    #: or is this old: FTS5 writes a new segment at each commit, so one commit per small
    #: file would make indexing several times slower; the batch is prepared outside the
    #: transaction, so the write lock is held only for the inserts.
    BATCH_BYTES = 4 * 1024 * 1024
    BATCH_SECONDS = 0.5

    def _index_files(
        self,
        collection_id: int,
        files: list[Path],
        known: dict[Path, DocumentRecord],
        report: IndexReport,
        progress: Progress | None,
        cancel: Cancel | None,
        retry_unreadable: bool,
    ) -> IndexReport:
        total = len(files)
        batch: list[Callable[[sqlite3.Connection], list[tuple[int, str, str | None]]]] = []
        batch_bytes = 0
        batch_started = time.monotonic()

        def flush() -> None:
            nonlocal batch, batch_bytes, batch_started
            if batch:
                writes, batch = batch, []

                def run(c: sqlite3.Connection) -> None:
                    fts_rows: list[tuple[int, str, str | None]] = []
                    for write in writes:
                        fts_rows.extend(write(c))
                    _index_rows(c, fts_rows)

                try:
                    self._write(run)
                except DocumentIndexError as exc:
                    try:
                        self.collection(collection_id)
                    except CollectionNotFound:
                        raise CollectionNotFound("The collection was deleted while it was being indexed.") from exc
                    raise
            batch_bytes = 0
            batch_started = time.monotonic()

        try:
            for done, path in enumerate(files):
                if cancel is not None and cancel():
                    report.cancelled = True
                    break
                if progress is not None:
                    progress(done, total, path.name)
                try:
                    outcome, write, size = self._prepare(collection_id, path, known.get(path), cancel, retry_unreadable)
                except ExtractionCancelled:
                    report.cancelled = True
                    break
                if write is not None:
                    batch.append(write)
                    batch_bytes += size
                if outcome == "added":
                    report.added += 1
                elif outcome == "updated":
                    report.updated += 1
                elif outcome == "unchanged":
                    report.unchanged += 1
                elif isinstance(outcome, Skipped):
                    report.skipped.append(outcome)
                if batch_bytes >= self.BATCH_BYTES or time.monotonic() - batch_started >= self.BATCH_SECONDS:
                    flush()
        finally:
            flush()  # also on cancel or error: every file read so far is kept
        if progress is not None and not report.cancelled:
            progress(total, total, "")
        return report

    def _prepare(
        self,
        collection_id: int,
        path: Path,
        existing: DocumentRecord | None,
        cancel: Cancel | None,
        retry_unreadable: bool,
    ) -> tuple[str | Skipped, Callable[[sqlite3.Connection], list[tuple[int, str, str | None]]] | None, int]:
        """Read and chunk one file (no lock held); returns the outcome for the report and
        the write that stores it, with the bytes of text it carries."""
        try:
            st = path.stat()
        except OSError:
            st = None
        # nothing to store for these: a missing path is not a document of the collection
        if st is None:
            return (
                Skipped(path, str(UnreadableDocument(path, "does not exist (it may have been moved or deleted)"))),
                None,
                0,
            )
        if not path.is_file():
            return Skipped(path, str(UnreadableDocument(path, "is not a file"))), None, 0
        if existing is not None and existing.mtime == st.st_mtime and existing.size == st.st_size:
            if existing.status is DocumentStatus.INDEXED or not retry_unreadable:
                return "unchanged", None, 0
        data: bytes | None = None
        if existing is not None and existing.status is DocumentStatus.INDEXED:
            # size/mtime moved: a touch or a copy keeps the hash, so compare before re-indexing
            try:
                data = path.read_bytes()
            except OSError:
                data = None
            if data is not None and hashlib.sha256(data).hexdigest() == existing.sha256:
                doc_id = existing.id

                def touch(c: sqlite3.Connection) -> list[tuple[int, str, str | None]]:
                    c.execute(
                        "UPDATE documents SET mtime = ?, size = ? WHERE id = ?", (st.st_mtime, st.st_size, doc_id)
                    )
                    return []

                return "unchanged", touch, 0
        try:
            doc = extract(path, data=data, cancel=cancel)
            passages = chunk_sections(0, doc.sections, self.words, self.overlap, cancel=cancel)
        except ExtractionCancelled:
            raise
        except UnreadableDocument as exc:
            return Skipped(path, str(exc)), self._unreadable_write(collection_id, path, st, exc.reason), 0
        except Exception as exc:  # whatever one file does, the job lists it and goes on
            log.warning("could not index %s", path, exc_info=True)
            reason = f"could not be read ({type(exc).__name__}: {str(exc)[:120]})"
            return (
                Skipped(path, str(UnreadableDocument(path, reason))),
                self._unreadable_write(collection_id, path, st, reason),
                0,
            )
        rows = [(p.ordinal, p.text, p.page, p.heading, p.start_char) for p in passages]
        values = (
            collection_id,
            str(path),
            doc.title,
            doc.kind,
            doc.sha256,
            doc.mtime,
            doc.size,
            DocumentStatus.INDEXED.value,
            len(rows),
            time.time(),
        )

        def write(c: sqlite3.Connection) -> list[tuple[int, str, str | None]]:
            doc_id = c.execute(
                """
                INSERT INTO documents (collection_id, path, title, kind, sha256, mtime, size, status, error,
                                       passages, indexed)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)
                ON CONFLICT (collection_id, path) DO UPDATE SET title = excluded.title, kind = excluded.kind,
                    sha256 = excluded.sha256, mtime = excluded.mtime, size = excluded.size,
                    status = excluded.status, error = NULL, passages = excluded.passages,
                    indexed = excluded.indexed
                RETURNING id
                """,
                values,
            ).fetchone()[0]
            _drop_passages(c, "document_id = ?", (doc_id,))
            return _insert_passages(c, doc_id, rows)

        return ("updated" if existing is not None else "added"), write, sum(len(r[1]) for r in rows)

    @staticmethod
    def _unreadable_write(
        collection_id: int, path: Path, st: os.stat_result | None, reason: str
    ) -> Callable[[sqlite3.Connection], list[tuple[int, str, str | None]]]:
        values = (
            collection_id,
            str(path),
            path.name,
            DocumentStatus.UNREADABLE.value,
            reason,
            st.st_mtime if st else None,
            st.st_size if st else None,
            time.time(),
        )

        def write(c: sqlite3.Connection) -> list[tuple[int, str, str | None]]:
            doc_id = c.execute(
                """
                INSERT INTO documents (collection_id, path, title, status, error, mtime, size, passages, indexed)
                VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)
                ON CONFLICT (collection_id, path) DO UPDATE SET status = excluded.status,
                    error = excluded.error, mtime = excluded.mtime, size = excluded.size, passages = 0,
                    sha256 = NULL, indexed = excluded.indexed
                RETURNING id
                """,
                values,
            ).fetchone()[0]
            _drop_passages(c, "document_id = ?", (doc_id,))
            return []

        return write

    # -- passages --------------------------------------------------------------------------

    _PASSAGE_SQL = """
        SELECT p.id, p.document_id, p.ordinal, p.text, p.page, p.heading, p.start_char,
               d.path, d.title, d.collection_id
        FROM passages p JOIN documents d ON d.id = p.document_id
    """

    @staticmethod
    def _passage_row(r: Sequence[Any]) -> StoredPassage:
        return StoredPassage(
            id=r[0],
            passage=Passage(doc_id=r[1], ordinal=r[2], text=r[3], page=r[4], heading=r[5], start_char=r[6]),
            path=Path(r[7]),
            title=r[8],
            collection_id=r[9],
        )

    def passages(self, document_id: int) -> list[StoredPassage]:
        sql = self._PASSAGE_SQL + " WHERE p.document_id = ? ORDER BY p.ordinal"
        return self._read(lambda c: [self._passage_row(r) for r in c.execute(sql, (document_id,))])

    def get_passages(self, passage_ids: Iterable[int]) -> dict[int, StoredPassage]:
        ids = list(dict.fromkeys(int(i) for i in passage_ids))
        if not ids:
            return {}

        def run(c: sqlite3.Connection) -> dict[int, StoredPassage]:
            out: dict[int, StoredPassage] = {}
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                for r in c.execute(self._PASSAGE_SQL + f" WHERE p.id IN ({marks})", part):
                    out[r[0]] = self._passage_row(r)
            return out

        return self._read(run)

    def search_passages(self, match: str, collection_ids: Sequence[int], limit: int = 24) -> list[tuple[int, float]]:
        """``(passage_id, bm25)`` best first (lower bm25 is better) for an FTS5 ``MATCH``
        expression, within the given collections.  The caller makes ``match`` safe
        (:func:`app.core.documents.retrieval.fts_query`)."""
        ids = [int(i) for i in collection_ids]
        if not ids or not match or limit <= 0:
            return []
        marks = ",".join("?" * len(ids))
        # Matches are ranked first, then filtered by collection: FTS5 must score every match
        # for bm25 anyway, and this keeps the plan from walking whole collections.
        sql = f"""
            WITH m AS MATERIALIZED (
                SELECT rowid AS id, bm25(passages_fts, 1.0, 0.5) AS score
                FROM passages_fts WHERE passages_fts MATCH ?
            )
            SELECT m.id, m.score FROM m
            JOIN passages p ON p.id = m.id
            JOIN documents d ON d.id = p.document_id
            WHERE d.collection_id IN ({marks})
            ORDER BY m.score, m.id
            LIMIT ?
        """
        return self._read(lambda c: [(r[0], r[1]) for r in c.execute(sql, (match, *ids, int(limit)))])

    # -- vectors ---------------------------------------------------------------------------

    def store_vectors(self, passage_ids: Sequence[int], vectors: np.ndarray, model: str = "default") -> None:
        """Keep one embedding per passage (float32), replacing any it had."""
        import numpy as np

        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != len(passage_ids):
            raise ValueError(f"expected {len(passage_ids)} vectors as a 2-D array, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("vectors contain NaN or infinity")
        dim = int(arr.shape[1])
        le = arr.astype("<f4", copy=False)
        rows = [(int(pid), model, dim, le[i].tobytes()) for i, pid in enumerate(passage_ids)]
        self._write(
            lambda c: c.executemany(
                "INSERT INTO vectors (passage_id, model, dim, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (passage_id) DO UPDATE SET model = excluded.model, dim = excluded.dim, "
                "data = excluded.data",
                rows,
            )
        )

    def passages_missing_vectors(
        self, collection_ids: Sequence[int], model: str = "default", limit: int = 256
    ) -> list[tuple[int, str]]:
        """``(passage_id, text)`` still to embed with ``model`` (for the embedding worker)."""
        ids = [int(i) for i in collection_ids]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        sql = f"""
            SELECT p.id, p.text FROM passages p JOIN documents d ON d.id = p.document_id
            LEFT JOIN vectors v ON v.passage_id = p.id AND v.model = ?
            WHERE d.collection_id IN ({marks}) AND v.passage_id IS NULL
            ORDER BY p.id LIMIT ?
        """
        return self._read(lambda c: [(r[0], r[1]) for r in c.execute(sql, (model, *ids, int(limit)))])

    def _vector_matrix(self, collection_ids: Sequence[int] | None, model: str) -> tuple[Any, Any]:
        """(passage ids, row-normalized float32 matrix), cached until the index changes."""
        import numpy as np

        conn = self._conn()
        version = conn.execute("PRAGMA data_version").fetchone()[0]  # other connections' commits
        key = (tuple(sorted(collection_ids)) if collection_ids is not None else None, model)
        stamp = (self._generation, version, id(conn))
        cached = self._vec_cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]

        def run(c: sqlite3.Connection) -> list[tuple[int, int, bytes]]:
            if collection_ids is None:
                return c.execute(
                    "SELECT passage_id, dim, data FROM vectors WHERE model = ? ORDER BY passage_id", (model,)
                ).fetchall()
            ids = [int(i) for i in collection_ids]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            return c.execute(
                f"""SELECT v.passage_id, v.dim, v.data FROM vectors v
                    JOIN passages p ON p.id = v.passage_id JOIN documents d ON d.id = p.document_id
                    WHERE v.model = ? AND d.collection_id IN ({marks}) ORDER BY v.passage_id""",
                (model, *ids),
            ).fetchall()

        rows = self._read(run)
        if not rows:
            result: tuple[Any, Any] = (np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
        else:
            dim = rows[0][1]
            rows = [r for r in rows if r[1] == dim]
            ids_arr = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            mat = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), dim).astype(np.float32)
            norms = np.linalg.norm(mat, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            result = (ids_arr, mat / norms)
        if len(self._vec_cache) > 16:
            self._vec_cache.clear()
        self._vec_cache[key] = (stamp, result)
        return result

    def vector_search(
        self,
        query_vec: Any,
        k: int = 6,
        collection_ids: Sequence[int] | None = None,
        model: str = "default",
    ) -> list[tuple[int, float]]:
        """``(passage_id, cosine similarity)`` of the ``k`` nearest passages, best first."""
        import numpy as np

        ids, mat = self._vector_matrix(collection_ids, model)
        if k <= 0 or len(ids) == 0:
            return []
        q = np.asarray(query_vec, dtype=np.float32).reshape(-1)
        if q.shape[0] != mat.shape[1]:
            raise ValueError(f"the query vector has {q.shape[0]} dimensions, the index has {mat.shape[1]}")
        norm = float(np.linalg.norm(q))
        if not np.isfinite(norm) or norm == 0:
            return []
        sims = mat @ (q / norm)
        k = min(k, len(ids))
        top = np.argpartition(-sims, k - 1)[:k] if k < len(ids) else np.arange(len(ids))
        top = top[np.lexsort((ids[top], -sims[top]))]
        return [(int(ids[i]), float(sims[i])) for i in top]

    # -- housekeeping ----------------------------------------------------------------------

    def verify(self) -> None:
        """Check that the search index matches the passages (FTS5 ``integrity-check``
        against the content table); raises :class:`DocumentIndexError` if not."""
        try:
            self._write(
                lambda c: c.execute("INSERT INTO passages_fts (passages_fts, rank) VALUES ('integrity-check', 1)")
            )
        except DocumentIndexError as exc:
            raise DocumentIndexError("The document search index does not match the documents; rebuild it.") from exc

    def rebuild_search_index(self) -> None:
        """Rebuild the FTS5 index from the stored passages (after :meth:`verify` fails)."""
        self._write(lambda c: c.execute("INSERT INTO passages_fts (passages_fts) VALUES ('rebuild')"))

    def stats(self) -> IndexStats:
        def run(c: sqlite3.Connection) -> tuple[int, int, int, int]:
            return (
                c.execute("SELECT count(*) FROM collections").fetchone()[0],
                c.execute("SELECT count(*) FROM documents").fetchone()[0],
                c.execute("SELECT count(*) FROM passages").fetchone()[0],
                c.execute("SELECT count(*) FROM vectors").fetchone()[0],
            )

        cols, docs, passages, vectors = self._read(run)
        size = 0
        for suffix in ("", "-wal"):
            try:
                size += os.path.getsize(str(self.path) + suffix)
            except OSError:
                pass
        return IndexStats(cols, docs, passages, vectors, size)


__all__ = [
    "Collection",
    "CollectionNotFound",
    "DocumentIndex",
    "DocumentIndexError",
    "DocumentRecord",
    "DocumentStatus",
    "IndexReport",
    "IndexStats",
    "Skipped",
    "StoredPassage",
]
