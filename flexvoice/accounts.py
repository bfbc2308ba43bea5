"""Accounts: who owns numbers, flows, keys and usage, which tariff prices them, and whether
they may take calls (a suspended account's numbers answer 403)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from flexvoice.errors import UserError
from flexvoice.storage import readcache
from flexvoice.storage.engine import (
    Connection,
    IntegrityError,
    PerEngine,
    Script,
    write_transaction,
)
from flexvoice.storage.migrate import migrate
from flexvoice.yamlwords import did_you_mean

Status = Literal["active", "suspended"]
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

_TABLE = """
    CREATE TABLE accounts (
        name TEXT{collate} PRIMARY KEY,
        tariff TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
        created_at TEXT NOT NULL
    );
    """
MIGRATIONS: list[Script] = [
    # Names sort by byte on both engines (PostgreSQL's default collation follows the locale).
    PerEngine(sqlite=_TABLE.format(collate=""), postgresql=_TABLE.format(collate=' COLLATE "C"')),
    # The visual designer option: the open `designer` usage period, when switched on.
    """
    ALTER TABLE accounts ADD COLUMN designer_usage_id TEXT;
    ALTER TABLE accounts ADD COLUMN designer_from TEXT;
    """,
    # Days a closed recording's audio is kept (NULL: the default, 90 days).
    "ALTER TABLE accounts ADD COLUMN recording_retention_days INTEGER;",
]


@dataclass(frozen=True)
class Account:
    name: str
    tariff: str
    status: Status
    created_at: str


def ensure_schema(conn: Connection) -> None:
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
    conn: Connection, name: str, tariff: str, tariffs_dir: Path | None = None
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
    except IntegrityError:
        raise UserError(f"account '{name}' already exists") from None
    readcache.changed()  # a number of this account may be cached as having none
    return Account(name, tariff, "active", created)


def get_account(conn: Connection, name: str) -> Account | None:
    ensure_schema(conn)
    row = conn.execute(
        "SELECT name, tariff, status, created_at FROM accounts WHERE name = ?", (name,)
    ).fetchone()
    return Account(*row) if row else None


def list_accounts(conn: Connection) -> list[Account]:
    ensure_schema(conn)
    return [
        Account(*row)
        for row in conn.execute(
            "SELECT name, tariff, status, created_at FROM accounts ORDER BY name"
        )
    ]


def set_status(conn: Connection, name: str, status: Status) -> Account:
    ensure_schema(conn)
    cur = conn.execute("UPDATE accounts SET status = ? WHERE name = ?", (status, name))
    readcache.changed()  # the numbers' routes cached for calls say whether it is suspended
    if cur.rowcount == 0:
        raise UserError(f"no account '{name}'; create it with 'flexvoice accounts create {name}'")
    account = get_account(conn, name)
    assert account is not None
    return account


def designer_enabled(conn: Connection, name: str) -> bool:
    ensure_schema(conn)
    row = conn.execute("SELECT designer_usage_id FROM accounts WHERE name = ?", (name,)).fetchone()
    return bool(row and row[0])


def set_designer(
    conn: Connection,
    name: str,
    on: bool,
    record: Callable[[dict[str, Any]], None] | None = None,
) -> bool:
    """Switch the visual designer option; True when it changed. On opens a `designer` usage
    period (priced per started calendar month by the tariff), off closes it: one event id
    recorded twice, the second time with `active_to`, as numbers do. Events are recorded once
    the change committed."""
    ensure_schema(conn)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    event: dict[str, Any] | None = None
    with write_transaction(conn, "accounts"):
        row = conn.execute(
            "SELECT designer_usage_id, designer_from FROM accounts WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise UserError(
                f"no account '{name}'; create it with 'flexvoice accounts create {name}'"
            )
        usage_id, since = row[0], row[1]
        if on and usage_id is None:
            # The random part keeps two periods opened within the same second apart.
            usage_id = f"designer:{name}:{now}:{uuid.uuid4().hex[:8]}"
            conn.execute(
                "UPDATE accounts SET designer_usage_id = ?, designer_from = ? WHERE name = ?",
                (usage_id, now, name),
            )
            event = _designer_event(usage_id, name, now, None)
        elif not on and usage_id is not None:
            conn.execute(
                "UPDATE accounts SET designer_usage_id = NULL, designer_from = NULL WHERE name = ?",
                (name,),
            )
            # A period closed in the second it opened still lasts one second (active_to must
            # follow active_from); it is billed for its month either way.
            until = max(now, _next_second(since))
            event = _designer_event(usage_id, name, since, until)
    if event is not None and record is not None:
        record(event)
    return event is not None


def _next_second(moment: str) -> str:
    return (datetime.fromisoformat(moment) + timedelta(seconds=1)).isoformat(timespec="seconds")


def _designer_event(
    usage_id: str, account: str, active_from: str, active_to: str | None
) -> dict[str, Any]:
    return {
        "id": usage_id,
        "account": account,
        "kind": "designer",
        "active_from": active_from,
        "active_to": active_to,
    }


RETENTION_RE = re.compile(r"^(\d{1,5})d$")


def parse_retention(text: str) -> int:
    """Days from '30d' (or '30'): how long recordings are kept."""
    match = RETENTION_RE.match(text.strip()) or re.match(r"^(\d{1,5})$", text.strip())
    if match is None or int(match.group(1)) < 1:
        raise UserError(
            f"recording retention '{text}' is not a number of days; write e.g. '30d' or '90d' "
            "(at least 1 day)"
        )
    return int(match.group(1))


def set_recording_retention(conn: Connection, name: str, days: int) -> None:
    ensure_schema(conn)
    cur = conn.execute(
        "UPDATE accounts SET recording_retention_days = ? WHERE name = ?", (days, name)
    )
    if cur.rowcount == 0:
        raise UserError(f"no account '{name}'; create it with 'flexvoice accounts create {name}'")


def recording_retention_days(conn: Connection, name: str) -> int | None:
    """The account's retention in days, or None for the default (or no such account)."""
    ensure_schema(conn)
    row = conn.execute(
        "SELECT recording_retention_days FROM accounts WHERE name = ?", (name,)
    ).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else None
