"""What every message asks the database before it is accepted (who owns the sender number,
the account's tariff, whether the recipient sent STOP), read once and kept until the database
changes under us.

Invalidation: `PRAGMA data_version` changes on this connection whenever another connection
commits (the numbers API, an admin changing a tariff, the CLI, a second node on the same
database); it is checked once per message, far cheaper than the look-ups it saves. Opt-outs
are written through this connection (the inbound path): they update the cache themselves.
PostgreSQL has no such counter: there every check forgets everything (the look-ups are read
per message; other nodes' changes count at once).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from flexvoice.accounts import Account, get_account
from flexvoice.messaging.store import MessageStore
from flexvoice.metering.destinations import BadNumber, classify
from flexvoice.metering.quote import quote
from flexvoice.metering.tariffs import TariffBook
from flexvoice.storage.engine import Connection, is_postgres

K = TypeVar("K")
V = TypeVar("V")
MAX_ENTRIES = 100_000  # a bound for each cache: past it, start again


class NumberOwner(Protocol):
    def lookup(self, e164: str) -> Any: ...  # an object with .account, or None


class Lookups:
    def __init__(
        self,
        conn: Connection,
        store: MessageStore,
        numbers: NumberOwner | None,
        cache_numbers: bool = True,
        tariffs: TariffBook | None = None,
    ):
        self.conn = conn
        self.store = store
        self.numbers = numbers
        self.tariffs = tariffs
        # False when the numbers live in another store (a shared PostgreSQL): this
        # connection's data_version does not see their changes, so they are read each time.
        self.cache_numbers = cache_numbers
        self._version: int | None = None
        self._owners: dict[str, str | None] = {}
        self._accounts: dict[str, Account | None] = {}
        self._opted_out: dict[tuple[str, str], bool] = {}
        # (tariff, version, destination class) -> price of one segment, or why none.
        self._prices: dict[tuple[str, str | None, str], tuple[Decimal | None, str | None]] = {}
        self.hits = 0
        self.misses = 0

    def fresh(self) -> None:
        """Forget everything when another connection has committed since the last call."""
        version = None
        if not is_postgres(self.conn):
            version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        if version is None or version != self._version:
            self._version = version
            self._owners.clear()
            self._accounts.clear()
            self._opted_out.clear()
            self._prices.clear()

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

    def sms_price(
        self, account_name: str, from_addr: str, to_addr: str, sent_at: str, now: float
    ) -> tuple[Decimal | None, str | None]:
        """The price of one segment from `from_addr` to `to_addr` sent `now` (`sent_at` in
        ISO form), or None and why not. Metering's quote prices it the first time; what
        decides an SMS price is only the tariff, its version in force and the destination
        class, so the answer is kept under those and serves the accept (the 422 for a
        destination the tariff cannot price) and the bill (segments x it) alike."""
        account = self.account(account_name)
        tariff = None
        if account is not None and self.tariffs is not None:
            tariff = self.tariffs.get(account.tariff)
        if account is None or tariff is None:
            return self._quote(account, account_name, from_addr, to_addr, sent_at)
        version = tariff.version_at(datetime.fromtimestamp(now, UTC))
        try:
            destination = classify(to_addr)
        except BadNumber:
            destination = to_addr  # priced (refused) by quote, with its wording
        key = (account.tariff, version.label if version is not None else None, destination)
        found = self._prices.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        found = self._quote(account, account_name, from_addr, to_addr, sent_at)
        _bounded(self._prices)[key] = found
        return found

    def _quote(
        self, account: Account | None, name: str, from_addr: str, to_addr: str, sent_at: str
    ) -> tuple[Decimal | None, str | None]:
        event = {
            "id": "quote",
            "account": name,
            "kind": "sms",
            "from": from_addr,
            "to": to_addr,
            "sent_at": sent_at,
            "segments": 1,
        }
        return quote(self.conn, self.tariffs, event, account)

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
