"""The price of one call leg for the call resource and the final `completed` callback.

It is metering's own rating, not a second engine: the leg's `call` usage event (built once,
by flexvoice.callevent, and written to the usage feed by the SIP layer) is parsed
by `parse_event` and priced by `rate` under the account's tariff, so the price a developer
sees on the call is the amount finance's export shows for the same event.
"""

from __future__ import annotations

from typing import Any

from flexvoice.accounts import Account, get_account
from flexvoice.calls import CallPrice
from flexvoice.metering.events import EventError, parse_event
from flexvoice.metering.rating import Unrated, rate
from flexvoice.metering.tariffs import TariffBook
from flexvoice.storage.engine import Connection
from flexvoice.storage.readcache import ReadCache


class TariffPricer:
    """`Pricer` for the call registry: the account's tariff, read per call and cached until
    the accounts change (flexvoice.storage.readcache: a change with `flexvoice accounts`
    applies to the next call)."""

    def __init__(self, conn: Connection, tariffs: TariffBook):
        self.conn = conn
        self.tariffs = tariffs
        self._accounts: ReadCache[str, Account | None] = ReadCache(conn)

    def price_usage(self, event: dict[str, Any]) -> CallPrice:
        account = str(event.get("account"))
        found = self._accounts.get(account, lambda name: get_account(self.conn, name))
        if found is None:
            return CallPrice(0, None, f"account '{account}' does not exist")
        tariff = self.tariffs.get(found.tariff)
        if tariff is None:
            return CallPrice(0, None, f"the account's tariff '{found.tariff}' has no file")
        try:
            parsed = parse_event(event)
        except EventError as exc:
            return CallPrice(0, None, f"cannot be priced: {exc}")
        charge = rate(parsed, tariff)
        if isinstance(charge, Unrated):
            # No increments to apply: the seconds talked, each started one counted.
            return CallPrice(-(-parsed.duration_us // 1_000_000), None, charge.reason)
        return CallPrice(charge.units, charge.amount)
