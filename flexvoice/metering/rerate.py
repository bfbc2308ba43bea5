"""Rerating a month of the usage store with the tariffs and account tariffs now in force."""

from __future__ import annotations

import json
from typing import Any

from flexvoice.metering.events import parse_event
from flexvoice.metering.records import BATCH_SIZE, RerateReport, charge_columns
from flexvoice.metering.timing import check_month
from flexvoice.metering.usage_table import USAGE_LOCK, UsageTable
from flexvoice.storage.engine import write_transaction


class Rerating(UsageTable):
    def rerate(self, month: str, chunk: int = BATCH_SIZE) -> RerateReport:
        """Rate the month's events again with the tariffs and account tariffs now in force.

        In chunks of `chunk` events, one transaction each, so that the engine's own imports
        are not held up for the whole month: rating is deterministic, so a rerate cut short
        is finished by running it again, and a second run changes nothing."""
        check_month(month)
        report = RerateReport()
        tariff_of = self._account_tariffs()
        conn = self.conn
        after = ("", "")
        while True:
            with write_transaction(conn, USAGE_LOCK):
                cur = conn.execute(
                    "SELECT account, id, payload, service, units, divisor, unit, "
                    "CAST(unit_price AS TEXT), "
                    "tariff_version, unrated FROM usage_events "
                    "WHERE month = ? AND (account, id) > (?, ?) ORDER BY account, id LIMIT ?",
                    (month, *after, chunk),
                )
                cur.row_factory = None
                rows = cur.fetchall()
                updates: list[tuple[Any, ...]] = []
                for row in rows:
                    event = parse_event(json.loads(row[2]))
                    columns = charge_columns(self._rate(event, tariff_of.get(row[0], "")))
                    if columns[-1] is not None:
                        report.unrated += 1
                    if columns != tuple(row[3:]):
                        updates.append((*columns, row[1]))
                conn.executemany(
                    "UPDATE usage_events SET service = ?, units = ?, divisor = ?, unit = ?, "
                    "unit_price = ?, tariff_version = ?, unrated = ? WHERE id = ?",
                    updates,
                )
            report.events += len(rows)
            report.changed += len(updates)
            if len(rows) < chunk:
                return report
            after = (rows[-1][0], rows[-1][1])
