"""State the API keeps between requests: failed-authentication lockout, per-account rate limits
and Idempotency-Key answers. Each has an embedded backend (memory or SQLite, one node) and a
Redis backend (`redis.enabled`), so that several nodes behind one edge share them.

- Lockout: after 5 failed authentications from one client address within 15 minutes (the
  5th still answers 401), that address is locked out for 15 minutes (429 with Retry-After),
  good key or not. Kept in SQLite or Redis, so a restart does not lift it;
  `flexvoice keys unlock --address A` does.
- Rate limit: at most N calls placed per account per second (fixed one-second windows), 429
  with Retry-After beyond that.
- Idempotency: the first answer to (account, Idempotency-Key) is kept 24 h; the same key with
  the same request replays it, with another request gets 409.
"""

from __future__ import annotations

import base64
import json
import math
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flexvoice.api.problems import ProblemError
from flexvoice.storage.engine import write_transaction
from flexvoice.storage.readcache import ReadCache
from flexvoice.storage.sqlite import migrate

Clock = Callable[[], float]

IDEMPOTENCY_MIGRATIONS = [
    """
    CREATE TABLE idempotency_keys (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status INTEGER,
        body BLOB,
        content_type TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE INDEX idempotency_created ON idempotency_keys (created_at);
    """
]

# A request that began but never finished (the node died mid-request) stops blocking its key
# after this long; handlers that place calls answer within a second or two.
PENDING_STALE_S = 60.0


class RedisLike(Protocol):
    """The part of redis.asyncio.Redis the guards use (typed loosely: redis-py is untyped)."""

    def pipeline(self, transaction: bool = True) -> Any: ...
    async def get(self, name: str) -> Any: ...
    async def set(self, name: str, value: Any, **kwargs: Any) -> Any: ...
    async def delete(self, *names: str) -> Any: ...
    async def ttl(self, name: str) -> Any: ...


# ---- lockout ------------------------------------------------------------------------------


class Lockout(Protocol):
    async def locked_for(self, address: str) -> float:
        """Seconds this address stays locked out (0 when it may try)."""

    async def failed(self, address: str) -> float:
        """Record one failed authentication; returns the lock time if it now locked."""


@dataclass
class LockoutPolicy:
    max_failures: int = 5
    window_s: float = 15 * 60
    lock_s: float = 15 * 60


class MemoryLockout:
    def __init__(self, policy: LockoutPolicy, clock: Clock = time.time):
        self.policy = policy
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    async def locked_for(self, address: str) -> float:
        until = self._locked_until.get(address, 0.0)
        left = until - self.clock()
        if left <= 0 and address in self._locked_until:
            del self._locked_until[address]
        return max(0.0, left)

    async def failed(self, address: str) -> float:
        now = self.clock()
        window = self._failures.setdefault(address, deque())
        window.append(now)
        while window and window[0] <= now - self.policy.window_s:
            window.popleft()
        if len(window) >= self.policy.max_failures:
            self._locked_until[address] = now + self.policy.lock_s
            window.clear()
            return self.policy.lock_s
        if len(self._failures) > 100_000:  # bound memory under a scan from many addresses
            self._failures = {a: w for a, w in self._failures.items() if w and w[-1] > now - 900}
        return 0.0


LOCKOUT_MIGRATIONS = [
    """
    CREATE TABLE auth_failures (
        address TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        window_start REAL NOT NULL,
        locked_until REAL NOT NULL DEFAULT 0
    );
    """
]


class SqliteLockout:
    """The lockout kept in the node's database: a restart does not clear it, and
    `flexvoice keys unlock --address A` lifts it. The window starts at the first failure, as
    with Redis. Rows of addresses that stopped failing are dropped as they age.

    Every request asks; the answer is kept in memory (ReadCache: until this object writes,
    another connection commits, or a second passes), so a client sending many requests
    costs one read of its row per cache period instead of one per request."""

    def __init__(self, conn: sqlite3.Connection, policy: LockoutPolicy, clock: Clock = time.time):
        self.conn = conn
        self.policy = policy
        self.clock = clock
        self._until: ReadCache[str, float] = ReadCache(conn)
        migrate(conn, "lockout", LOCKOUT_MIGRATIONS)

    def _read_until(self, address: str) -> float:
        row = self.conn.execute(
            "SELECT locked_until FROM auth_failures WHERE address = ?", (address,)
        ).fetchone()
        return float(row[0]) if row else 0.0

    async def locked_for(self, address: str) -> float:
        return max(0.0, self._until.get(address, self._read_until) - self.clock())

    async def failed(self, address: str) -> float:
        now = self.clock()
        p = self.policy
        try:
            with write_transaction(self.conn, "flexvoice.api.lockout"):
                self.conn.execute(
                    "DELETE FROM auth_failures WHERE window_start < ? AND locked_until < ?",
                    (now - p.window_s, now),
                )
                self.conn.execute(
                    "INSERT INTO auth_failures (address, failures, window_start) VALUES (?, 1, ?)"
                    " ON CONFLICT (address) DO UPDATE SET failures = failures + 1",
                    (address, now),
                )
                (count,) = self.conn.execute(
                    "SELECT failures FROM auth_failures WHERE address = ?", (address,)
                ).fetchone()
                locked = int(count) >= p.max_failures
                if locked:
                    self.conn.execute(
                        "UPDATE auth_failures SET failures = 0, window_start = ?,"
                        " locked_until = ? WHERE address = ?",
                        (now, now + p.lock_s, address),
                    )
        finally:
            self._until.clear()
        return p.lock_s if locked else 0.0


def unlock_sqlite(conn: sqlite3.Connection, address: str) -> bool:
    """Lift the lockout of `address` and forget its failures; False when it had none."""
    migrate(conn, "lockout", LOCKOUT_MIGRATIONS)
    cur = conn.execute("DELETE FROM auth_failures WHERE address = ?", (address,))
    return cur.rowcount > 0


async def unlock_redis(redis: RedisLike, address: str, prefix: str = "fv:") -> bool:
    removed = await redis.delete(f"{prefix}lock:{address}", f"{prefix}authfail:{address}")
    return bool(removed)


class RedisLockout:
    """Failures counted in a window that starts at the first failure (INCR + EXPIRE)."""

    def __init__(self, redis: RedisLike, policy: LockoutPolicy, prefix: str = "fv:"):
        self.redis = redis
        self.policy = policy
        self.prefix = prefix

    async def locked_for(self, address: str) -> float:
        ttl = await self.redis.ttl(f"{self.prefix}lock:{address}")
        return float(ttl) if ttl and ttl > 0 else 0.0

    async def failed(self, address: str) -> float:
        key = f"{self.prefix}authfail:{address}"
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, int(self.policy.window_s), nx=True)
        count, _ = await pipe.execute()
        if int(count) >= self.policy.max_failures:
            await self.redis.set(f"{self.prefix}lock:{address}", "1", ex=int(self.policy.lock_s))
            await self.redis.delete(key)
            return self.policy.lock_s
        return 0.0


# ---- rate limit ---------------------------------------------------------------------------


class RateLimiter(Protocol):
    async def hit(self, account: str, limit: int) -> float:
        """Count one call for `account`; 0 when allowed, else seconds to wait."""


class MemoryRateLimiter:
    def __init__(self, clock: Clock = time.time):
        self.clock = clock
        self._windows: dict[str, tuple[int, int]] = {}  # account -> (second, count)

    async def hit(self, account: str, limit: int) -> float:
        now = self.clock()
        second = int(now)
        current, count = self._windows.get(account, (second, 0))
        if current != second:
            count = 0
        if count >= limit:
            return max(0.001, second + 1 - now)
        self._windows[account] = (second, count + 1)
        return 0.0


class RedisRateLimiter:
    def __init__(self, redis: RedisLike, prefix: str = "fv:", clock: Clock = time.time):
        self.redis = redis
        self.prefix = prefix
        self.clock = clock

    async def hit(self, account: str, limit: int) -> float:
        now = self.clock()
        second = int(now)
        key = f"{self.prefix}rate:{account}:{second}"
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, 2)
        count, _ = await pipe.execute()
        if int(count) > limit:
            return max(0.001, second + 1 - now)
        return 0.0


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


# ---- idempotency --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    content_type: str


class IdempotencyStore(Protocol):
    async def begin(self, scope: str, key: str, fingerprint: str) -> StoredResponse | None:
        """None: go ahead (the key is now held). A stored answer: replay it. Raises
        ProblemError when the key was used for another request or is still running."""

    async def finish(self, scope: str, key: str, response: StoredResponse) -> None: ...

    async def abandon(self, scope: str, key: str) -> None:
        """Release the key without an answer (a 5xx: the client may retry with it)."""


def _reused(key: str) -> ProblemError:
    return ProblemError(
        "idempotency-key-reused",
        f"Idempotency-Key '{key}' was already used with a different request in the last 24 h; "
        "use a new key for a new request",
        field="Idempotency-Key",
    )


def _in_progress(key: str) -> ProblemError:
    return ProblemError(
        "idempotency-key-in-progress",
        f"a request with Idempotency-Key '{key}' is still being handled; retry in a moment",
        field="Idempotency-Key",
        headers={"Retry-After": "1"},
    )


class SqliteIdempotencyStore:
    def __init__(self, conn: sqlite3.Connection, ttl_s: float = 86400, clock: Clock = time.time):
        self.conn = conn
        self.ttl_s = ttl_s
        self.clock = clock
        migrate(conn, "idempotency", IDEMPOTENCY_MIGRATIONS)

    async def begin(self, scope: str, key: str, fingerprint: str) -> StoredResponse | None:
        now = self.clock()
        with write_transaction(self.conn, "flexvoice.api.idempotency"):
            self.conn.execute(
                "DELETE FROM idempotency_keys WHERE created_at < ?", (now - self.ttl_s,)
            )
            row = self.conn.execute(
                "SELECT fingerprint, status, body, content_type, created_at"
                " FROM idempotency_keys WHERE scope = ? AND key = ?",
                (scope, key),
            ).fetchone()
            if row is None or (row[1] is None and row[4] < now - PENDING_STALE_S):
                self.conn.execute(
                    "INSERT OR REPLACE INTO idempotency_keys (scope, key, fingerprint, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (scope, key, fingerprint, now),
                )
                return None
        if row[0] != fingerprint:
            raise _reused(key)
        if row[1] is None:
            raise _in_progress(key)
        return StoredResponse(int(row[1]), bytes(row[2]), str(row[3]))

    async def finish(self, scope: str, key: str, response: StoredResponse) -> None:
        self.conn.execute(
            "UPDATE idempotency_keys SET status = ?, body = ?, content_type = ?"
            " WHERE scope = ? AND key = ?",
            (response.status, response.body, response.content_type, scope, key),
        )

    async def abandon(self, scope: str, key: str) -> None:
        self.conn.execute(
            "DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND status IS NULL",
            (scope, key),
        )


class RedisIdempotencyStore:
    def __init__(self, redis: RedisLike, ttl_s: float = 86400, prefix: str = "fv:"):
        self.redis = redis
        self.ttl_s = int(ttl_s)
        self.prefix = prefix

    def _key(self, scope: str, key: str) -> str:
        return f"{self.prefix}idem:{scope}:{key}"

    async def begin(self, scope: str, key: str, fingerprint: str) -> StoredResponse | None:
        rkey = self._key(scope, key)
        pending = json.dumps({"fp": fingerprint, "pending_since": time.time()})
        if await self.redis.set(rkey, pending, nx=True, ex=self.ttl_s):
            return None
        raw = await self.redis.get(rkey)
        if raw is None:  # expired between the two commands: take it
            return await self.begin(scope, key, fingerprint)
        doc = json.loads(raw)
        if doc["fp"] != fingerprint:
            raise _reused(key)
        if "status" not in doc:
            if doc["pending_since"] < time.time() - PENDING_STALE_S:
                await self.redis.delete(rkey)
                return await self.begin(scope, key, fingerprint)
            raise _in_progress(key)
        return StoredResponse(int(doc["status"]), base64.b64decode(doc["body"]), doc["ct"])

    async def finish(self, scope: str, key: str, response: StoredResponse) -> None:
        rkey = self._key(scope, key)
        raw = await self.redis.get(rkey)
        fp = json.loads(raw)["fp"] if raw else ""
        doc = {
            "fp": fp,
            "status": response.status,
            "body": base64.b64encode(response.body).decode(),
            "ct": response.content_type,
        }
        await self.redis.set(rkey, json.dumps(doc), xx=True, keepttl=True)

    async def abandon(self, scope: str, key: str) -> None:
        await self.redis.delete(self._key(scope, key))
