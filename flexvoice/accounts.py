"""Accounts: who owns numbers, flows, keys and usage, which tariff prices them, and whether
they may take calls (a suspended account's numbers answer 403)."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from flexvoice.errors import UserError
from flexvoice.storage.sqlite import migrate
from flexvoice.yamlsrc import did_you_mean

Status = Literal["active", "suspended"]
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

MIGRATIONS = [
    """
    CREATE TABLE accounts (
        name TEXT PRIMARY KEY,
        tariff TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
        created_at TEXT NOT NULL
    );
    """
]


@dataclass(frozen=True)
class Account:
    name: str
    tariff: str
    status: Status
    created_at: str


def ensure_schema(conn: sqlite3.Connection) -> None:
    migrate(conn, "accounts", MIGRATIONS)


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UserError(
            f"account name '{name}' is not allowed: use lower-case letters, digits, '-' and '_' "
            "(at most 63, starting with a letter or digit)"
        )
    return name


def check_tariff(tariff: str, tariffs_dir: Path) -> str:
    """The tariff must be a file `<tariff>.yaml` in the tariff folder (cfg.paths.tariffs)."""
    if not (tariffs_dir / f"{tariff}.yaml").is_file():
        known = sorted(p.stem for p in tariffs_dir.glob("*.yaml"))
        raise UserError(
            f"no tariff '{tariff}' in {tariffs_dir}{did_you_mean(tariff, known)} "
            f"(known: {', '.join(known) or 'none'})"
        )
    return tariff


def create_account(
    conn: sqlite3.Connection, name: str, tariff: str, tariffs_dir: Path | None = None
) -> Account:
    """Create; with `tariffs_dir` (cfg.path(cfg.paths.tariffs)) the tariff must exist there.
    Callers facing users (CLI, admin API) pass it; None is for tests and internal seeding."""
    ensure_schema(conn)
    check_name(name)
    if tariffs_dir is not None:
        check_tariff(tariff, tariffs_dir)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        conn.execute(
            "INSERT INTO accounts (name, tariff, status, created_at) VALUES (?, ?, 'active', ?)",
            (name, tariff, created),
        )
    except sqlite3.IntegrityError:
        raise UserError(f"account '{name}' already exists") from None
    return Account(name, tariff, "active", created)


def get_account(conn: sqlite3.Connection, name: str) -> Account | None:
    ensure_schema(conn)
    row = conn.execute(
        "SELECT name, tariff, status, created_at FROM accounts WHERE name = ?", (name,)
    ).fetchone()
    return Account(*row) if row else None


def list_accounts(conn: sqlite3.Connection) -> list[Account]:
    ensure_schema(conn)
    return [
        Account(*row)
        for row in conn.execute(
            "SELECT name, tariff, status, created_at FROM accounts ORDER BY name"
        )
    ]


def set_status(conn: sqlite3.Connection, name: str, status: Status) -> Account:
    ensure_schema(conn)
    cur = conn.execute("UPDATE accounts SET status = ? WHERE name = ?", (status, name))
    if cur.rowcount == 0:
        raise UserError(f"no account '{name}'; create it with 'flexvoice accounts create {name}'")
    account = get_account(conn, name)
    assert account is not None
    return account
