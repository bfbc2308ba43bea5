"""Verifications in the node's SQLite, or in the shared PostgreSQL (storage.database). Only
the code's HMAC is stored. Every check goes through one guarded UPDATE, so the count of
checks is atomic: two concurrent checks (two requests, two nodes on one database) can never
both pass the limit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flexvoice.storage.engine import Connection, Script, both, write_transaction
from flexvoice.storage.migrate import migrate

_TABLES = """
    CREATE TABLE verifications (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        to_addr TEXT NOT NULL,
        channel TEXT NOT NULL,
        locale TEXT NOT NULL,
        code_length INTEGER NOT NULL,
        code_mac TEXT NOT NULL,
        status TEXT NOT NULL,
        checks INTEGER NOT NULL DEFAULT 0,
        sends INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        price_eur TEXT,
        message_id TEXT,
        call_id TEXT
    );
    CREATE INDEX verifications_to ON verifications (account, to_addr, status);
    CREATE TABLE verification_sends (
        to_addr TEXT NOT NULL,
        prefix TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX verification_sends_to ON verification_sends (to_addr, at);
    CREATE INDEX verification_sends_prefix ON verification_sends (prefix, at);
    """
MIGRATIONS: list[Script] = [both(_TABLES)]


@dataclass
class VerificationRow:
    id: str
    account: str
    to_addr: str
    channel: str
    locale: str
    code_length: int
    code_mac: str
    status: str
    checks: int
    sends: int
    created_at: float
    expires_at: float
    price_eur: str | None
    message_id: str | None
    call_id: str | None


_COLUMNS = ", ".join(VerificationRow.__dataclass_fields__)
_PLACEHOLDERS = ", ".join("?" * len(VerificationRow.__dataclass_fields__))


def new_id() -> str:
    return "VE" + uuid.uuid4().hex


class VerificationStore:
    def __init__(self, conn: Connection):
        self.conn = conn
        migrate(conn, "verify", MIGRATIONS)

    def get(self, verification_id: str, account: str) -> VerificationRow | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM verifications WHERE id = ? AND account = ?",
            (verification_id, account),
        ).fetchone()
        return VerificationRow(*row) if row else None

    def pending_for(
        self, account: str, to: str, channel: str, now: float
    ) -> VerificationRow | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM verifications WHERE account = ? AND to_addr = ?"
            " AND channel = ? AND status = 'pending' AND expires_at > ?"
            " ORDER BY created_at DESC LIMIT 1",
            (account, to, channel, now),
        ).fetchone()
        return VerificationRow(*row) if row else None

    def create(self, row: VerificationRow) -> None:
        self.conn.execute(
            f"INSERT INTO verifications ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",
            tuple(getattr(row, f) for f in VerificationRow.__dataclass_fields__),
        )

    def set_code(self, verification_id: str, code_mac: str) -> None:
        self.conn.execute(
            "UPDATE verifications SET code_mac = ? WHERE id = ?", (code_mac, verification_id)
        )

    def sent(
        self,
        verification_id: str,
        to: str,
        prefix: str,
        now: float,
        *,
        message_id: str | None = None,
        call_id: str | None = None,
    ) -> None:
        with write_transaction(self.conn, "flexvoice.verify.sends"):
            self.conn.execute(
                "UPDATE verifications SET sends = sends + 1,"
                " message_id = coalesce(?, message_id), call_id = coalesce(?, call_id)"
                " WHERE id = ?",
                (message_id, call_id, verification_id),
            )
            self.conn.execute(
                "INSERT INTO verification_sends (to_addr, prefix, at) VALUES (?, ?, ?)",
                (to, prefix, now),
            )

    def sends_to(self, to: str, since: float) -> list[float]:
        return [
            float(r[0])
            for r in self.conn.execute(
                "SELECT at FROM verification_sends WHERE to_addr = ? AND at > ?", (to, since)
            )
        ]

    def sends_to_prefix(self, prefix: str, since: float) -> list[float]:
        return [
            float(r[0])
            for r in self.conn.execute(
                "SELECT at FROM verification_sends WHERE prefix = ? AND at > ?", (prefix, since)
            )
        ]

    def count_check(
        self, verification_id: str, account: str, now: float, max_checks: int
    ) -> tuple[int, str] | None:
        """Count one check, atomically: (checks so far, stored MAC), or None when the
        verification is not pending, has expired or has no checks left."""
        row = self.conn.execute(
            "UPDATE verifications SET checks = checks + 1"
            " WHERE id = ? AND account = ? AND status = 'pending' AND expires_at > ?"
            " AND checks < ? RETURNING checks, code_mac",
            (verification_id, account, now, max_checks),
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def set_status(self, verification_id: str, status: str, only_if: str = "pending") -> bool:
        cur = self.conn.execute(
            "UPDATE verifications SET status = ? WHERE id = ? AND status = ?",
            (status, verification_id, only_if),
        )
        return cur.rowcount > 0

    def expire(self, now: float) -> int:
        cur = self.conn.execute(
            "UPDATE verifications SET status = 'expired'"
            " WHERE status = 'pending' AND expires_at <= ?",
            (now,),
        )
        return cur.rowcount

    def set_price(self, verification_id: str, price: str | None) -> None:
        self.conn.execute(
            "UPDATE verifications SET price_eur = ? WHERE id = ?", (price, verification_id)
        )
