"""SQLite connections: the embedded store of one node (storage.database as a file path).

`migrate` lives in flexvoice/storage/migrate.py and serves both engines; it is re-exported
here for the stores that import it from this module.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flexvoice.errors import UserError
from flexvoice.storage.migrate import ensure_migrations_table, migrate

__all__ = ["connect", "migrate"]


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
    ensure_migrations_table(conn)
    return conn
