"""The call registry's tables and rows: calls (every leg of every call tree is one row, a
child pointing at its parent) and their trace events. Nothing here decides anything;
flexvoice.calls does. (Recordings are flexvoice.recordings' table, `call_recordings`.)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flexvoice.storage.engine import both

FINAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "busy", "no-answer", "failed", "canceled", "redirected"}
)

_FIRST = """
    CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        from_number TEXT NOT NULL,
        to_number TEXT NOT NULL,
        status TEXT NOT NULL,
        sip_status INTEGER,
        cause TEXT,
        flow TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        answered_at TEXT,
        ended_at TEXT,
        billable_seconds INTEGER,
        price_eur TEXT,
        status_callback TEXT,
        status_events TEXT NOT NULL DEFAULT '[]',
        record INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX calls_account ON calls (account, created_at);
    CREATE TABLE call_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX call_events_call ON call_events (call_id, seq);
"""

MIGRATIONS = [
    # Databases made before issue 13 also got a `recordings` table from this first script (id,
    # account, call_id, path, started_at, duration_seconds, created_at). flexvoice.recordings
    # owns recordings now: its second migration moves any such rows into call_recordings and
    # drops the table, so old and new databases end with the same schema.
    both(
        _FIRST,
        # SQLite's implicit rowid made explicit: "ORDER BY created_at, rowid" (the order the
        # legs were dialled) reads the same on both engines.
        _FIRST.replace("CREATE TABLE calls (", "CREATE TABLE calls (\n        rowid BIGSERIAL,", 1),
    ),
    # Why price_eur is null (an unpriced destination, no tariff): said, not left to guess.
    both("ALTER TABLE calls ADD COLUMN price_note TEXT;"),
    # The call tree: a dialled leg points at the call that dialled it; every leg says who
    # ended it and the SIP reason of its end; price_eur stays the leg's own price.
    both(
        """
    ALTER TABLE calls ADD COLUMN parent_call_id TEXT;
    ALTER TABLE calls ADD COLUMN ended_by TEXT;
    ALTER TABLE calls ADD COLUMN reason TEXT;
    CREATE INDEX calls_parent ON calls (parent_call_id);
    """
    ),
    # The node that carries the call (Config.node_name): with several nodes on one store, a
    # node starting closes only its own calls left open, never another node's live ones. The
    # statistics' catch-up finds ended calls by their end (the index it made itself before).
    both(
        """
    ALTER TABLE calls ADD COLUMN node TEXT;
    CREATE INDEX calls_open ON calls (node, status);
    CREATE INDEX IF NOT EXISTS stats_calls_ended_at ON calls (ended_at);
    """
    ),
]


@dataclass(frozen=True)
class CallPrice:
    """What one answered leg costs: billable seconds as the tariff counts them (its
    increments), the price, or no price and the reason (the destination is not priced, the
    account has no tariff ...)."""

    billable_seconds: int
    price_eur: Decimal | None
    unpriced_reason: str | None = None


@dataclass(frozen=True)
class CallRecord:
    id: str
    account: str
    direction: str
    from_number: str
    to_number: str
    status: str
    sip_status: int | None
    cause: str | None
    flow: str | None
    created_at: str
    started_at: str | None
    answered_at: str | None
    ended_at: str | None
    billable_seconds: int | None
    price_eur: str | None  # this leg's own price; the resource adds its legs'
    status_callback: str | None
    status_events: tuple[str, ...]
    record: bool
    price_note: str | None = None
    parent_call_id: str | None = None
    ended_by: str | None = None
    reason: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


COLUMNS = (
    "id, account, direction, from_number, to_number, status, sip_status, cause, flow,"
    " created_at, started_at, answered_at, ended_at, billable_seconds, price_eur,"
    " status_callback, status_events, record, price_note, parent_call_id, ended_by, reason"
)


def call_row(row: Any) -> CallRecord:
    values = list(row)
    values[16] = tuple(json.loads(values[16]))
    values[17] = bool(values[17])
    return CallRecord(*values)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def seconds_between(start: str, end: str) -> int:
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(0, round(delta.total_seconds()))
