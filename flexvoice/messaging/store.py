"""Messages in the node's SQLite, or in the shared PostgreSQL (storage.database): the
message, its parts (the outbound queue), the gateway ids that delivery receipts name, and the
opt-out list.

A message is stored with its parts before anything is sent; the queue is the parts table
itself (status `queued` and `next_attempt_at`), so a restart resumes it. Receipts may arrive
days later and per part: the correlation is here, not in memory.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flexvoice.messaging.model import FINAL
from flexvoice.messaging.queue_store import PartQueue
from flexvoice.messaging.text import Part
from flexvoice.storage.engine import Connection, Script, both
from flexvoice.storage.migrate import migrate

_TABLES = """
    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
        origin TEXT NOT NULL,
        from_addr TEXT NOT NULL,
        to_addr TEXT NOT NULL,
        body TEXT NOT NULL,
        encoding TEXT NOT NULL,
        segments INTEGER NOT NULL,
        status TEXT NOT NULL,
        gateway TEXT,
        error_code INTEGER,
        error_message TEXT,
        price_eur TEXT,
        price_note TEXT,
        status_callback TEXT,
        billed INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        sent_at REAL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX messages_account ON messages (account, created_at);
    CREATE TABLE message_parts (
        message_id TEXT NOT NULL REFERENCES messages (id),
        seq INTEGER NOT NULL,
        payload BLOB NOT NULL,
        data_coding INTEGER NOT NULL,
        esm_class INTEGER NOT NULL,
        status TEXT NOT NULL,
        gateway_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        PRIMARY KEY (message_id, seq)
    );
    CREATE INDEX message_parts_due ON message_parts (status, next_attempt_at);
    CREATE TABLE message_gateway_ids (
        gateway TEXT NOT NULL,
        key TEXT NOT NULL,
        message_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (gateway, key, message_id, seq)
    );
    CREATE TABLE sms_opt_outs (
        sender TEXT NOT NULL,
        number TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (sender, number)
    );
    """
MIGRATIONS: list[Script] = [
    both(_TABLES),
    # Several nodes on one PostgreSQL: the node that claimed a part (a restart, or the node
    # that finds it lost, puts back only its claims), and the node that made a message (a
    # verification code lives in that node's memory only: no other node sends its parts).
    both("""
    ALTER TABLE message_parts ADD COLUMN claimed_by TEXT;
    ALTER TABLE messages ADD COLUMN node TEXT;
    """),
]


@dataclass
class MessageRow:
    id: str
    account: str
    direction: str
    origin: str
    from_addr: str
    to_addr: str
    body: str
    encoding: str
    segments: int
    status: str
    gateway: str | None
    error_code: int | None
    error_message: str | None
    price_eur: str | None
    price_note: str | None
    status_callback: str | None
    billed: int
    created_at: float
    updated_at: float
    sent_at: float | None
    expires_at: float

    @property
    def final(self) -> bool:
        return self.status in FINAL


_FIELDS = frozenset(MessageRow.__dataclass_fields__)
_COLUMNS = ", ".join(MessageRow.__dataclass_fields__)
_INSERT = (
    f"INSERT INTO messages ({_COLUMNS}, node)"
    f" VALUES ({', '.join('?' * (len(MessageRow.__dataclass_fields__) + 1))})"
)
_M_COLUMNS = ", ".join("m." + name for name in MessageRow.__dataclass_fields__)


def new_id() -> str:
    return "SM" + uuid.uuid4().hex


class MessageReader:
    """The API's reads of messages, on any connection to the store (a pooled one on
    PostgreSQL: flexvoice.api.sharedreads)."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def get(self, message_id: str, account: str | None = None) -> MessageRow | None:
        sql = f"SELECT {_COLUMNS} FROM messages WHERE id = ?"
        args: list[Any] = [message_id]
        if account is not None:
            sql += " AND account = ?"
            args.append(account)
        row = self.conn.execute(sql, args).fetchone()
        return MessageRow(*row) if row else None

    def list(
        self,
        account: str,
        *,
        status: str | None = None,
        to: str | None = None,
        since: float | None = None,
        limit: int = 50,
        origins: tuple[str, ...] = ("api", "flow", "gateway"),
    ) -> list[MessageRow]:
        sql = f"SELECT {_COLUMNS} FROM messages WHERE account = ?"
        args: list[Any] = [account]
        sql += f" AND origin IN ({', '.join('?' * len(origins))})"
        args += origins
        for column, value in (("status", status), ("to_addr", to)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if since is not None:
            sql += " AND created_at >= ?"
            args.append(since)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        args.append(limit)
        return [MessageRow(*r) for r in self.conn.execute(sql, args)]


class MessageStore(MessageReader, PartQueue):
    """Messages and their parts (the queue's side is PartQueue's), and the opt-out list."""

    def __init__(self, conn: Connection, node: str = "local"):
        super().__init__(conn)
        self.node = node  # this node's name in claims
        migrate(conn, "messaging", MIGRATIONS)

    # ---- writing ---------------------------------------------------------------------

    def add_outbound(
        self,
        *,
        message_id: str,
        account: str,
        origin: str,
        from_addr: str,
        to_addr: str,
        body: str,
        encoding: str,
        parts: list[Part],
        segments: int,
        gateway: str,
        status_callback: str | None,
        now: float,
        expires_at: float,
        price_eur: str | None,
        price_note: str | None,
    ) -> MessageRow:
        """The message and its parts in one transaction: queued, due at once."""
        row = MessageRow(
            message_id, account, "outbound", origin, from_addr, to_addr, body, encoding,
            segments, "queued", gateway, None, None, price_eur, price_note, status_callback,
            0, now, now, None, expires_at,
        )  # fmt: skip
        with self.tx():
            self._insert(row)
            self.conn.executemany(
                "INSERT INTO message_parts (message_id, seq, payload, data_coding, esm_class,"
                " status, next_attempt_at) VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                [
                    (message_id, i, p.payload, p.data_coding, p.esm_class, now)
                    for i, p in enumerate(parts)
                ],
            )
        return row

    def add_inbound(
        self,
        *,
        account: str,
        from_addr: str,
        to_addr: str,
        body: str,
        encoding: str,
        segments: int,
        now: float,
        gateway: str,
    ) -> MessageRow:
        row = MessageRow(
            new_id(), account, "inbound", "gateway", from_addr, to_addr, body, encoding,
            segments, "received", gateway, None, None, None, None, None, 1, now, now, None, now,
        )  # fmt: skip
        self._insert(row)
        return row

    def _insert(self, row: MessageRow) -> None:
        self.conn.execute(_INSERT, (*vars(row).values(), self.node))

    def update_message(self, message_id: str, *, unbilled: bool = False, **fields: Any) -> bool:
        """Write `fields`; with `unbilled`, only while the message is not billed yet. True
        when the row was written."""
        names = [k for k in fields if k in _FIELDS]  # column names only, never input
        assigns = ", ".join(f"{k} = ?" for k in names)
        guard = " AND billed = 0" if unbilled else ""
        cur = self.conn.execute(
            f"UPDATE messages SET {assigns} WHERE id = ?{guard}",
            (*(fields[k] for k in names), message_id),
        )
        return cur.rowcount > 0

    def redact(self, message_id: str, body: str) -> None:
        """Forget a verification code once the gateway has it: body and part payloads."""
        with self.tx():
            self.conn.execute("UPDATE messages SET body = ? WHERE id = ?", (body, message_id))
            self.conn.execute(
                "UPDATE message_parts SET payload = ? WHERE message_id = ?"
                " AND status NOT IN ('queued', 'sending')",
                (b"", message_id),
            )

    # ---- reading ---------------------------------------------------------------------

    def with_parts(self, message_id: str) -> tuple[MessageRow, list[str]] | None:
        """The message and its parts' statuses in order, in one statement (the queue's
        refresh after every sent part)."""
        rows = self.conn.execute(
            f"SELECT {_M_COLUMNS}, p.status FROM messages m JOIN message_parts p"
            " ON p.message_id = m.id WHERE m.id = ? ORDER BY p.seq",
            (message_id,),
        ).fetchall()
        if not rows:
            return None
        return MessageRow(*rows[0][:-1]), [str(r[-1]) for r in rows]

    def counts(self) -> dict[str, int]:
        return {
            str(r[0]): int(r[1])
            for r in self.conn.execute("SELECT status, count(*) FROM messages GROUP BY status")
        }

    # ---- opt-outs --------------------------------------------------------------------

    def opt_out(self, sender: str, number: str, now: float) -> None:
        self.conn.execute(
            "INSERT INTO sms_opt_outs (sender, number, at) VALUES (?, ?, ?)"
            " ON CONFLICT (sender, number) DO UPDATE SET at = excluded.at",
            (sender, number, now),
        )

    def opt_in(self, sender: str, number: str) -> None:
        self.conn.execute(
            "DELETE FROM sms_opt_outs WHERE sender = ? AND number = ?", (sender, number)
        )

    def opted_out(self, sender: str, number: str) -> bool:
        return (
            self.conn.execute(
                "SELECT 1 FROM sms_opt_outs WHERE sender = ? AND number = ?", (sender, number)
            ).fetchone()
            is not None
        )
