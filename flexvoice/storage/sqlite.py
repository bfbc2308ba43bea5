"""SQLite connections: the embedded store of one node (storage.database as a file path).

`migrate` lives in flexvoice/storage/migrate.py and serves both engines; it is re-exported
here for the stores that import it from this module.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flexvoice.errors import UserError
from flexvoice.storage.migrate import ensure_migrations_table, migrate

__all__ = ["SqliteConnection", "connect", "migrate"]


class SqliteConnection(sqlite3.Connection):
    """sqlite3's connection, remembering the components whose schema it checked (as
    PgConnection does): `migrate` then costs nothing on a hot path (an account read per API
    request checked the schema with a query of its own, 55 us of 85)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.migrated: set[tuple[str, int]] = set()
        self.turn: object | None = None  # flexvoice.storage.turn's group (made on first use)


def connect(path: Path | str) -> SqliteConnection:
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
        conn = sqlite3.connect(
            str(path),
            timeout=30,
            isolation_level=None,
            check_same_thread=False,
            factory=SqliteConnection,
        )
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise UserError(f"cannot open the database {path}: {exc}") from None
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.row_factory = sqlite3.Row
    ensure_migrations_table(conn)
    return conn
