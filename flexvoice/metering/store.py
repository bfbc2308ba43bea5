"""Rated usage in SQLite: import (idempotent by event id), monthly statements, rerate.

One row per event holds its canonical payload (the audit record and the input of a rerate)
and, for point events, its charge. Number and designer periods are priced per month when a
statement asks for that month, since an open period has no last month to store charges for.
Amounts are stored as decimal text and summed with `Decimal`; SQLite never does arithmetic
on money.

Each import batch is one transaction that first looks up which ids are already stored, so a
re-run after a crash counts the committed batches as duplicates and stores nothing twice.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from flexvoice import accounts
from flexvoice.metering.events import Event, EventError, parse_event
from flexvoice.metering.money import ZERO, cents, plain
from flexvoice.metering.rating import Charge, Unrated, rate, rate_period_month
from flexvoice.metering.tariffs import Tariff, TariffBook
from flexvoice.metering.timing import check_month, last_month_touched, month_end
from flexvoice.storage.sqlite import migrate

PERIOD_KINDS = ("number", "designer")
BATCH_SIZE = 5000
_LOOKUP_CHUNK = 500

MIGRATIONS = [
    """
    CREATE TABLE usage_events (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        kind TEXT NOT NULL,
        month TEXT NOT NULL,          -- YYYY-MM (Brussels) of the event; first month of a period
        last_month TEXT,              -- last month a period touches; NULL while still active
        payload TEXT NOT NULL,        -- canonical JSON: compared on re-import, re-read by rerate
        service TEXT,
        quantity TEXT,
        unit TEXT,
        unit_price TEXT,
        amount TEXT,                  -- unrounded: quantity x unit price
        tariff_version TEXT,
        unrated TEXT                  -- why the tariff cannot price it; NULL when rated
    );
    CREATE INDEX usage_events_month ON usage_events (month, account, id);
    CREATE INDEX usage_events_periods ON usage_events (kind, month)
        WHERE kind IN ('number', 'designer');
    """
]


@dataclass(frozen=True)
class Rejection:
    line: int  # 1-based line of the file (or position in the iterable)
    event_id: str | None
    reason: str

    def __str__(self) -> str:
        what = f"event '{self.event_id}': " if self.event_id else ""
        return f"line {self.line}: {what}{self.reason}"


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    unrated: list[Rejection] = field(default_factory=list)  # imported, but not priced yet

    def merge(self, other: ImportReport) -> None:
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.unrated += other.unrated


@dataclass(frozen=True)
class StatementLine:
    """One row of a monthly statement; `row` says what it is."""

    account: str
    month: str
    service: str
    quantity: Decimal | None
    unit: str
    unit_price: Decimal | None  # None when the month mixes tariff versions with other prices
    amount: Decimal | None  # rounded to cents; None for 'unrated' rows
    row: str  # service | minimum | subtotal | vat | total | unrated


@dataclass(frozen=True)
class DetailLine:
    """One event's charge in a month (an open number period gives one per month)."""

    account: str
    month: str
    event_id: str
    service: str
    quantity: Decimal | None
    unit: str
    unit_price: Decimal | None
    amount: Decimal | None  # unrounded
    tariff_version: str
    note: str  # unrated reason, or why a period is not charged twice


@dataclass
class RerateReport:
    events: int = 0
    changed: int = 0
    unrated: int = 0


@dataclass
class _Line:
    quantity: Decimal = ZERO
    amount: Decimal = ZERO
    unit: str = ""
    prices: set[Decimal] = field(default_factory=set)


class Parsed:
    """An input line already read by the caller (JSON error or object) with its line number."""

    __slots__ = ("error", "line", "obj")

    def __init__(self, line: int, obj: Any = None, error: str | None = None):
        self.line, self.obj, self.error = line, obj, error


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _charge_columns(result: Charge | Unrated | None) -> tuple[Any, ...]:
    if isinstance(result, Charge):
        return (
            result.service,
            plain(result.quantity),
            result.unit,
            plain(result.unit_price),
            str(result.amount),
            result.version,
            None,
        )
    reason = result.reason if isinstance(result, Unrated) else None
    return (None, None, None, None, None, None, reason)


class UsageStore:
    def __init__(self, conn: sqlite3.Connection, tariffs: TariffBook):
        self.conn = conn
        self.tariffs = tariffs
        accounts.ensure_schema(conn)
        migrate(conn, "metering", MIGRATIONS)

    # ---- import -------------------------------------------------------------------------

    def ingest(self, events: Iterable[Any], batch_size: int = BATCH_SIZE) -> ImportReport:
        """Import event objects (dicts); positions count from 1 as line numbers."""
        return self.ingest_parsed(
            (Parsed(n, obj) for n, obj in enumerate(events, start=1)), batch_size
        )

    def ingest_jsonl(
        self, lines: Iterable[bytes | str], batch_size: int = BATCH_SIZE
    ) -> ImportReport:
        return self.ingest_parsed(_read_jsonl(lines), batch_size)

    def ingest_parsed(self, items: Iterable[Parsed], batch_size: int = BATCH_SIZE) -> ImportReport:
        report = ImportReport()
        tariff_of = self._account_tariffs()
        batch: list[tuple[int, Event, str]] = []
        for item in items:
            ready = self._check(item, tariff_of, report)
            if ready is not None:
                batch.append(ready)
                if len(batch) >= batch_size:
                    self._store_batch(batch, tariff_of, report)
                    batch = []
        if batch:
            self._store_batch(batch, tariff_of, report)
        return report

    def _account_tariffs(self) -> dict[str, str]:
        return {a.name: a.tariff for a in accounts.list_accounts(self.conn)}

    def _check(
        self, item: Parsed, tariff_of: dict[str, str], report: ImportReport
    ) -> tuple[int, Event, str] | None:
        obj = item.obj
        if item.error is not None:
            report.rejected.append(Rejection(item.line, None, item.error))
            return None
        event_id = obj.get("id") if isinstance(obj, dict) else None
        try:
            event = parse_event(obj)
        except EventError as exc:
            shown = event_id if isinstance(event_id, str) else None
            report.rejected.append(Rejection(item.line, shown, str(exc)))
            return None
        if event.account not in tariff_of:
            report.rejected.append(
                Rejection(
                    item.line,
                    event.id,
                    f"account: unknown account '{event.account}'; create it with "
                    f"'flexvoice accounts create {event.account} --tariff NAME'",
                )
            )
            return None
        return item.line, event, canonical(obj)

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

    def _store_batch(
        self, batch: list[tuple[int, Event, str]], tariff_of: dict[str, str], report: ImportReport
    ) -> None:
        conn = self.conn
        rows: list[tuple[Any, ...]] = []
        unrated: list[Rejection] = []
        imported = duplicates = 0
        rejected: list[Rejection] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Under the write lock, so no other importer can store one of these ids meanwhile.
            stored = self._stored_payloads([event.id for _, event, _ in batch])
            for line, event, payload in batch:
                before = stored.get(event.id)
                if before is not None:
                    if before == payload:
                        duplicates += 1
                    else:
                        rejected.append(
                            Rejection(
                                line,
                                event.id,
                                "id: already imported with a different content; the stored "
                                "event is kept (give a corrected event a new id)",
                            )
                        )
                    continue
                stored[event.id] = payload
                result = self._rate(event, tariff_of[event.account])
                if isinstance(result, Unrated):
                    unrated.append(Rejection(line, event.id, result.reason))
                last: str | None = event.month
                if event.kind in PERIOD_KINDS:
                    last = last_month_touched(event.until) if event.until else None
                head = (event.id, event.account, event.kind, event.month, last, payload)
                rows.append((*head, *_charge_columns(result)))
                imported += 1
            conn.executemany(
                "INSERT INTO usage_events (id, account, kind, month, last_month, payload, "
                "service, quantity, unit, unit_price, amount, tariff_version, unrated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        # Counted only once committed: a crash never reports as imported what was not stored.
        report.imported += imported
        report.duplicates += duplicates
        report.rejected += rejected
        report.unrated += unrated

    def _stored_payloads(self, ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for i in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[i : i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT id, payload FROM usage_events WHERE id IN ({marks})", chunk
            ):
                found[row[0]] = row[1]
        return found

    # ---- statements ---------------------------------------------------------------------

    def detail(self, month: str, account: str | None = None) -> Iterator[DetailLine]:
        """Every event charged in `month`, ordered by account then event id."""
        check_month(month)
        periods = sorted(self._period_lines(month, account), key=lambda d: (d.account, d.event_id))
        merged = _merge_sorted(self._point_lines(month, account), periods)
        return merged

    def _point_lines(self, month: str, account: str | None) -> Iterator[DetailLine]:
        sql = (
            "SELECT account, id, service, quantity, unit, unit_price, amount, tariff_version, "
            "unrated FROM usage_events WHERE month = ? AND kind NOT IN ('number', 'designer')"
        )
        args: list[str] = [month]
        if account is not None:
            sql += " AND account = ?"
            args.append(account)
        sql += " ORDER BY account, id"
        cur = self.conn.execute(sql, args)
        cur.row_factory = None  # plain tuples: faster for a million rows
        for acc, eid, service, qty, unit, price, amount, version, unrated in cur:
            if unrated is not None:
                yield DetailLine(acc, month, eid, "", None, "", None, None, "", unrated)
            else:
                yield DetailLine(
                    acc,
                    month,
                    eid,
                    service,
                    Decimal(qty),
                    unit,
                    Decimal(price),
                    Decimal(amount),
                    version,
                    "",
                )

    def _period_lines(self, month: str, account: str | None) -> list[DetailLine]:
        sql = (
            "SELECT account, id, payload FROM usage_events WHERE kind IN ('number', 'designer') "
            "AND month <= ? AND (last_month IS NULL OR last_month >= ?)"
        )
        args: list[str] = [month, month]
        if account is not None:
            sql += " AND account = ?"
            args.append(account)
        tariff_of = self._account_tariffs()
        events = sorted(
            (parse_event(json.loads(row[2])) for row in self.conn.execute(sql, args)),
            key=lambda e: (e.account, e.at, e.id),
        )
        out: list[DetailLine] = []
        charged: dict[tuple[str, str, str | None], str] = {}
        for event in events:
            tariff = self._tariff(tariff_of.get(event.account, ""))
            if tariff is None:
                reason = f"the account's tariff '{tariff_of.get(event.account)}' has no file"
                out.append(
                    DetailLine(event.account, month, event.id, "", None, "", None, None, "", reason)
                )
                continue
            result = rate_period_month(event, tariff, month)
            if isinstance(result, Unrated):
                out.append(
                    DetailLine(
                        event.account, month, event.id, "", None, "", None, None, "", result.reason
                    )
                )
                continue
            # A number is charged once a month however often it was (de)activated in it.
            key = (event.account, event.kind, event.number)
            first = charged.setdefault(key, event.id)
            if first != event.id:
                out.append(
                    DetailLine(
                        event.account,
                        month,
                        event.id,
                        result.service,
                        ZERO,
                        result.unit,
                        result.unit_price,
                        ZERO,
                        result.version,
                        f"already charged this month by event '{first}'",
                    )
                )
                continue
            out.append(
                DetailLine(
                    event.account,
                    month,
                    event.id,
                    result.service,
                    result.quantity,
                    result.unit,
                    result.unit_price,
                    result.amount,
                    result.version,
                    "",
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
        return points + sum(1 for d in self._period_lines(month, account) if d.amount is None)

    def statement(self, month: str, account: str | None = None) -> list[StatementLine]:
        """Per account: one line per service, minimum true-ups, subtotal, VAT, total, then
        one line per reason of unrated events."""
        check_month(month)
        lines: dict[str, dict[str, _Line]] = defaultdict(dict)
        unrated: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for d in self.detail(month, account):
            if d.amount is None or d.quantity is None:
                unrated[d.account][d.note] += 1
                continue
            line = lines[d.account].get(d.service)
            if line is None:
                line = lines[d.account][d.service] = _Line(unit=d.unit)
            line.quantity += d.quantity
            line.amount += d.amount
            if d.unit_price is not None and d.quantity:
                line.prices.add(d.unit_price)
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
        from flexvoice.metering.export import export

        if fmt not in ("csv", "json"):
            raise ValueError(f"format must be csv or json (got {fmt!r})")
        return export(self, month, account, "csv" if fmt == "csv" else "json", detail)

    # ---- rerate -------------------------------------------------------------------------

    def rerate(self, month: str) -> RerateReport:
        """Rate the month's events again with the tariffs and account tariffs now in force."""
        check_month(month)
        report = RerateReport()
        tariff_of = self._account_tariffs()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(
                "SELECT id, account, payload, service, quantity, unit, unit_price, amount, "
                "tariff_version, unrated FROM usage_events WHERE month = ?",
                (month,),
            )
            cur.row_factory = None
            updates: list[tuple[Any, ...]] = []
            for row in cur.fetchall():
                report.events += 1
                event = parse_event(json.loads(row[2]))
                columns = _charge_columns(self._rate(event, tariff_of.get(row[1], "")))
                if columns[-1] is not None:
                    report.unrated += 1
                if columns != tuple(row[3:]):
                    updates.append((*columns, row[0]))
            conn.executemany(
                "UPDATE usage_events SET service = ?, quantity = ?, unit = ?, unit_price = ?, "
                "amount = ?, tariff_version = ?, unrated = ? WHERE id = ?",
                updates,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        report.changed = len(updates)
        return report


_TICK = timedelta(microseconds=1)


def _merge_sorted(a: Iterable[DetailLine], b: list[DetailLine]) -> Iterator[DetailLine]:
    return heapq.merge(a, b, key=lambda d: (d.account, d.event_id))


def _read_jsonl(lines: Iterable[bytes | str]) -> Iterator[Parsed]:
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            yield Parsed(number, error=f"not UTF-8 text (byte {exc.start}); save the file as UTF-8")
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Parsed(number, error=f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        yield Parsed(number, obj)
