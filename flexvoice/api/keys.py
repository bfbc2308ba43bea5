"""API keys and webhook secrets.

A key looks like `fvk_<id>_<secret>`: the id finds the row, the secret is checked against its
SHA-256 (keys are 256-bit random, so a plain hash is as strong as a slow one and costs
nothing per request). The full key is shown once, at creation, and never stored.

Each account also has one webhook secret, used to sign its status callbacks (HMAC-SHA256); it
is made on first use and can be rotated.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from flexvoice.accounts import ensure_schema as ensure_accounts_schema
from flexvoice.accounts import get_account
from flexvoice.errors import UserError
from flexvoice.storage import readcache
from flexvoice.storage.engine import Connection
from flexvoice.storage.migrate import migrate

Role = Literal["admin", "developer", "finance", "analyst", "manager"]
ROLES: tuple[str, ...] = get_args(Role)
KEY_PREFIX = "fvk_"

MIGRATIONS = [
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        role TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL,
        label TEXT,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE INDEX api_keys_account ON api_keys (account);
    CREATE TABLE webhook_secrets (
        account TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """
]


@dataclass(frozen=True)
class ApiKey:
    id: str
    account: str
    role: str
    label: str | None
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class Principal:
    """Who a request is from, once its key checked out."""

    account: str
    role: str
    key_id: str


def ensure_schema(conn: Connection) -> None:
    ensure_accounts_schema(conn)
    migrate(conn, "api_keys", MIGRATIONS)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    conn: Connection, account: str, role: str, label: str | None = None
) -> tuple[ApiKey, str]:
    """Returns the stored key and the full key text (shown once)."""
    ensure_schema(conn)
    if role not in ROLES:
        raise UserError(f"role '{role}' does not exist; choose one of {', '.join(ROLES)}")
    if get_account(conn, account) is None:
        raise UserError(
            f"no account '{account}'; create it first with 'flexvoice accounts create {account}'"
        )
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    created = _now()
    conn.execute(
        "INSERT INTO api_keys (id, account, role, secret_sha256, label, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (key_id, account, role, _digest(secret), label, created),
    )
    return ApiKey(key_id, account, role, label, created, None), f"{KEY_PREFIX}{key_id}_{secret}"


def verify_key(conn: Connection, text: str) -> Principal | None:
    """The principal for a presented key, or None when it is unknown, wrong or revoked."""
    if not text.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = text[len(KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        return None
    row = conn.execute(
        "SELECT account, role, secret_sha256, revoked_at FROM api_keys WHERE id = ?", (key_id,)
    ).fetchone()
    # Compare even when the row is missing so a wrong id and a wrong secret take the same time.
    expected = row[2] if row else "0" * 64
    ok = hmac.compare_digest(expected, _digest(secret))
    if row is None or not ok or row[3] is not None:
        return None
    return Principal(account=row[0], role=row[1], key_id=key_id)


def list_keys(conn: Connection, account: str | None = None) -> list[ApiKey]:
    ensure_schema(conn)
    sql = "SELECT id, account, role, label, created_at, revoked_at FROM api_keys"
    rows = (
        conn.execute(sql + " WHERE account = ? ORDER BY created_at, id", (account,))
        if account
        else conn.execute(sql + " ORDER BY account, created_at, id")
    )
    return [ApiKey(*r) for r in rows]


def revoke_key(conn: Connection, key_id: str) -> None:
    ensure_schema(conn)
    key_id = key_id.removeprefix(KEY_PREFIX).partition("_")[0]
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (_now(), key_id)
    )
    readcache.changed()  # a node in this process stops taking it at once
    if cur.rowcount == 0:
        raise UserError(f"no active key with id '{key_id}' (see 'flexvoice keys list')")


def webhook_secret(conn: Connection, account: str, *, rotate: bool = False) -> str:
    """The account's webhook signing secret (made on first use)."""
    ensure_schema(conn)
    fresh = "whsec_" + secrets.token_urlsafe(32)
    if rotate:
        conn.execute(
            "INSERT INTO webhook_secrets (account, secret, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (account) DO UPDATE SET secret = excluded.secret,"
            " created_at = excluded.created_at",
            (account, fresh, _now()),
        )
    else:
        # DO NOTHING: two first uses at once must agree on one secret.
        conn.execute(
            "INSERT INTO webhook_secrets (account, secret, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (account) DO NOTHING",
            (account, fresh, _now()),
        )
    row = conn.execute(
        "SELECT secret FROM webhook_secrets WHERE account = ?", (account,)
    ).fetchone()
    return str(row[0])
