"""The price of one finished call, for the REST API's call resource (`calls.Pricer`).

Same rules as the statements (tariff of the account, destination class, increments, tariff
version in force), but for one call at a time; the statement remains the bill: it rounds
per service and month, not per call.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from flexvoice import accounts
from flexvoice.metering.events import EventError, parse_event
from flexvoice.metering.rating import Charge, rate
from flexvoice.metering.tariffs import TariffBook, load_tariffs


class TariffPricer:
    def __init__(self, conn: sqlite3.Connection, tariffs: TariffBook):
        self.conn = conn
        self.tariffs = tariffs

    @classmethod
    def from_folder(cls, conn: sqlite3.Connection, tariffs_dir: Path) -> TariffPricer:
        return cls(conn, load_tariffs(tariffs_dir))

    def price_call(
        self, account: str, direction: str, to: str, answered_at: str | None, ended_at: str
    ) -> tuple[int, Decimal] | None:
        """(billable seconds, unrounded price in EUR), or None when the account, its tariff
        or the destination is not priced (the statement lists such a call as unrated)."""
        found = accounts.get_account(self.conn, account)
        tariff = self.tariffs.get(found.tariff) if found else None
        if tariff is None:
            return None
        start = answered_at or ended_at
        event = {
            "id": "price",
            "account": account,
            "kind": "call",
            "direction": direction,
            "from": "anonymous",
            "to": to,
            "started_at": start,
            "answered_at": answered_at,
            "ended_at": ended_at,
        }
        try:
            result = rate(parse_event(event), tariff)
        except EventError:
            return None
        if not isinstance(result, Charge):
            return None
        return result.units, result.amount
