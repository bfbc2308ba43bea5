"""Status callbacks: signed JSON POSTs from a persistent queue, retried with exponential
back-off for up to 24 h, never on the call's path (the call only inserts a row).

Signature (header `X-FlexVoice-Signature: t=<unix seconds>,v1=<hex>`): HMAC-SHA256 under the
account's webhook secret of `<t>.<raw body>`. The receiver recomputes it, compares in constant
time, and refuses a timestamp more than 5 minutes old, so a captured request cannot be
replayed later. `verify_signature` below is the reference implementation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp

from flexvoice.logs import get_logger
from flexvoice.storage.engine import Connection, both, write_transaction
from flexvoice.storage.migrate import migrate

log = get_logger(__name__)

SIGNATURE_HEADER = "X-FlexVoice-Signature"
EVENT_ID_HEADER = "X-FlexVoice-Event-Id"
DEFAULT_TOLERANCE_S = 300

MIGRATIONS = [
    both(
        """
    CREATE TABLE webhook_queue (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        url TEXT NOT NULL,
        event TEXT NOT NULL,
        body BLOB NOT NULL,
        created_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead'))
    );
    CREATE INDEX webhook_queue_due ON webhook_queue (state, next_attempt_at);
    """
    )
]
CLAIM_LOCK = "flexvoice.webhook_queue"
LEASE_MARGIN_S = 30.0  # past an attempt's timeout before another node may take the row over


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when `header` is a valid signature of `body` made within `tolerance_s`."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookQueue:
    """Rows in the store (SQLite, or PostgreSQL shared by several nodes, each delivering);
    `deliver_forever()` runs as a background task of the API component."""

    def __init__(
        self,
        conn: Connection,
        secret_for: Callable[[str], str],
        *,
        retry_base_s: float = 5.0,
        retry_max_s: float = 3600.0,
        max_age_s: float = 86400.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ):
        self.conn = conn
        self.secret_for = secret_for
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self.clock = clock
        self._wake = asyncio.Event()
        migrate(conn, "webhooks", MIGRATIONS)

    def enqueue(self, account: str, url: str, event: str, payload: dict[str, Any]) -> None:
        now = self.clock()
        event_id = "EV" + uuid.uuid4().hex
        body = json.dumps(
            {"id": event_id, "created": int(now), **payload}, ensure_ascii=False, default=str
        ).encode()
        self.conn.execute(
            "INSERT INTO webhook_queue (id, account, url, event, body, created_at,"
            " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id, account, url, event, body, now, now),
        )
        self._wake.set()

    def backoff(self, attempts: int) -> float:
        """Delay before attempt number `attempts + 1` (1, 2, 4, 8 ... times the base)."""
        return float(min(self.retry_base_s * 2 ** max(0, attempts - 1), self.retry_max_s))

    def stats(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT state, count(*) FROM webhook_queue GROUP BY state")
        return {str(r[0]): int(r[1]) for r in rows}

    async def deliver_forever(self, session: aiohttp.ClientSession) -> None:
        while True:
            delay = await self.deliver_due(session)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def deliver_due(self, session: aiohttp.ClientSession) -> float:
        """Send what is due (concurrently); returns how long until the next one is."""
        rows = self._claim(self.clock())
        if rows:
            await asyncio.gather(*(self._attempt(session, *r) for r in rows))
        nxt = self.conn.execute(
            "SELECT min(next_attempt_at) FROM webhook_queue WHERE state = 'pending'"
        ).fetchone()[0]
        if nxt is None:
            return 60.0
        return max(0.0, min(60.0, float(nxt) - self.clock()))

    def _claim(self, now: float) -> list[Any]:
        """The due deliveries, taken for one attempt: their next attempt moves past the
        attempt's timeout, so another node delivering from the same queue leaves them alone
        (and takes one over if this node dies mid-attempt: at least once, never lost)."""
        with write_transaction(self.conn, CLAIM_LOCK):
            rows = self.conn.execute(
                "SELECT id, account, url, event, body, created_at, attempts FROM webhook_queue"
                " WHERE state = 'pending' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at LIMIT 50",
                (now,),
            ).fetchall()
            if rows:
                lease = now + self.timeout_s + LEASE_MARGIN_S
                self.conn.executemany(
                    "UPDATE webhook_queue SET next_attempt_at = ? WHERE id = ?",
                    [(lease, r[0]) for r in rows],
                )
        return [(*r[:4], bytes(r[4]), *r[5:]) for r in rows]

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        event_id: str,
        account: str,
        url: str,
        event: str,
        body: bytes,
        created_at: float,
        attempts: int,
    ) -> None:
        attempts += 1
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret_for(account), body, int(self.clock())),
            EVENT_ID_HEADER: event_id,
            "User-Agent": "FlexVoice-Webhooks/1",
        }
        error: str | None = None
        try:
            async with session.post(
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                allow_redirects=False,
            ) as resp:
                if not 200 <= resp.status < 300:
                    error = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        if error is None:
            self.conn.execute(
                "UPDATE webhook_queue SET state = 'delivered', attempts = ?, last_error = NULL"
                " WHERE id = ?",
                (attempts, event_id),
            )
            log.info("webhook.delivered", status_event=event, event_id=event_id, attempts=attempts)
            return
        nxt = now + self.backoff(attempts)
        dead = nxt - created_at > self.max_age_s
        self.conn.execute(
            "UPDATE webhook_queue SET state = ?, attempts = ?, last_error = ?,"
            " next_attempt_at = ? WHERE id = ?",
            ("dead" if dead else "pending", attempts, error, nxt, event_id),
        )
        log.warning(
            "webhook.failed",
            status_event=event,
            event_id=event_id,
            url=url,
            attempts=attempts,
            error=error,
            gave_up=dead,
        )
