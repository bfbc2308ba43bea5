"""The usage_events table (one row per event: the event as received and its stored charge)
and what every part of the usage store needs from it: the accounts' tariffs and rating."""

from __future__ import annotations

import sqlite3

from flexvoice import accounts
from flexvoice.metering.events import Event
from flexvoice.metering.rating import Charge, Unrated, rate
from flexvoice.metering.records import PERIOD_KINDS
from flexvoice.metering.tariffs import Tariff, TariffBook
from flexvoice.storage.sqlite import migrate

MIGRATIONS = [
    # A rowid table takes rows in arrival order (cheap appends); the two indexes find an id
    # (duplicates) and a month in account/id order (statements and exports).
    """
    CREATE TABLE usage_events (
        id TEXT NOT NULL UNIQUE,
        month TEXT NOT NULL,          -- YYYY-MM (Brussels) of the event; first month of a period
        account TEXT NOT NULL,
        kind TEXT NOT NULL,
        last_month TEXT,              -- last month a period touches; NULL while still active
        payload TEXT NOT NULL,        -- the event as received: compared on re-import, rerated
        service TEXT,
        units INTEGER,                -- billable seconds (divisor 60) or a count (divisor 1)
        divisor INTEGER,
        unit TEXT,
        unit_price TEXT,              -- as the tariff states it, e.g. 0.095
        tariff_version TEXT,
        unrated TEXT                  -- why the tariff cannot price it; NULL when rated
    );
    CREATE INDEX usage_events_month ON usage_events (month, account, id);
    CREATE INDEX usage_events_periods ON usage_events (kind, month)
        WHERE kind IN ('number', 'designer');
    """
]


class UsageTable:
    """A connection to the usage_events table (created or migrated on open) with the tariffs."""

    def __init__(self, conn: sqlite3.Connection, tariffs: TariffBook):
        self.conn = conn
        self.tariffs = tariffs
        # A bigger page cache for this connection: the id index takes inserts in any order.
        conn.execute("PRAGMA cache_size = -65536")
        accounts.ensure_schema(conn)
        migrate(conn, "metering", MIGRATIONS)

    def _account_tariffs(self) -> dict[str, str]:
        return {a.name: a.tariff for a in accounts.list_accounts(self.conn)}

    def _tariff(self, name: str) -> Tariff | None:
        return self.tariffs.get(name)

    def _rate(self, event: Event, tariff_name: str) -> Charge | Unrated | None:
        """The stored rating: a charge for point events; only a possible reason for periods."""
        tariff = self._tariff(tariff_name)
        if tariff is None:
            return Unrated(f"the account's tariff '{tariff_name}' has no file")
        result = rate(event, tariff)
        if event.kind in PERIOD_KINDS:
            return result if isinstance(result, Unrated) else None
        return result
