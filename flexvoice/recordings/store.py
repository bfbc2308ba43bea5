"""Recording rows in SQLite: one per recording, whatever made it (a voicemail step, a whole
call from a flow, the REST API or a live command).

Status moves forward only: in-progress <-> paused -> completed | failed -> deleted. A
deleted row stays (its usage was billed and finance may ask about it); only its file goes.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from flexvoice.storage.engine import Connection, PerEngine, both
from flexvoice.storage.migrate import migrate

Status = Literal["in-progress", "paused", "completed", "failed", "deleted"]
Kind = Literal["message", "call"]
OPEN_STATUSES: tuple[Status, ...] = ("in-progress", "paused")

MIGRATIONS = [
    both(
        """
    CREATE TABLE call_recordings (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        call_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('message', 'call')),
        path TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN
            ('in-progress', 'paused', 'completed', 'failed', 'deleted')),
        channels INTEGER NOT NULL DEFAULT 1,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        duration_seconds REAL,
        size_bytes INTEGER,
        sha256 TEXT,
        billable_seconds INTEGER,
        price_eur TEXT,
        note TEXT,
        callback TEXT,
        created_at TEXT NOT NULL,
        deleted_at TEXT
    );
    CREATE INDEX call_recordings_account ON call_recordings (account, created_at);
    CREATE INDEX call_recordings_call ON call_recordings (call_id);
    CREATE INDEX call_recordings_status ON call_recordings (status);
    """
    ),
    # The call registry's first table of recordings (flexvoice.callrecords' first migration
    # made it before this component existed): its rows become completed messages here, with
    # a note, and the table goes. Created first when missing, so the script runs anywhere.
    # (Never on PostgreSQL: that store began after it.)
    PerEngine(
        """
    CREATE TABLE IF NOT EXISTS recordings (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        call_id TEXT NOT NULL,
        path TEXT NOT NULL,
        started_at TEXT,
        duration_seconds REAL,
        created_at TEXT NOT NULL
    );
    INSERT OR IGNORE INTO call_recordings
        (id, account, call_id, kind, path, status, channels, started_at, duration_seconds,
         note, created_at)
        SELECT id, account, call_id, 'message', path, 'completed', 1,
               COALESCE(started_at, created_at), duration_seconds,
               'moved from the call registry''s first recordings table', created_at
        FROM recordings;
    DROP TABLE recordings;
    """,
        "SELECT 1",
    ),
    # The node that made the recording (Config.node_name): a node starting closes only the
    # recordings it left open itself, never those another node is still making.
    both("ALTER TABLE call_recordings ADD COLUMN node TEXT;"),
]

_COLUMNS = (
    "id, account, call_id, kind, path, status, channels, started_at, ended_at,"
    " duration_seconds, size_bytes, sha256, billable_seconds, price_eur, note, callback,"
    " created_at, deleted_at"
)


@dataclass(frozen=True)
class RecordingRow:
    id: str
    account: str
    call_id: str
    kind: Kind
    path: str  # relative to the recordings folder: <account>/<id>.wav
    status: Status
    channels: int
    started_at: str
    ended_at: str | None
    duration_seconds: float | None
    size_bytes: int | None
    sha256: str | None
    billable_seconds: int | None
    price_eur: str | None
    note: str | None
    callback: str | None
    created_at: str
    deleted_at: str | None = None

    @classmethod
    def started(
        cls,
        rec_id: str,
        *,
        account: str,
        call_id: str,
        kind: Kind,
        path: str,
        channels: int,
        at: str,
        callback: str | None = None,
        status: Status = "in-progress",
    ) -> RecordingRow:
        """A recording just opened: what only its closing knows (length, size, hash, price)
        is still empty."""
        return cls(
            id=rec_id,
            account=account,
            call_id=call_id,
            kind=kind,
            path=path,
            status=status,
            channels=channels,
            started_at=at,
            ended_at=None,
            duration_seconds=None,
            size_bytes=None,
            sha256=None,
            billable_seconds=None,
            price_eur=None,
            note=None,
            callback=callback,
            created_at=at,
        )

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    def resource(self) -> dict[str, Any]:
        """The recording as the API shows it (and its webhooks carry it)."""
        return {
            "id": self.id,
            "account": self.account,
            "call_id": self.call_id,
            "kind": self.kind,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_seconds": self.duration_seconds,
            "size_bytes": self.size_bytes,
            "channels": self.channels,
            "sha256": self.sha256,
            "billable_seconds": self.billable_seconds,
            "price_eur": self.price_eur,
            "note": self.note,
            "created_at": self.created_at,
            "deleted_at": self.deleted_at,
            "url": f"/v1/recordings/{self.id}.wav",
        }


class RecordingStore:
    """The rows in this node's SQLite file or the PostgreSQL store several nodes share;
    `node` names this node there (Config.node_name)."""

    def __init__(self, conn: Connection, node: str | None = None):
        self.conn = conn
        self.node = node
        migrate(conn, "recordings", MIGRATIONS)

    def insert(self, row: RecordingRow) -> None:
        values = [getattr(row, name.strip()) for name in _COLUMNS.split(",")] + [self.node]
        marks = ", ".join("?" for _ in values)
        self.conn.execute(
            f"INSERT INTO call_recordings ({_COLUMNS}, node) VALUES ({marks})", values
        )

    def update(self, row: RecordingRow, **changes: Any) -> RecordingRow:
        new = replace(row, **changes)
        sets = ", ".join(f"{k} = ?" for k in changes)
        self.conn.execute(
            f"UPDATE call_recordings SET {sets} WHERE id = ?", (*changes.values(), row.id)
        )
        return new

    def get(self, rec_id: str, account: str | None = None) -> RecordingRow | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM call_recordings WHERE id = ?", (rec_id,)
        ).fetchone()
        if row is None or (account is not None and row[1] != account):
            return None
        return RecordingRow(*row)

    def list(
        self,
        account: str,
        *,
        call_id: str | None = None,
        include_deleted: bool = True,
        limit: int = 1000,
    ) -> builtins.list[RecordingRow]:
        sql, args = f"SELECT {_COLUMNS} FROM call_recordings WHERE account = ?", [account]
        if call_id is not None:
            sql += " AND call_id = ?"
            args.append(call_id)
        if not include_deleted:
            sql += " AND status != 'deleted'"
        sql += " ORDER BY created_at DESC, id LIMIT ?"
        return [RecordingRow(*r) for r in self.conn.execute(sql, (*args, limit))]

    def with_status(
        self, statuses: Iterable[str], *, mine: bool = False
    ) -> builtins.list[RecordingRow]:
        """Rows in these statuses; with `mine`, only this node's (when it has a name)."""
        wanted: builtins.list[str | None] = list(statuses)
        marks = ", ".join("?" for _ in wanted)
        sql = f"SELECT {_COLUMNS} FROM call_recordings WHERE status IN ({marks})"
        if mine and self.node is not None:
            sql += " AND node = ?"
            wanted.append(self.node)
        rows = self.conn.execute(sql + " ORDER BY created_at", wanted)
        return [RecordingRow(*r) for r in rows]

    def closed_before(self, account: str, before: str) -> builtins.list[RecordingRow]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM call_recordings WHERE account = ?"
            " AND status IN ('completed', 'failed') AND created_at < ?",
            (account, before),
        )
        return [RecordingRow(*r) for r in rows]

    def accounts_with_closed(self) -> builtins.list[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT account FROM call_recordings WHERE status IN ('completed', 'failed')"
        )
        return [str(r[0]) for r in rows]
