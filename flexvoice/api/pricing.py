"""The price of one call leg for the call resource and the final `completed` callback.

It is metering's own rating, not a second engine: the leg becomes the `call` usage event the
SIP layer writes for it (flexvoice.sip.usage), parsed by `parse_event` and priced by `rate`
under the account's tariff, so the price a developer sees on the call is the amount the
statement charges for it (before the statement rounds its total to cents).
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

from flexvoice.accounts import get_account
from flexvoice.calls import CallPrice
from flexvoice.metering.events import EventError, parse_event
from flexvoice.metering.rating import Unrated, rate
from flexvoice.metering.tariffs import TariffBook


class TariffPricer:
    """`Pricer` for the call registry: the account's tariff, read per call (a tariff change
    with `flexvoice accounts` applies to the next call)."""

    def __init__(self, conn: sqlite3.Connection, tariffs: TariffBook):
        self.conn = conn
        self.tariffs = tariffs

    def price_call(
        self,
        account: str,
        direction: str,
        to: str,
        started_at: str,
        answered_at: str,
        ended_at: str,
    ) -> CallPrice:
        found = get_account(self.conn, account)
        if found is None:
            return CallPrice(0, None, f"account '{account}' does not exist")
        tariff = self.tariffs.get(found.tariff)
        if tariff is None:
            return CallPrice(0, None, f"the account's tariff '{found.tariff}' has no file")
        event = {
            "id": "price",
            "account": account,
            "kind": "call",
            "direction": direction,
            "from": "anonymous",  # not priced; the event format only needs some text
            "to": to,
            "started_at": started_at,
            "answered_at": answered_at,
            "ended_at": ended_at,
        }
        try:
            parsed = parse_event(event)
        except EventError as exc:
            return CallPrice(0, None, f"cannot be priced: {exc}")
        charge = rate(parsed, tariff)
        if isinstance(charge, Unrated):
            # No increments to apply: the seconds talked, each started one counted.
            return CallPrice(-(-parsed.duration_us // 1_000_000), None, charge.reason)
        return CallPrice(charge.units, charge.amount)

    def price_usage(
        self, account: str, event: dict[str, Any]
    ) -> tuple[int, Decimal | None, str | None]:
        """Any usage event (a recording's): (billable units, price or None, why no price)."""
        found = get_account(self.conn, account)
        if found is None:
            return 0, None, f"account '{account}' does not exist"
        tariff = self.tariffs.get(found.tariff)
        if tariff is None:
            return 0, None, f"the account's tariff '{found.tariff}' has no file"
        try:
            parsed = parse_event(event)
        except EventError as exc:
            return 0, None, f"cannot be priced: {exc}"
        charge = rate(parsed, tariff)
        if isinstance(charge, Unrated):
            return -(-parsed.duration_us // 1_000_000), None, charge.reason
        return charge.units, charge.amount, None
