"""The usage_events table (one row per event: the event as received and its stored charge)
and what every part of the usage store needs from it: the accounts' tariffs and rating."""

from __future__ import annotations

from flexvoice import accounts
from flexvoice.metering.events import Event
from flexvoice.metering.rating import Charge, Unrated, rate
from flexvoice.metering.records import PERIOD_KINDS
from flexvoice.metering.tariffs import Tariff, TariffBook
from flexvoice.storage.engine import Connection, PerEngine, is_postgres
from flexvoice.storage.migrate import migrate

# A rowid table takes rows in arrival order (cheap appends); the two indexes find an id
# (duplicates) and a month in account/id order (statements and exports). On PostgreSQL the
# unit price is `numeric` (exact); on SQLite it is the price's text. Reads say
# CAST(unit_price AS TEXT): the price as written ("0.80" stays "0.80") on both, and Python
# applies it with Decimal.
# Text sorts by byte there (COLLATE "C"), as on SQLite: exports list events in one order.
_TABLE = """
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
        unit_price {price},  -- as the tariff states it, e.g. 0.095
        tariff_version TEXT,
        unrated TEXT                  -- why the tariff cannot price it; NULL when rated
    );
    CREATE INDEX usage_events_month ON usage_events (month, account, id);
    CREATE INDEX usage_events_periods ON usage_events (kind, month)
        WHERE kind IN ('number', 'designer');
    """
MIGRATIONS = [
    PerEngine(
        sqlite=_TABLE.format(price="TEXT"),
        postgresql=_TABLE.format(price="NUMERIC")
        .replace("INTEGER", "BIGINT")
        .replace("TEXT", 'TEXT COLLATE "C"'),
    )
]


USAGE_LOCK = "flexvoice.usage_events"  # importers and rerates take turns, batch by batch


class UsageTable:
    """A connection to the usage_events table (created or migrated on open) with the tariffs."""

    def __init__(self, conn: Connection, tariffs: TariffBook):
        self.conn = conn
        self.tariffs = tariffs
        # A bigger page cache for this connection: the id index takes inserts in any order.
        if not is_postgres(conn):
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
