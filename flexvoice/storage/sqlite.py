"""SQLite connections and per-component schema migrations.

Each component (accounts, metering, api, calls) owns its tables and a list of migration
scripts; `migrate(conn, "metering", SCRIPTS)` applies those not yet applied, in one
transaction each, so a crash never leaves a half-made schema.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from flexvoice.errors import UserError


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (creating folders) with WAL, foreign keys and a busy timeout for concurrent writers."""
    if str(path) != ":memory:":
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create the folder for the database {p}: {exc.strerror}"
            ) from None
    try:
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise UserError(f"cannot open the database {path}: {exc}") from None
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.row_factory = sqlite3.Row
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " component TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (component, version))"
    )
    return conn


def migrate(conn: sqlite3.Connection, component: str, scripts: Sequence[str]) -> None:
    """Apply the scripts of `component` not yet applied (version = index + 1)."""
    done = {
        row[0]
        for row in conn.execute(
            "SELECT version FROM schema_migrations WHERE component = ?", (component,)
        )
    }
    for version, script in enumerate(scripts, start=1):
        if version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check under the write lock: another process may have migrated meanwhile.
            if conn.execute(
                "SELECT 1 FROM schema_migrations WHERE component = ? AND version = ?",
                (component, version),
            ).fetchone():
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (component, version) VALUES (?, ?)",
                (component, version),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    # executescript() would commit our transaction; split on complete statements instead
    # (complete_statement() knows about semicolons inside strings and triggers).
    out, buf = [], ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                out.append(buf.strip())
            buf = ""
    return out
