"""What every message asks the database before it is accepted (who owns the sender number,
the account's tariff, whether the recipient sent STOP), read once and kept until the database
changes under us.

Invalidation: `PRAGMA data_version` changes on this connection whenever another connection
commits (the numbers API, an admin changing a tariff, the CLI, a second node on the same
database); it is checked once per message, far cheaper than the look-ups it saves. Opt-outs
are written through this connection (the inbound path): they update the cache themselves.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol, TypeVar

from flexvoice.accounts import Account, get_account
from flexvoice.messaging.store import MessageStore

K = TypeVar("K")
V = TypeVar("V")
MAX_ENTRIES = 100_000  # a bound for each cache: past it, start again


class NumberOwner(Protocol):
    def lookup(self, e164: str) -> Any: ...  # an object with .account, or None


class Lookups:
    def __init__(
        self,
        conn: sqlite3.Connection,
        store: MessageStore,
        numbers: NumberOwner | None,
        cache_numbers: bool = True,
    ):
        self.conn = conn
        self.store = store
        self.numbers = numbers
        # False when the numbers live in another store (a shared PostgreSQL): this
        # connection's data_version does not see their changes, so they are read each time.
        self.cache_numbers = cache_numbers
        self._version: int | None = None
        self._owners: dict[str, str | None] = {}
        self._accounts: dict[str, Account | None] = {}
        self._opted_out: dict[tuple[str, str], bool] = {}
        self.hits = 0
        self.misses = 0

    def fresh(self) -> None:
        """Forget everything when another connection has committed since the last call."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._version = version
            self._owners.clear()
            self._accounts.clear()
            self._opted_out.clear()

    def owner(self, e164: str) -> str | None:
        """The account that owns this number of ours, or None."""
        if self.cache_numbers and e164 in self._owners:
            self.hits += 1
            return self._owners[e164]
        self.misses += 1
        number = self.numbers.lookup(e164) if self.numbers is not None else None
        owner = str(number.account) if number is not None else None
        _bounded(self._owners)[e164] = owner
        return owner

    def account(self, name: str) -> Account | None:
        if name in self._accounts:
            self.hits += 1
            return self._accounts[name]
        self.misses += 1
        found = get_account(self.conn, name)
        _bounded(self._accounts)[name] = found
        return found

    def opted_out(self, sender: str, number: str) -> bool:
        key = (sender, number)
        if key in self._opted_out:
            self.hits += 1
            return self._opted_out[key]
        self.misses += 1
        found = self.store.opted_out(sender, number)
        _bounded(self._opted_out)[key] = found
        return found

    def set_opted_out(self, sender: str, number: str, out: bool, now: float) -> None:
        if out:
            self.store.opt_out(sender, number, now)
        else:
            self.store.opt_in(sender, number)
        _bounded(self._opted_out)[(sender, number)] = out


def _bounded(cache: dict[K, V]) -> dict[K, V]:
    if len(cache) >= MAX_ENTRIES:
        cache.clear()
    return cache
