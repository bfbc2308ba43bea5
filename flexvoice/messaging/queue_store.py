"""The outbound queue in the database: the parts table itself (status `queued`, `next_attempt_at`),
claimed, sent, retried or failed part by part, and the gateway ids that delivery receipts
name (kept here, not in memory: receipts may come per part, days later)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flexvoice.messaging.commit import Transaction
from flexvoice.messaging.model import id_keys
from flexvoice.messaging.text import Part
from flexvoice.storage.engine import Connection


@dataclass(frozen=True)
class DuePart:
    message_id: str
    seq: int
    account: str
    gateway: str
    from_addr: str
    to_addr: str
    part: Part
    attempts: int
    expires_at: float
    origin: str = "api"  # 'verification': the body holds a code, kept in memory only


class PartQueue:
    conn: Connection
    node: str

    def tx(self) -> Transaction:
        return Transaction(self.conn)

    def resume(self) -> int:
        """At start: parts left `sending` by a stop or crash go back to the queue. (A part
        whose submit reached the SMSC just before a crash, unacknowledged, is sent again:
        the only window where a duplicate is possible, one round trip wide.)"""
        cur = self.conn.execute(
            "UPDATE message_parts SET status = 'queued' WHERE status = 'sending'"
            " AND (claimed_by = ? OR claimed_by IS NULL)",
            (self.node,),
        )
        return cur.rowcount

    def take_over(self, lost: str) -> tuple[int, list[str]]:
        """A lost node's claims (flexvoice.cluster: its heartbeat expired and it holds no
        Redis connection, so it sends nothing any more): its parts left `sending` go back to
        the queue, to be sent by any node; the parts of its verification messages fail (the
        code was in its memory). (Parts back in the queue, the verification messages.)

        A part whose submit the SMSC answered is `sent` with the SMSC's message id in the
        same commit that read the answer: it is never taken over. A part still `sending`
        was not answered, or its answer was read but not yet committed when the node died
        (one commit wide): it is sent again, at least once."""
        codes = [
            str(r[0])
            for r in self.conn.execute(
                "SELECT DISTINCT p.message_id FROM message_parts p JOIN messages m"
                " ON m.id = p.message_id WHERE m.origin = 'verification' AND m.node = ?"
                " AND p.status IN ('queued', 'sending')",
                (lost,),
            )
        ]
        for message_id in codes:
            self.conn.execute(
                "UPDATE message_parts SET status = 'failed', last_error = ?"
                " WHERE message_id = ? AND status IN ('queued', 'sending')",
                ("code lost with its node", message_id),
            )
        cur = self.conn.execute(
            "UPDATE message_parts SET status = 'queued', claimed_by = NULL"
            " WHERE status = 'sending' AND claimed_by = ?",
            (lost,),
        )
        return cur.rowcount, codes

    def due(self, now: float, limit: int) -> list[DuePart]:
        rows = self.conn.execute(
            "SELECT p.message_id, p.seq, m.account, m.gateway, m.from_addr, m.to_addr,"
            " p.payload, p.data_coding, p.esm_class, p.attempts, m.expires_at,"
            " m.origin FROM message_parts p JOIN messages m ON m.id = p.message_id"
            " WHERE p.status = 'queued' AND p.next_attempt_at <= ?"
            " AND (m.origin <> 'verification' OR m.node = ? OR m.node IS NULL)"
            " ORDER BY p.next_attempt_at, p.message_id, p.seq LIMIT ?",
            (now, self.node, limit),
        ).fetchall()
        return [
            DuePart(
                r[0],
                r[1],
                r[2],
                r[3] or "",
                r[4],
                r[5],
                Part(bytes(r[6]), r[7], r[8]),
                r[9],
                r[10],
                r[11],
            )
            for r in rows
        ]

    def next_due(self) -> float | None:
        row = self.conn.execute(
            "SELECT min(p.next_attempt_at) FROM message_parts p JOIN messages m"
            " ON m.id = p.message_id WHERE p.status = 'queued'"
            " AND (m.origin <> 'verification' OR m.node = ? OR m.node IS NULL)",
            (self.node,),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def claim(self, parts: Iterable[DuePart]) -> list[DuePart]:
        """Move due parts to `sending`; the ones this call moved (a part another node
        claimed first is not sent from here)."""
        claimed = []
        with self.tx():
            for p in parts:
                cur = self.conn.execute(
                    "UPDATE message_parts SET status = 'sending', attempts = attempts + 1,"
                    " claimed_by = ? WHERE message_id = ? AND seq = ? AND status = 'queued'",
                    (self.node, p.message_id, p.seq),
                )
                if cur.rowcount == 1:
                    claimed.append(p)
        return claimed

    def part_sent(self, part: DuePart, gateway_id: str) -> None:
        with self.tx():
            self.conn.execute(
                "UPDATE message_parts SET status = 'sent', gateway_id = ?, last_error = NULL"
                " WHERE message_id = ? AND seq = ?",
                (gateway_id, part.message_id, part.seq),
            )
            self.conn.executemany(
                "INSERT INTO message_gateway_ids (gateway, key, message_id, seq)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(part.gateway, k, part.message_id, part.seq) for k in id_keys(gateway_id)],
            )

    def part_retry(self, part: DuePart, error: str, at: float) -> None:
        self.conn.execute(
            "UPDATE message_parts SET status = 'queued', last_error = ?, next_attempt_at = ?"
            " WHERE message_id = ? AND seq = ?",
            (error, at, part.message_id, part.seq),
        )

    def part_failed(self, message_id: str, seq: int, error: str) -> None:
        self.conn.execute(
            "UPDATE message_parts SET status = 'failed', last_error = ?"
            " WHERE message_id = ? AND seq = ?",
            (error, message_id, seq),
        )

    def fail_queued(self, message_id: str, error: str) -> None:
        self.conn.execute(
            "UPDATE message_parts SET status = 'failed', last_error = ?"
            " WHERE message_id = ? AND status = 'queued'",
            (error, message_id),
        )

    def find_part(self, gateway: str, gateway_id: str) -> tuple[str, int] | None:
        """The part a receipt names: the exact id first, then its numeric readings, and
        only when they point at one part."""
        for key in id_keys(gateway_id):
            rows = self.conn.execute(
                "SELECT DISTINCT message_id, seq FROM message_gateway_ids"
                " WHERE gateway = ? AND key = ?",
                (gateway, key),
            ).fetchall()
            if len(rows) == 1:
                return str(rows[0][0]), int(rows[0][1])
        return None

    def set_part_status(self, message_id: str, seq: int, status: str, error: str | None) -> bool:
        cur = self.conn.execute(
            "UPDATE message_parts SET status = ?, last_error = coalesce(?, last_error)"
            " WHERE message_id = ? AND seq = ? AND status IN ('sent', 'delivered', 'undelivered')",
            (status, error, message_id, seq),
        )
        return cur.rowcount > 0

    def part_statuses(self, message_id: str) -> list[str]:
        return [
            str(r[0])
            for r in self.conn.execute(
                "SELECT status FROM message_parts WHERE message_id = ? ORDER BY seq",
                (message_id,),
            )
        ]

    def accepted_parts(self, message_id: str) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM message_parts WHERE message_id = ?"
            " AND status IN ('sent', 'delivered', 'undelivered')",
            (message_id,),
        ).fetchone()
        return int(row[0])
