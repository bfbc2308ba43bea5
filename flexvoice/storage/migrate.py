"""Per-component schema migrations, one list of scripts serving both engines.

Each component (accounts, metering, api, calls) owns its tables and a list of migration
scripts; `migrate(conn, "metering", SCRIPTS)` applies those not yet applied, in one
transaction each, so a crash never leaves a half-made schema. A script is plain SQL both
engines take, or a `PerEngine` pair where they differ. Nodes starting together against one
PostgreSQL take turns (an advisory lock), so each script runs once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from flexvoice.storage.engine import Connection, PerEngine, Script, is_postgres, write_transaction
from flexvoice.storage.postgres import PgConnection

_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " component TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (component, version))"
)
_LOCK = "flexvoice.schema_migrations"


def ensure_migrations_table(conn: Connection) -> None:
    if is_postgres(conn):
        # CREATE TABLE IF NOT EXISTS races with itself on PostgreSQL: take turns.
        with write_transaction(conn, _LOCK):
            conn.execute(_TABLE)
    else:
        conn.execute(_TABLE)


def migrate(conn: Connection, component: str, scripts: Sequence[Script]) -> None:
    """Apply the scripts of `component` not yet applied (version = index + 1)."""
    # Checked once per connection (SQLite's from storage.sqlite.connect, PostgreSQL's) and
    # list of scripts: the schema only grows while a connection is open.
    migrated: set[tuple[str, int]] | None = getattr(conn, "migrated", None)
    checked = (component, len(scripts))
    if migrated is not None and checked in migrated:
        return
    if isinstance(conn, PgConnection):
        ensure_migrations_table(conn)
    done = {
        row[0]
        for row in conn.execute(
            "SELECT version FROM schema_migrations WHERE component = ?", (component,)
        )
    }
    for version, script in enumerate(scripts, start=1):
        if version in done:
            continue
        with write_transaction(conn, _LOCK):
            # Re-check under the write lock: another process may have migrated meanwhile.
            if conn.execute(
                "SELECT 1 FROM schema_migrations WHERE component = ? AND version = ?",
                (component, version),
            ).fetchone():
                continue
            text = script.for_(conn) if isinstance(script, PerEngine) else script
            for statement in statements(text):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (component, version) VALUES (?, ?)",
                (component, version),
            )
    if migrated is not None:
        migrated.add(checked)


def statements(script: str) -> list[str]:
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
