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
