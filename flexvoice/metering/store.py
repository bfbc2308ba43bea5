"""Rated usage in SQLite: import (idempotent by event id), monthly statements, rerate.

One row per event holds the event as received (the audit record and the input of a rerate)
and, for point events, its charge: whole billable units (seconds or a count), the divisor
that makes them the tariff's unit (60 for per-minute prices) and the unit price as text.
Units add up exactly as integers in SQL; prices are applied with `Decimal` in Python, so no
binary float ever touches money. Number and designer periods are priced per month when a
statement asks for that month, since an open period has no last month to store charges for.

Each import batch is one transaction; an id already stored is found by the unique index
(and its content compared), so a re-run after a crash counts the committed batches as
duplicates and stores nothing twice.
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
import queue
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from flexvoice import accounts
from flexvoice.config import Config
from flexvoice.metering.events import Event, EventError, parse_event
from flexvoice.metering.money import ZERO, cents, fmt_price
from flexvoice.metering.rating import Charge, Unrated, rate, rate_period_month
from flexvoice.metering.tariffs import Tariff, TariffBook, load_tariffs
from flexvoice.metering.timing import check_month, last_month_touched, month_end
from flexvoice.storage.sqlite import connect, migrate

PERIOD_KINDS = ("number", "designer")
BATCH_SIZE = 5000
_LOOKUP_CHUNK = 500

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
    closed: int = 0  # of `imported`: open number/designer periods given their end (same id)
    rejected: list[Rejection] = field(default_factory=list)
    unrated: list[Rejection] = field(default_factory=list)  # imported, but not priced yet

    def merge(self, other: ImportReport) -> None:
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.closed += other.closed
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

    def as_dict(self) -> dict[str, str | None]:
        """For JSON (the API): decimals as strings, never floats."""
        return {
            "account": self.account,
            "month": self.month,
            "service": self.service,
            "row": self.row,
            "quantity": None if self.quantity is None else str(self.quantity),
            "unit": self.unit,
            "unit_price_eur": None if self.unit_price is None else str(self.unit_price),
            "amount_eur": None if self.amount is None else str(self.amount),
        }


class DetailLine(NamedTuple):
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


# One event's row for a detail export, straight from SQL: (account, event_id, service, units,
# divisor, unit, unit_price text, tariff_version, note); units is None when unrated.
RawDetail = tuple[str, str, str, int | None, int | None, str, str | None, str, str]


class Parsed:
    """An input item with its line number: an object (and its JSON text), or why not."""

    __slots__ = ("error", "line", "obj", "raw")

    def __init__(
        self, line: int, obj: Any = None, error: str | None = None, raw: str | None = None
    ):
        self.line, self.obj, self.error, self.raw = line, obj, error, raw


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def same_event(stored: str, new: str) -> bool:
    """Same content whatever the key order or spacing (only checked when ids collide)."""
    if stored == new:
        return True
    return canonical(json.loads(stored)) == canonical(json.loads(new))


def closes_period(stored: str, new: str) -> bool:
    """True when `new` is the stored open period (number, designer) with its end now set:
    the one change an id may take, since the engine writes a period when it opens and the
    same event with `active_to` when it closes. Anything else about it stays as stored."""
    before, after = json.loads(stored), json.loads(new)
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return False
    if before.get("kind") not in PERIOD_KINDS or before.get("active_to") is not None:
        return False
    if after.get("active_to") is None:
        return False
    rest = {k: v for k, v in after.items() if k != "active_to"}
    return canonical({k: v for k, v in before.items() if k != "active_to"}) == canonical(rest)


def _charge_columns(result: Charge | Unrated | None) -> tuple[Any, ...]:
    if isinstance(result, Charge):
        return (
            result.service,
            result.units,
            result.divisor,
            result.unit,
            fmt_price(result.unit_price),
            result.version,
            None,
        )
    reason = result.reason if isinstance(result, Unrated) else None
    return (None, None, None, None, None, None, reason)


def detail_line(month: str, raw: RawDetail) -> DetailLine:
    account, event_id, service, units, divisor, unit, price, version, note = raw
    if units is None or divisor is None or price is None:
        return DetailLine(account, month, event_id, service, None, unit, None, None, version, note)
    unit_price = Decimal(price)
    return DetailLine(
        account,
        month,
        event_id,
        service,
        Decimal(units) / divisor,
        unit,
        unit_price,
        unit_price * units / divisor,
        version,
        note,
    )


class UsageStore:
    def __init__(self, conn: sqlite3.Connection, tariffs: TariffBook):
        self.conn = conn
        self.tariffs = tariffs
        # A bigger page cache for this connection: the id index takes inserts in any order.
        conn.execute("PRAGMA cache_size = -65536")
        accounts.ensure_schema(conn)
        migrate(conn, "metering", MIGRATIONS)

    @classmethod
    def from_config(cls, cfg: Config, database: Path | None = None) -> UsageStore:
        """The node's store: `storage.database` (or `database`), tariffs of `paths.tariffs`."""
        db = database if database is not None else cfg.path(cfg.storage.database)
        return cls(connect(db), load_tariffs(cfg.path(cfg.paths.tariffs)))

    # ---- import -------------------------------------------------------------------------

    def ingest(self, events: Iterable[Any], batch_size: int = BATCH_SIZE) -> ImportReport:
        """Import event objects (dicts); positions count from 1 as line numbers."""
        return self.ingest_parsed(
            (Parsed(n, obj) for n, obj in enumerate(events, start=1)), batch_size
        )

    def ingest_jsonl(
        self, lines: Iterable[bytes | str], batch_size: int = BATCH_SIZE
    ) -> ImportReport:
        return self.ingest_parsed(read_jsonl(lines), batch_size)

    def ingest_file(self, path: Path, jobs: int = 1, batch_size: int = BATCH_SIZE) -> ImportReport:
        """Import a JSON Lines file. With jobs > 1, worker processes each take chunks of
        `batch_size` lines, parse and rate them and store each chunk in one transaction of
        their own (SQLite lets one write at a time; the others parse meanwhile). Every chunk
        is committed whole or not at all, as in a single-process import, so a crash loses
        nothing reported and a re-run doubles nothing. For commands: it forks."""
        database = database_file(self.conn)
        if jobs <= 1 or database is None:
            with path.open("rb") as lines:
                return self.ingest_jsonl(lines, batch_size)
        report = ImportReport()
        # fork: the workers inherit the tariffs instead of receiving them pickled.
        ctx = multiprocessing.get_context("fork")
        args = (database, self.tariffs, self._account_tariffs())
        with (
            path.open("rb") as lines,
            ctx.Pool(jobs, initializer=_init_worker, initargs=args) as pool,
        ):
            for part in pool.imap_unordered(_work, _chunks(lines, batch_size)):
                report.merge(part)
        report.rejected.sort(key=lambda r: r.line)
        report.unrated.sort(key=lambda r: r.line)
        return report

    def ingest_parsed(self, items: Iterable[Parsed], batch_size: int = BATCH_SIZE) -> ImportReport:
        """Parse and rate here while a writer thread stores the previous batch: sqlite3
        releases the GIL while SQLite works, so the two overlap on two cores."""
        report = ImportReport()
        tariff_of = self._account_tariffs()
        writer = _Writer(self)
        try:
            batch: list[_Ready] = []
            for item in items:
                ready = self._check(item, tariff_of, report)
                if ready is not None:
                    batch.append(self._ready(*ready, tariff_of))
                    if len(batch) >= batch_size:
                        writer.put(batch)
                        batch = []
            if batch:
                writer.put(batch)
        finally:
            written = writer.close()
        report.merge(written)
        report.rejected.sort(key=lambda r: r.line)
        report.unrated.sort(key=lambda r: r.line)
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
        raw = item.raw
        if raw is None:
            try:
                raw = json.dumps(obj, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                report.rejected.append(Rejection(item.line, event.id, f"not JSON data: {exc}"))
                return None
        return item.line, event, raw

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

    def _ready(self, line: int, event: Event, payload: str, tariff_of: dict[str, str]) -> _Ready:
        """The row to store for one event, rated, and its unrated notice if any."""
        result = self._rate(event, tariff_of[event.account])
        notice = Rejection(line, event.id, result.reason) if isinstance(result, Unrated) else None
        last: str | None = event.month
        if event.kind in PERIOD_KINDS:
            last = last_month_touched(event.until) if event.until else None
        head = (event.month, event.account, event.id, event.kind, last, payload)
        return line, (*head, *_charge_columns(result)), notice

    def _store_batch(self, batch: list[_Ready], report: ImportReport) -> None:
        """One transaction. Counted in `report` only once committed: a crash never reports
        as imported what was not stored."""
        conn = self.conn
        # Fast path: no id of the batch is stored yet (the usual case for new usage); the
        # unique index makes INSERT OR IGNORE skip any that is, and then the batch is
        # redone the careful way, comparing contents.
        if len({row[_ID] for _, row, _ in batch}) == len(batch):
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                conn.executemany(_INSERT_OR_IGNORE, [row for _, row, _ in batch])
                if conn.total_changes - before == len(batch):
                    conn.execute("COMMIT")
                    report.imported += len(batch)
                    report.unrated += [notice for _, _, notice in batch if notice is not None]
                    return
                conn.execute("ROLLBACK")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        rows: list[tuple[Any, ...]] = []
        closings: list[tuple[Any, ...]] = []
        unrated: list[Rejection] = []
        rejected: list[Rejection] = []
        duplicates = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Under the write lock, so no other importer can store one of these ids meanwhile.
            stored = self._stored_payloads([row[_ID] for _, row, _ in batch])
            for line, row, notice in batch:
                before_payload = stored.get(row[_ID])
                if before_payload is not None:
                    if same_event(before_payload, row[_PAYLOAD]):
                        duplicates += 1
                    elif closes_period(before_payload, row[_PAYLOAD]):
                        closings.append((row[_LAST], row[_PAYLOAD], row[_ID]))
                        stored[row[_ID]] = row[_PAYLOAD]
                    else:
                        rejected.append(
                            Rejection(
                                line,
                                row[_ID],
                                "id: already imported with a different content; the stored "
                                "event is kept (give a corrected event a new id)",
                            )
                        )
                    continue
                stored[row[_ID]] = row[_PAYLOAD]
                rows.append(row)
                if notice is not None:
                    unrated.append(notice)
            conn.executemany(_INSERT, rows)
            conn.executemany(_CLOSE_PERIOD, closings)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        report.imported += len(rows) + len(closings)
        report.closed += len(closings)
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
            "unit_price, coalesce(tariff_version, ''), coalesce(unrated, '') FROM usage_events "
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
            "SELECT account, service, unit, unit_price, divisor, sum(units) FROM usage_events "
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
        from flexvoice.metering.export import export

        if fmt not in ("csv", "json"):
            raise ValueError(f"format must be csv or json (got {fmt!r})")
        return export(self, month, account, "csv" if fmt == "csv" else "json", detail)

    # ---- rerate -------------------------------------------------------------------------

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
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "SELECT account, id, payload, service, units, divisor, unit, unit_price, "
                    "tariff_version, unrated FROM usage_events "
                    "WHERE month = ? AND (account, id) > (?, ?) ORDER BY account, id LIMIT ?",
                    (month, *after, chunk),
                )
                cur.row_factory = None
                rows = cur.fetchall()
                updates: list[tuple[Any, ...]] = []
                for row in rows:
                    event = parse_event(json.loads(row[2]))
                    columns = _charge_columns(self._rate(event, tariff_of.get(row[0], "")))
                    if columns[-1] is not None:
                        report.unrated += 1
                    if columns != tuple(row[3:]):
                        updates.append((*columns, row[1]))
                conn.executemany(
                    "UPDATE usage_events SET service = ?, units = ?, divisor = ?, unit = ?, "
                    "unit_price = ?, tariff_version = ?, unrated = ? WHERE id = ?",
                    updates,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            report.events += len(rows)
            report.changed += len(updates)
            if len(rows) < chunk:
                return report
            after = (rows[-1][0], rows[-1][1])


_TICK = timedelta(microseconds=1)
_INSERT = (
    "INSERT INTO usage_events (month, account, id, kind, last_month, payload, "
    "service, units, divisor, unit, unit_price, tariff_version, unrated) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_OR_IGNORE = _INSERT.replace("INSERT", "INSERT OR IGNORE", 1)
_ID, _LAST, _PAYLOAD = 2, 4, 5  # positions in a row of _INSERT
_CLOSE_PERIOD = "UPDATE usage_events SET last_month = ?, payload = ? WHERE id = ?"

# (line, row for _INSERT, unrated notice or None)
_Ready = tuple[int, tuple[Any, ...], Rejection | None]


class _Writer:
    """Stores batches on a thread of its own, one transaction each, in order."""

    def __init__(self, store: UsageStore):
        self.store = store
        self.report = ImportReport()
        self.error: BaseException | None = None
        self.queue: queue.Queue[list[_Ready] | None] = queue.Queue(maxsize=2)
        self.thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.store._store_batch(batch, self.report)
                except BaseException as exc:  # handed to the importing thread
                    self.error = exc

    def put(self, batch: list[_Ready]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(batch)

    def close(self) -> ImportReport:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.report


def read_jsonl(lines: Iterable[bytes | str], start: int = 1) -> Iterator[Parsed]:
    """Parse JSON Lines, keeping each line's text (stored as received) and number."""
    loads = json.loads
    for number, raw in enumerate(lines, start=start):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            yield Parsed(number, error=f"not UTF-8 text (byte {exc.start}); save the file as UTF-8")
            continue
        if text.endswith("\n"):
            text = text[:-1]
        try:
            obj = loads(text)
        except json.JSONDecodeError as exc:
            if not text.strip():
                continue  # blank lines are allowed
            yield Parsed(number, error=f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        yield Parsed(number, obj, raw=text)


# ---- worker processes of ingest_file ------------------------------------------------------

_worker: tuple[UsageStore, dict[str, str]] | None = None


def database_file(conn: sqlite3.Connection) -> Path | None:
    """The file of the connection's main database; None for an in-memory one."""
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return Path(row[2]) if row[2] else None
    return None


def _init_worker(database: Path, tariffs: TariffBook, tariff_of: dict[str, str]) -> None:
    global _worker
    # A connection of its own: one inherited through fork must never be used.
    _worker = (UsageStore(connect(database), tariffs), tariff_of)


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[tuple[int, list[bytes]]]:
    chunk: list[bytes] = []
    first = 1
    for number, line in enumerate(lines, start=1):
        if not chunk:
            first = number
        chunk.append(line)
        if len(chunk) >= size:
            yield first, chunk
            chunk = []
    if chunk:
        yield first, chunk


def _work(job: tuple[int, list[bytes]]) -> ImportReport:
    assert _worker is not None
    store, tariff_of = _worker
    report = ImportReport()
    ready = []
    for item in read_jsonl(job[1], job[0]):
        checked = store._check(item, tariff_of, report)
        if checked is not None:
            ready.append(store._ready(*checked, tariff_of))
    if ready:
        store._store_batch(ready, report)
    return report
