"""Small SQLite helpers shared by the stores that own a database (conversations, documents)."""

from __future__ import annotations

import sqlite3


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
    found = conn.execute("PRAGMA user_version").fetchone()[0]
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
