"""The `numbers` table: its schema, a row as a `Number`, and the writes both the registry and
the numbers.yaml sync make (one transaction, whose usage events are recorded once committed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flexvoice.accounts import ensure_schema as ensure_accounts_schema
from flexvoice.numbers.usage import UsageSink, number_event, usage_id
from flexvoice.storage import readcache
from flexvoice.storage.engine import Connection, write_transaction
from flexvoice.storage.migrate import migrate

MIGRATIONS = [
    """
    CREATE TABLE numbers (
        e164 TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        flow TEXT,
        prompt TEXT,
        source TEXT NOT NULL CHECK (source IN ('yaml', 'api')),
        forward_to TEXT,
        continuity_active INTEGER NOT NULL DEFAULT 0,
        active_from TEXT NOT NULL,
        usage_id TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        CHECK ((flow IS NULL) != (prompt IS NULL))
    );
    CREATE INDEX numbers_account ON numbers (account, e164);
    """
]


@dataclass(frozen=True)
class Number:
    e164: str
    account: str
    flow: str | None
    prompt: str | None
    source: str  # "yaml" (sip/numbers.yaml owns it) or "api"
    forward_to: str | None
    continuity_active: bool
    active_from: str
    account_status: str  # "active", "suspended", or "missing" when the account was deleted

    @property
    def suspended(self) -> bool:
        """The SIP layer answers 403 to an INVITE for this number when true."""
        return self.account_status != "active"

    @property
    def continuity_target(self) -> str | None:
        """Where the next call goes instead of the flow, when Voice Continuity is switched on."""
        return self.forward_to if self.continuity_active and self.forward_to else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.e164,
            "account": self.account,
            "flow": self.flow,
            "prompt": self.prompt,
            "managed_by": "numbers.yaml" if self.source == "yaml" else "api",
            "continuity": {"forward_to": self.forward_to, "active": self.continuity_active},
            "active_from": self.active_from,
        }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def ensure_schema(conn: Connection) -> None:
    ensure_accounts_schema(conn)
    migrate(conn, "numbers", MIGRATIONS)


SELECT = (
    "SELECT n.e164, n.account, n.flow, n.prompt, n.source, n.forward_to, n.continuity_active,"
    " n.active_from, COALESCE(a.status, 'missing') FROM numbers n"
    " LEFT JOIN accounts a ON a.name = n.account"
)


def row_number(row: Any) -> Number:
    return Number(
        e164=row[0],
        account=row[1],
        flow=row[2],
        prompt=row[3],
        source=row[4],
        forward_to=row[5],
        continuity_active=bool(row[6]),
        active_from=row[7],
        account_status=row[8],
    )


@contextmanager
def transaction(conn: Connection, sink: UsageSink | None) -> Iterator[list[dict[str, Any]]]:
    """One write transaction; the usage events appended to the list it gives are recorded only
    once it committed."""
    events: list[dict[str, Any]] = []
    try:
        with write_transaction(conn, "flexvoice.numbers"):
            yield events
    finally:
        readcache.changed()  # the routes cached for calls (also after a failed write)
    if sink is not None:
        for event in events:
            sink.record(event)


def insert(
    conn: Connection,
    e164: str,
    account: str,
    flow: str | None,
    prompt: str | None,
    source: str,
    when: str,
) -> dict[str, Any]:
    """Add a number inside a transaction; returns the usage event that opens its period."""
    period = usage_id(e164, when)
    conn.execute(
        "INSERT INTO numbers (e164, account, flow, prompt, source, active_from,"
        " usage_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (e164, account, flow, prompt, source, when, period, when),
    )
    return number_event(period, account, e164, when, None)


def remove(conn: Connection, e164: str) -> dict[str, Any]:
    """Delete inside a transaction; returns the usage event that closes the period."""
    row = conn.execute(
        "SELECT account, active_from, usage_id FROM numbers WHERE e164 = ?", (e164,)
    ).fetchone()
    conn.execute("DELETE FROM numbers WHERE e164 = ?", (e164,))
    return number_event(row[2], row[0], e164, row[1], now())
