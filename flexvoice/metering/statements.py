"""Monthly statements of the usage store: per account one line per service, minimum
true-ups, subtotal, VAT and total; the per-event detail; the finance export of both."""

from __future__ import annotations

import heapq
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from flexvoice.metering import export
from flexvoice.metering.events import parse_event
from flexvoice.metering.money import ZERO, cents, fmt_price
from flexvoice.metering.rating import Unrated, rate_period_month
from flexvoice.metering.records import DetailLine, RawDetail, StatementLine, detail_line
from flexvoice.metering.timing import check_month, month_end
from flexvoice.metering.usage_table import UsageTable

_TICK = timedelta(microseconds=1)


@dataclass
class _Line:
    quantity: Decimal = ZERO
    amount: Decimal = ZERO
    unit: str = ""
    prices: set[Decimal] = field(default_factory=set)


class Statements(UsageTable):
    def detail_raw(self, month: str, account: str | None = None) -> Iterator[RawDetail]:
        """Every event of `month` as plain tuples, ordered by account then event id."""
        check_month(month)
        periods = sorted(self._period_lines(month, account), key=lambda r: (r[0], r[1]))
        return heapq.merge(self._point_lines(month, account), periods, key=lambda r: (r[0], r[1]))

    def detail(self, month: str, account: str | None = None) -> Iterator[DetailLine]:
        """Every event charged in `month`, ordered by account then event id."""
        return (detail_line(month, raw) for raw in self.detail_raw(month, account))

    def _point_lines(self, month: str, account: str | None) -> Iterator[RawDetail]:
        sql = (
            "SELECT account, id, coalesce(service, ''), units, divisor, coalesce(unit, ''), "
            "CAST(unit_price AS TEXT), coalesce(tariff_version, ''), coalesce(unrated, '') "
            "FROM usage_events "
            "WHERE month = ? AND kind NOT IN ('number', 'designer')"
        )
        args: list[str] = [month]
        if account is not None:
            sql += " AND account = ?"
            args.append(account)
        cur = self.conn.execute(sql + " ORDER BY account, id", args)
        cur.row_factory = None  # plain tuples: a million rows go through here
        return iter(cur)

    def _period_lines(self, month: str, account: str | None) -> list[RawDetail]:
        sql = (
            "SELECT payload FROM usage_events WHERE kind IN ('number', 'designer') "
            "AND month <= ? AND (last_month IS NULL OR last_month >= ?)"
        )
        args: list[str] = [month, month]
        if account is not None:
            sql += " AND account = ?"
            args.append(account)
        tariff_of = self._account_tariffs()
        events = sorted(
            (parse_event(json.loads(row[0])) for row in self.conn.execute(sql, args)),
            key=lambda e: (e.account, e.at, e.id),
        )
        out: list[RawDetail] = []
        charged: dict[tuple[str, str, str | None], str] = {}
        for event in events:
            name = tariff_of.get(event.account, "")
            tariff = self._tariff(name)
            if tariff is None:
                reason = f"the account's tariff '{name}' has no file"
                out.append((event.account, event.id, "", None, None, "", None, "", reason))
                continue
            result = rate_period_month(event, tariff, month)
            if isinstance(result, Unrated):
                out.append((event.account, event.id, "", None, None, "", None, "", result.reason))
                continue
            # A number is charged once a month however often it was (de)activated in it.
            first = charged.setdefault((event.account, event.kind, event.number), event.id)
            units, note = 1, ""
            if first != event.id:
                units, note = 0, f"already charged this month by event '{first}'"
            price = fmt_price(result.unit_price)
            out.append(
                (
                    event.account,
                    event.id,
                    result.service,
                    units,
                    1,
                    result.unit,
                    price,
                    result.version,
                    note,
                )
            )
        return out

    def unrated_count(self, month: str, account: str | None = None) -> int:
        sql = (
            "SELECT count(*) FROM usage_events WHERE month = ? AND unrated IS NOT NULL "
            "AND kind NOT IN ('number', 'designer')"
        )
        args: list[str] = [month]
        if account is not None:
            sql += " AND account = ?"
            args.append(account)
        points = int(self.conn.execute(sql, args).fetchone()[0])
        return points + sum(1 for r in self._period_lines(month, account) if r[3] is None)

    def statement(self, month: str, account: str | None = None) -> list[StatementLine]:
        """Per account: one line per service, minimum true-ups, subtotal, VAT, total, then
        one line per reason of unrated events."""
        check_month(month)
        lines: dict[str, dict[str, _Line]] = defaultdict(dict)
        unrated: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

        def add(acc: str, service: str, unit: str, price: str, units: int, divisor: int) -> None:
            line = lines[acc].get(service)
            if line is None:
                line = lines[acc][service] = _Line(unit=unit)
            unit_price = Decimal(price)
            line.quantity += Decimal(units) / divisor
            line.amount += unit_price * units / divisor
            if units:
                line.prices.add(unit_price)

        where, args = "month = ? AND kind NOT IN ('number', 'designer')", [month]
        if account is not None:
            where += " AND account = ?"
            args.append(account)
        # Whole units add up exactly in SQL (integers); prices are applied per group here.
        for row in self.conn.execute(
            "SELECT account, service, unit, CAST(unit_price AS TEXT), divisor, sum(units) "
            "FROM usage_events "
            f"WHERE {where} AND unrated IS NULL "
            "GROUP BY account, service, unit, unit_price, divisor",
            args,
        ):
            add(row[0], row[1], row[2], row[3], int(row[5]), int(row[4]))
        for row in self.conn.execute(
            f"SELECT account, unrated, count(*) FROM usage_events WHERE {where} "
            "AND unrated IS NOT NULL GROUP BY account, unrated",
            args,
        ):
            unrated[row[0]][row[1]] += int(row[2])
        for acc, _, service, units, divisor, unit, price, _, note in self._period_lines(
            month, account
        ):
            if units is None or divisor is None or price is None:
                unrated[acc][note] += 1
            else:
                add(acc, service, unit, price, units, divisor)
        tariff_of = self._account_tariffs()
        out: list[StatementLine] = []
        for acc in sorted(set(lines) | set(unrated)):
            out += self._account_statement(acc, month, lines[acc], tariff_of.get(acc))
            for reason, count in sorted(unrated[acc].items()):
                out.append(
                    StatementLine(
                        acc,
                        month,
                        f"unrated: {reason}",
                        Decimal(count),
                        "event",
                        None,
                        None,
                        "unrated",
                    )
                )
        return out

    def _account_statement(
        self, acc: str, month: str, lines: dict[str, _Line], tariff_name: str | None
    ) -> list[StatementLine]:
        out: list[StatementLine] = []
        rounded: dict[str, Decimal] = {}
        for service in sorted(lines):
            line = lines[service]
            price = next(iter(line.prices)) if len(line.prices) == 1 else None
            rounded[service] = cents(line.amount)
            out.append(
                StatementLine(
                    acc,
                    month,
                    service,
                    line.quantity,
                    line.unit,
                    price,
                    rounded[service],
                    "service",
                )
            )
        tariff = self._tariff(tariff_name or "")
        vat_rate = ZERO
        if tariff is not None:
            vat_rate = tariff.vat_rate
            # The minimums of the version in force at the end of the month.
            version = tariff.version_at(month_end(month) - _TICK)
            for priced in version.minimums() if version else []:
                minimum = priced.service.minimum_monthly
                assert minimum is not None
                short = minimum - rounded.get(priced.name, ZERO)
                if short > 0:
                    short = cents(short)
                    out.append(
                        StatementLine(
                            acc,
                            month,
                            f"{priced.name}_minimum",
                            Decimal(1),
                            "month",
                            short,
                            short,
                            "minimum",
                        )
                    )
        subtotal = sum((line.amount for line in out if line.amount is not None), ZERO)
        vat = cents(subtotal * vat_rate)
        out.append(StatementLine(acc, month, "subtotal", None, "", None, subtotal, "subtotal"))
        out.append(StatementLine(acc, month, "vat", subtotal, "EUR", vat_rate, vat, "vat"))
        out.append(StatementLine(acc, month, "total", None, "", None, subtotal + vat, "total"))
        return out

    def export(
        self,
        month: str,
        account: str | None = None,
        fmt: str = "csv",
        detail: bool = False,
    ) -> bytes:
        """The finance export as bytes (see `flexvoice.metering.export`)."""
        if fmt not in ("csv", "json"):
            raise ValueError(f"format must be csv or json (got {fmt!r})")
        return export.export(self, month, account, "csv" if fmt == "csv" else "json", detail)
