"""The engine's live usage feed: `sink.record(event)` as things happen.

`record` appends one JSON line to a spool file with a single write() and returns: no
database work on the caller's path, and once write() returns the line is in the kernel, so a
crash of the process loses nothing. A task rotates the spool every `interval`, fsyncs the
rotated file (so a power cut after that loses nothing either) and imports it in one batch on
a worker thread; the file is deleted only after the import committed. A crash anywhere in
between leaves the file to be imported again at the next start, and since the store is
idempotent by event id, nothing is doubled.

Events that cannot be imported (malformed, unknown account, conflicting id) are logged and
kept as received in `rejected.jsonl` next to the spool (reasons in `rejected.log`), ready
to import by hand once the cause is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.metering.events import EventError, parse_event
from flexvoice.metering.store import ImportReport, UsageStore, database_file

log = get_logger(__name__)

RECORDED = Counter("flexvoice_usage_events_recorded", "Usage events recorded by the engine")
IMPORTED = Counter("flexvoice_usage_events_imported", "Usage events stored (new ids)")
REJECTED_EVENTS = Counter(
    "flexvoice_usage_events_rejected", "Usage events that could not be stored (see rejected.jsonl)"
)
UNRATED = Counter("flexvoice_usage_events_unrated", "Usage events stored but not priced")

SPOOL = "current.jsonl"
REJECTED = "rejected.jsonl"
REJECTED_LOG = "rejected.log"


class UsageSink:
    def __init__(
        self, spool_dir: Path, open_store: Callable[[], UsageStore], interval: float = 0.5
    ):
        self.dir = spool_dir
        self.open_store = open_store
        self.interval = interval
        self._lock = threading.Lock()  # record() may be called from SIP callback threads
        self._fd = -1
        self._store: UsageStore | None = None
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.recorded = 0
        self.imported = 0
        self.rejected = 0

    # ---- the caller's side -----------------------------------------------------------

    def record(self, event: dict[str, Any]) -> None:
        """Record one usage event (the event format of `flexvoice usage import`).

        Never raises for the event's content: it is called from call teardown paths that must
        not fail. A malformed event is logged and kept in rejected.jsonl (as are events the
        import refuses: unknown account, conflicting id)."""
        try:
            parse_event(event)
            line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
        except (EventError, TypeError, ValueError) as exc:
            self._reject(event, str(exc))
            return
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, line.encode())  # O_APPEND: one write, one whole line
            else:
                # Not open (yet, or any more): the spool file still takes it, and the next
                # open() imports it.
                self.dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.dir / SPOOL, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
            self.recorded += 1
        RECORDED.inc()

    # ---- life cycle ------------------------------------------------------------------

    def open(self) -> ImportReport:
        """Open the spool and import whatever a previous run left (blocking)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._store = self.open_store()
        report = self._import_pending()
        with self._lock:
            self._fd = os.open(self.dir / SPOOL, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        return report

    async def start(self) -> None:
        await asyncio.to_thread(self.open)
        self._task = asyncio.create_task(self._run(), name="usage-sink")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception as exc:  # the spool keeps the events for the next start
            log.error("usage.flush_failed", error=repr(exc))
        finally:
            with self._lock:
                if self._fd >= 0:
                    os.close(self._fd)
                    self._fd = -1
            if self._store is not None:
                self._store.conn.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception as exc:  # keep recording; the spool keeps the events meanwhile
                log.error("usage.flush_failed", error=repr(exc))

    async def flush(self) -> ImportReport:
        """Import everything recorded so far."""
        async with self._flushing:
            return await asyncio.to_thread(self._rotate_and_import)

    # ---- the worker thread's side ----------------------------------------------------

    def _rotate_and_import(self) -> ImportReport:
        with self._lock:
            if self._fd >= 0 and os.fstat(self._fd).st_size > 0:
                # Rename first, then reopen: record() always has a file to append to.
                os.rename(self.dir / SPOOL, self.dir / f"batch-{time.time_ns():020d}.jsonl")
                os.close(self._fd)
                self._fd = os.open(self.dir / SPOOL, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        return self._import_pending()

    def _import_pending(self) -> ImportReport:
        assert self._store is not None
        total = ImportReport()
        pending = sorted(self.dir.glob("batch-*.jsonl"))
        if self._fd < 0 and (self.dir / SPOOL).exists():
            pending.append(self.dir / SPOOL)  # left by a previous run
        for path in pending:
            with path.open("rb") as f:
                os.fsync(f.fileno())
                report = self._store.ingest_jsonl(f)
            self._keep_rejected(path, report)
            path.unlink()  # only now: until here a crash means importing it again
            total.merge(report)
        self.imported += total.imported
        IMPORTED.inc(total.imported)
        UNRATED.inc(len(total.unrated))
        if pending:
            log.debug(
                "usage.imported",
                imported=total.imported,
                duplicates=total.duplicates,
                rejected=len(total.rejected),
                unrated=len(total.unrated),
            )
        return total

    def _reject(self, event: Any, reason: str) -> None:
        event_id = event.get("id") if isinstance(event, dict) else None
        text = json.dumps(event, ensure_ascii=False, default=repr)
        with self._lock:
            self._keep([(text, event_id if isinstance(event_id, str) else None, reason)])

    def _keep_rejected(self, path: Path, report: ImportReport) -> None:
        if not report.rejected:
            return
        lines = path.read_bytes().splitlines()
        self._keep(
            [
                (lines[r.line - 1].decode("utf-8", "replace"), r.event_id, r.reason)
                for r in report.rejected
            ]
        )

    def _keep(self, refused: list[tuple[str, str | None, str]]) -> None:
        keep_refused(self.dir, refused)
        self.rejected += len(refused)


class StoreSink:
    """For one-shot commands (`flexvoice numbers add`): each event goes straight into the
    store, and a rejected one stops the command with the store's reason. The caller has
    already committed what the event records (the number is added), so the refused event is
    also kept in the spool folder's rejected.jsonl, to import once the cause is fixed."""

    def __init__(self, store: UsageStore, spool: Path | None = None):
        self.store = store
        # Where a refused event is kept: beside the store's SQLite file, else `spool` (the
        # node's own spool, storage.local's folder, when the store is PostgreSQL).
        database = database_file(store.conn)
        if database is not None:
            self.spool = database.parent / "usage-spool"
        else:
            self.spool = spool if spool is not None else Path("var") / "usage-spool"

    def record(self, event: dict[str, Any]) -> None:
        report = self.store.ingest([event])
        if report.rejected:
            reason = report.rejected[0].reason
            text = json.dumps(event, ensure_ascii=False, default=repr)
            event_id = event.get("id")
            keep_refused(
                self.spool, [(text, event_id if isinstance(event_id, str) else None, reason)]
            )
            raise UserError(
                f"usage event {event_id}: {reason} (kept in {self.spool}/{REJECTED}: import "
                "it once this is fixed)"
            )


def keep_refused(folder: Path, refused: list[tuple[str, str | None, str]]) -> None:
    """The events as received in rejected.jsonl (importable once the cause is fixed:
    `flexvoice usage import var/usage-spool/rejected.jsonl`), the reasons in rejected.log,
    line for line."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with (
        (folder / REJECTED).open("a", encoding="utf-8") as events,
        (folder / REJECTED_LOG).open("a", encoding="utf-8") as reasons,
    ):
        for text, event_id, reason in refused:
            events.write(text + "\n")
            reasons.write(f"{stamp} {event_id or '-'}: {reason}\n")
            log.error("usage.rejected", event_id=event_id, reason=reason)
        for out in (events, reasons):
            out.flush()
            os.fsync(out.fileno())
    REJECTED_EVENTS.inc(len(refused))
