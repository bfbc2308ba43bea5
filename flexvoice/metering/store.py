"""The usage store: `UsageStore` imports usage events into SQLite or PostgreSQL (idempotent by
event id, on a writer thread, or in worker processes for big files) and, through its bases, makes
statements (metering/statements.py) and rerates (metering/rerate.py).

One row per event holds the event as received (the audit record and the input of a rerate)
and, for point events, its charge: whole billable units (seconds or a count), the divisor
that makes them the tariff's unit (60 for per-minute prices) and the unit price as text.
Units add up exactly as integers in SQL; prices are applied with `Decimal` in Python, so no
binary float ever touches money. Number and designer periods are priced per month when a
statement asks for that month, since an open period has no last month to store charges for.

Each import batch is one transaction; an id already stored is found by the unique index
(and its content compared), so a re-run after a crash counts the committed batches as
duplicates and stores nothing twice. Importers take turns per batch (SQLite's write lock, or
an advisory lock on PostgreSQL), so several nodes importing the same events at once store
each id once and agree on which of them were duplicates.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from flexvoice.config import Config
from flexvoice.metering.events import Event, EventError, parse_event
from flexvoice.metering.rating import Unrated
from flexvoice.metering.records import (
    BATCH_SIZE,
    PERIOD_KINDS,
    DetailLine,
    ImportReport,
    Parsed,
    RawDetail,
    Rejection,
    RerateReport,
    StatementLine,
    charge_columns,
    closes_period,
    same_event,
)
from flexvoice.metering.rerate import Rerating
from flexvoice.metering.statements import Statements
from flexvoice.metering.tariffs import TariffBook, load_tariffs
from flexvoice.metering.timing import last_month_touched
from flexvoice.metering.usage_table import USAGE_LOCK
from flexvoice.storage.engine import Connection, write_transaction
from flexvoice.storage.open import open_shared
from flexvoice.storage.postgres import PgConnection
from flexvoice.storage.postgres import connect as postgres_connect
from flexvoice.storage.sqlite import connect

__all__ = [
    "BATCH_SIZE",
    "DetailLine",
    "ImportReport",
    "RawDetail",
    "Rejection",
    "RerateReport",
    "StatementLine",
    "UsageStore",
    "database_file",
    "read_jsonl",
]

_LOOKUP_CHUNK = 500


class UsageStore(Statements, Rerating):
    @classmethod
    def from_config(cls, cfg: Config, database: Path | str | None = None) -> UsageStore:
        """The node's store: `storage.database` (or `database`), tariffs of `paths.tariffs`."""
        return cls(open_shared(cfg, database), load_tariffs(cfg.path(cfg.paths.tariffs)))

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
        their own (one writes at a time; the others parse meanwhile). Every chunk is
        committed whole or not at all, as in a single-process import, so a crash loses
        nothing reported and a re-run doubles nothing. For commands: it forks."""
        database = reopen_target(self.conn)
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

    def _ready(self, line: int, event: Event, payload: str, tariff_of: dict[str, str]) -> _Ready:
        """The row to store for one event, rated, and its unrated notice if any."""
        result = self._rate(event, tariff_of[event.account])
        notice = Rejection(line, event.id, result.reason) if isinstance(result, Unrated) else None
        last: str | None = event.month
        if event.kind in PERIOD_KINDS:
            last = last_month_touched(event.until) if event.until else None
        head = (event.month, event.account, event.id, event.kind, last, payload)
        return line, (*head, *charge_columns(result)), notice

    def _store_batch(self, batch: list[_Ready], report: ImportReport) -> None:
        """One transaction. Counted in `report` only once committed: a crash never reports
        as imported what was not stored."""
        conn = self.conn
        # Fast path: no id of the batch is stored yet (the usual case for new usage); the
        # unique index makes DO NOTHING skip any that is, and then the batch is redone the
        # careful way, comparing contents.
        if len({row[_ID] for _, row, _ in batch}) == len(batch) and self._insert_all_new(batch):
            report.imported += len(batch)
            report.unrated += [notice for _, _, notice in batch if notice is not None]
            return
        rows: list[tuple[Any, ...]] = []
        closings: list[tuple[Any, ...]] = []
        unrated: list[Rejection] = []
        rejected: list[Rejection] = []
        duplicates = 0
        with write_transaction(conn, USAGE_LOCK):
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
        report.imported += len(rows) + len(closings)
        report.closed += len(closings)
        report.duplicates += duplicates
        report.rejected += rejected
        report.unrated += unrated

    def _insert_all_new(self, batch: list[_Ready]) -> bool:
        """Store the whole batch when none of its ids is stored yet; else store nothing."""
        try:
            with write_transaction(self.conn, USAGE_LOCK):
                cur = self.conn.executemany(_INSERT_NEW, [row for _, row, _ in batch])
                if cur.rowcount != len(batch):
                    raise _NotAllNew
        except _NotAllNew:
            return False
        return True

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


_INSERT = (
    "INSERT INTO usage_events (month, account, id, kind, last_month, payload, "
    "service, units, divisor, unit, unit_price, tariff_version, unrated) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_NEW = _INSERT + " ON CONFLICT (id) DO NOTHING"
_ID, _LAST, _PAYLOAD = 2, 4, 5  # positions in a row of _INSERT
_CLOSE_PERIOD = "UPDATE usage_events SET last_month = ?, payload = ? WHERE id = ?"


class _NotAllNew(Exception):
    """Some id of a batch is stored already: roll back and compare contents."""


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


def database_file(conn: Connection) -> Path | None:
    """The file of the connection's main database; None for an in-memory or PostgreSQL one."""
    if isinstance(conn, PgConnection):
        return None
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return Path(row[2]) if row[2] else None
    return None


def reopen_target(conn: Connection) -> Path | str | None:
    """What another process opens to reach the same store: a file, a URL, or None."""
    return conn.url if isinstance(conn, PgConnection) else database_file(conn)


def _init_worker(database: Path | str, tariffs: TariffBook, tariff_of: dict[str, str]) -> None:
    global _worker
    # A connection of its own: one inherited through fork must never be used.
    conn = postgres_connect(database) if isinstance(database, str) else connect(database)
    _worker = (UsageStore(conn, tariffs), tariff_of)


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
