"""Small SQLite helpers shared by the stores that own a database (conversations, documents)."""

from __future__ import annotations

import logging
import os
import sqlite3

log = logging.getLogger(__name__)


def connect(
    path: str | os.PathLike[str],
    *,
    timeout: float,
    writer: bool = True,
    cache_kib: int | None = None,
    what: str = "database",
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any thread.

    A writer puts the file in WAL mode (readers never block the writer, a crash never
    leaves a half-written page), syncs at commit points only (NORMAL: durable across an
    app crash, at most the last commits lost on power loss), enforces foreign keys and
    cuts the WAL back to 64 MB after a big write.  A reader is query-only.  Raises
    ``sqlite3.Error``; the caller words it for its users."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        if writer:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("%s is in %s mode, not WAL", what, mode)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_size_limit = 67108864")
        else:
            conn.execute("PRAGMA query_only = ON")
        if cache_kib:
            conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        conn.execute("PRAGMA temp_store = MEMORY")
    except BaseException:
        conn.close()
        raise
    return conn


def split_sql(script: str) -> list[str]:
    """The statements of a migration script, so each migration can run inside one explicit
    transaction (``executescript`` would commit first)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not current.strip():
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def run_migrations(conn: sqlite3.Connection, migrations: list[str], newer: Exception) -> int:
    """Bring the schema from ``PRAGMA user_version`` up to ``len(migrations)``; returns the
    version found. Each step runs in its own transaction with its version bump, so a crash
    mid-migration leaves the previous version intact; a newer database raises ``newer``."""
    found: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > len(migrations):
        raise newer
    for version in range(found, len(migrations)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in split_sql(migrations[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found
