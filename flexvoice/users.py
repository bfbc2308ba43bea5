"""People who log in to the designer: e-mail, password, role, account; and their sessions.

API keys stay for machines; people have a user each. Roles (the #Interact seeds' words):
administrator and manager edit and publish flows, agent and analyst read them (and may try
them in the simulator). Passwords are hashed with scrypt (memory-hard, in the standard
library: 16 MiB and about 50 ms per check, so hashing runs off the event loop). Five wrong
passwords in a row lock the user until `flexvoice users unlock` (or a reset); a right one
resets the count. Sessions are random tokens kept as SHA-256 hashes, each with its own CSRF
token, expiring after SESSION_TTL_S.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from flexvoice.accounts import get_account
from flexvoice.errors import UserError
from flexvoice.storage.engine import Connection, IntegrityError, both
from flexvoice.storage.migrate import migrate

Role = Literal["administrator", "manager", "agent", "analyst"]
ROLES: tuple[Role, ...] = ("administrator", "manager", "agent", "analyst")
EDITORS = frozenset({"administrator", "manager"})
# The console's Statistics view (an agent answers calls; the figures are the business's).
STATISTICS_READERS = frozenset({"administrator", "manager", "analyst"})
MAX_FAILURES = 5
MIN_PASSWORD = 10
SESSION_TTL_S = 12 * 3600
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}$")
# n=2^14, r=8: 16 MiB per hash (OWASP's scrypt minimum is n=2^17 r=8 p=1 for servers that can
# afford 128 MiB; a small node hashing at each login cannot, and 2^14 stays memory-hard).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1

MIGRATIONS = [
    both(
        """
    CREATE TABLE users (
        email TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        role TEXT NOT NULL,
        password TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE user_sessions (
        token_hash TEXT PRIMARY KEY,
        email TEXT NOT NULL REFERENCES users (email) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    """
    )
]


@dataclass(frozen=True)
class User:
    email: str
    account: str
    role: str
    locked: bool

    @property
    def can_edit(self) -> bool:
        return self.role in EDITORS

    @property
    def can_read_statistics(self) -> bool:
        return self.role in STATISTICS_READERS


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str


class LoginRefused(Exception):
    """Wrong e-mail or password, or a locked user; the message is for the person."""

    def __init__(self, message: str, locked: bool = False):
        super().__init__(message)
        self.locked = locked


def ensure_schema(conn: Connection) -> None:
    migrate(conn, "users", MIGRATIONS)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 2**20
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 2**20,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


# Checked against when the e-mail is unknown, so that a wrong e-mail costs as long as a wrong
# password (no user enumeration by timing).
_DUMMY = hash_password(secrets.token_urlsafe(16))


def check_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise UserError(f"'{email}' is not an e-mail address; write it like anna@bakery.be")
    return email


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(
            f"the password is too short ({len(password)} characters); use at least "
            f"{MIN_PASSWORD}, a few words make a good one"
        )
    return password


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _user(row: Any) -> User | None:
    if row is None:
        return None
    return User(str(row[0]), str(row[1]), str(row[2]), row[3] is not None)


def get_user(conn: Connection, email: str) -> User | None:
    ensure_schema(conn)
    return _user(
        conn.execute(
            "SELECT email, account, role, locked_at FROM users WHERE email = ?",
            (email.strip().lower(),),
        ).fetchone()
    )


def list_users(conn: Connection) -> list[User]:
    ensure_schema(conn)
    rows = conn.execute("SELECT email, account, role, locked_at FROM users ORDER BY email")
    return [u for u in (_user(r) for r in rows) if u is not None]


def create_user(conn: Connection, email: str, account: str, role: str, password: str) -> User:
    ensure_schema(conn)
    email = check_email(email)
    if role not in ROLES:
        raise UserError(f"role '{role}' is not one of: {', '.join(ROLES)}")
    if get_account(conn, account) is None:
        raise UserError(
            f"no account '{account}'; create it with 'flexvoice accounts create {account}'"
        )
    check_new_password(password)
    try:
        conn.execute(
            "INSERT INTO users (email, account, role, password, created_at) VALUES (?, ?, ?, ?, ?)",
            (email, account, role, hash_password(password), _now()),
        )
    except IntegrityError:
        raise UserError(
            f"user {email} already exists; 'flexvoice users reset {email}' sets a new password"
        ) from None
    user = get_user(conn, email)
    assert user is not None
    return user


def _require(conn: Connection, email: str) -> str:
    email = email.strip().lower()
    if get_user(conn, email) is None:
        raise UserError(f"no user {email}; 'flexvoice users list' shows them")
    return email


def reset_password(conn: Connection, email: str, password: str) -> None:
    """A new password; also unlocks and ends the user's sessions."""
    email = _require(conn, email)
    check_new_password(password)
    conn.execute(
        "UPDATE users SET password = ?, failures = 0, locked_at = NULL WHERE email = ?",
        (hash_password(password), email),
    )
    conn.execute("DELETE FROM user_sessions WHERE email = ?", (email,))


def unlock(conn: Connection, email: str) -> None:
    email = _require(conn, email)
    conn.execute("UPDATE users SET failures = 0, locked_at = NULL WHERE email = ?", (email,))


def password_of(conn: Connection, email: str) -> str:
    """The stored hash to check a login against (a dummy one for an unknown e-mail)."""
    ensure_schema(conn)
    row = conn.execute(
        "SELECT password FROM users WHERE email = ?", (email.strip().lower(),)
    ).fetchone()
    return str(row[0]) if row else _DUMMY


LOCKED_MESSAGE = (
    "this user is locked after {n} wrong passwords; ask your administrator to unlock it "
    "('flexvoice users unlock EMAIL') or to reset the password"
)


def record_login(conn: Connection, email: str, password_ok: bool) -> User:
    """After the hash check (done off the event loop): count a failure or reset the count.
    Returns the user, or raises LoginRefused with words for the person."""
    user = get_user(conn, email)
    if user is None:
        raise LoginRefused("wrong e-mail or password")
    if user.locked:
        raise LoginRefused(LOCKED_MESSAGE.format(n=MAX_FAILURES), locked=True)
    if password_ok:
        conn.execute("UPDATE users SET failures = 0 WHERE email = ?", (user.email,))
        return user
    # One statement: two wrong passwords arriving together both count.
    conn.execute(
        "UPDATE users SET failures = failures + 1,"
        " locked_at = CASE WHEN failures + 1 >= ? THEN ? ELSE locked_at END WHERE email = ?",
        (MAX_FAILURES, _now(), user.email),
    )
    row = conn.execute("SELECT failures FROM users WHERE email = ?", (user.email,)).fetchone()
    failures = int(row[0])
    if failures >= MAX_FAILURES:
        raise LoginRefused(LOCKED_MESSAGE.format(n=MAX_FAILURES), locked=True)
    left = MAX_FAILURES - failures
    raise LoginRefused(
        f"wrong e-mail or password; {left} more wrong attempt(s) lock this user"
        if left <= 2
        else "wrong e-mail or password"
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(conn: Connection, user: User, now: float | None = None) -> str:
    """A new session token (the cookie's value); its CSRF token is kept with it."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    conn.execute("DELETE FROM user_sessions WHERE expires_at < ?", (now,))
    conn.execute(
        "INSERT INTO user_sessions (token_hash, email, csrf, expires_at) VALUES (?, ?, ?, ?)",
        (_token_hash(token), user.email, secrets.token_urlsafe(24), now + SESSION_TTL_S),
    )
    return token


def find_session(conn: Connection, token: str, now: float | None = None) -> Session | None:
    ensure_schema(conn)
    now = time.time() if now is None else now
    row = conn.execute(
        "SELECT u.email, u.account, u.role, u.locked_at, s.csrf FROM user_sessions s"
        " JOIN users u ON u.email = s.email WHERE s.token_hash = ? AND s.expires_at > ?",
        (_token_hash(token), now),
    ).fetchone()
    user = _user(row[:4]) if row else None
    if user is None or user.locked:
        return None
    return Session(user, str(row[4]))


def close_session(conn: Connection, token: str) -> None:
    conn.execute("DELETE FROM user_sessions WHERE token_hash = ?", (_token_hash(token),))
