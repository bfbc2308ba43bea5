"""A recording's life: opened (a row `in-progress` and a path under `<account>/`), paused and
resumed, closed (the file is read back: duration, size, sha256; one `recording` usage event;
a signed `recording.completed` or `recording.failed` webhook), and deleted by the API or by
the account's retention.

The file is the truth: a recording's duration is the audio on disk, so what is billed is what
the customer can play. A file the worker could not close (the worker died, or the node did)
has its header repaired from its length and is completed with a note saying so.

No SIP here: legs are driven through `RecordableLeg`, usage, webhooks, prices and retention
come in as functions, and the clock is injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Protocol

from flexvoice.clock import utc_now
from flexvoice.logs import get_logger
from flexvoice.recordings.store import OPEN_STATUSES, Kind, RecordingRow, RecordingStore
from flexvoice.recordings.wav import (
    WavError,
    WavInfo,
    channel_paths,
    interleave,
    read_info,
    repair,
    sha256,
)

log = get_logger(__name__)

DEFAULT_RETENTION_DAYS = 90
PRICE_QUANTUM = Decimal("0.0001")
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]")


class RecordableLeg(Protocol):
    """What a whole-call recording needs of a leg (flexvoice.sip.leg.SipLeg has it)."""

    call_id: str

    async def start_recording(self, path: Path, second: Path | None = None) -> None: ...

    async def pause_recording(self) -> None: ...

    async def resume_recording(self) -> None: ...

    async def stop_recording(self) -> Any: ...


class UsageSink(Protocol):
    def record(self, event: dict[str, Any]) -> None: ...


class WebhookSender(Protocol):
    def enqueue(self, account: str, url: str, event: str, payload: dict[str, Any]) -> None: ...


# (account, usage event) -> (billable seconds, price or None, why no price)
PriceUsage = Callable[[str, dict[str, Any]], tuple[int, Decimal | None, str | None]]


class RecordingConflict(Exception):
    """A live command that does not fit the recording's state (pause when none runs ...)."""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Examined:
    """What a closed recording's file holds: its facts, or why there is nothing to keep."""

    note: str | None
    failed: str | None = None
    info: WavInfo | None = None
    size: int = 0
    digest: str = ""


@dataclass
class Live:
    row: RecordingRow
    leg: RecordableLeg
    stopping: asyncio.Task[RecordingRow] | None = None


class RecordingService:
    def __init__(
        self,
        store: RecordingStore,
        folder: Path,
        *,
        usage_sink: UsageSink | None = None,
        webhooks: WebhookSender | None = None,
        callback_for: Callable[[str], str | None] | None = None,
        price_usage: PriceUsage | None = None,
        retention_days_for: Callable[[str], int | None] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ):
        self.store = store
        self.folder = folder
        self.usage_sink = usage_sink
        self.webhooks = webhooks
        self.callback_for = callback_for
        self.price_usage = price_usage
        self.retention_days_for = retention_days_for
        self.clock = clock
        self.live: dict[str, Live] = {}  # call id -> its whole-call recording
        self.tasks: set[asyncio.Task[RecordingRow]] = set()

    # -- opening ----------------------------------------------------------------------------
    def open(
        self,
        account: str,
        call_id: str,
        kind: Kind,
        *,
        callback: str | None = None,
        channels: int = 1,
    ) -> tuple[RecordingRow, Path]:
        """A new recording row (in-progress) and the absolute path its audio goes to."""
        rec_id = "RE" + uuid.uuid4().hex
        now = iso(self.clock())
        row = RecordingRow.started(
            rec_id,
            account=account,
            call_id=call_id,
            kind=kind,
            # A call that reached no account (a test number) still gets a relative path.
            path=f"{_SAFE.sub('_', account) or '_unassigned'}/{rec_id}.wav",
            channels=channels,
            at=now,
            callback=callback,
        )
        self.store.insert(row)
        path = self.path_of(row)
        with contextlib.suppress(OSError):  # the worker reports it if it cannot write there
            path.parent.mkdir(parents=True, exist_ok=True)
        log.info("recording.opened", recording_id=rec_id, call_id=call_id, kind=kind)
        return row, path

    def path_of(self, row: RecordingRow) -> Path:
        path = Path(row.path)
        return path if path.is_absolute() else self.folder / path

    # -- whole-call recordings, live control ------------------------------------------------
    async def start(
        self,
        leg: RecordableLeg,
        account: str,
        *,
        callback: str | None = None,
        channels: int = 1,
    ) -> RecordingRow:
        """Record the rest of the call (both parties: mixed, or with channels=2 the leg's
        party on the left channel and what it hears on the right). One at a time per call."""
        if leg.call_id in self.live:
            raise RecordingConflict(f"call {leg.call_id} is already being recorded")
        if channels not in (1, 2):
            raise ValueError(f"a recording has 1 or 2 channels, not {channels}")
        row, path = self.open(account, leg.call_id, "call", callback=callback, channels=channels)
        live = Live(row, leg)
        self.live[leg.call_id] = live
        try:
            if channels == 2:
                await leg.start_recording(*channel_paths(path))
            else:
                await leg.start_recording(path)
        except Exception as exc:
            self.live.pop(leg.call_id, None)
            await self.close_off_loop(row.id, note=f"could not start: {exc}")
            raise
        hooks = getattr(leg, "on_ended", None)
        if isinstance(hooks, list):
            # However the call ends (hangup, worker lost), its recording is closed.
            hooks.append(lambda _leg: self._stop_soon(leg.call_id))
        return row

    def _stop_soon(self, call_id: str) -> None:
        live = self.live.get(call_id)
        if live is not None and live.stopping is None:
            live.stopping = self._spawn(self._stop(call_id, live))

    def _spawn(self, coro: Any) -> asyncio.Task[RecordingRow]:
        task: asyncio.Task[RecordingRow] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def drain(self, timeout: float) -> None:
        """Node shutdown: let recordings being closed finish (their calls were hung up)."""
        for live in list(self.live.values()):
            if live.stopping is None:
                self._stop_soon(live.row.call_id)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)

    async def pause(self, call_id: str) -> RecordingRow:
        live = self._live(call_id)
        if live.row.status == "paused":
            return live.row
        await live.leg.pause_recording()
        live.row = self.store.update(live.row, status="paused")
        return live.row

    async def resume(self, call_id: str) -> RecordingRow:
        live = self._live(call_id)
        if live.row.status != "paused":
            return live.row
        await live.leg.resume_recording()
        live.row = self.store.update(live.row, status="in-progress")
        return live.row

    async def stop(self, call_id: str) -> RecordingRow | None:
        """Stop the call's whole-call recording; None when there is none."""
        live = self.live.get(call_id)
        if live is None:
            return None
        if live.stopping is None:
            live.stopping = self._spawn(self._stop(call_id, live))
        return await asyncio.shield(live.stopping)

    async def _stop(self, call_id: str, live: Live) -> RecordingRow:
        note = None
        try:
            result = await live.leg.stop_recording()
            if result is None:
                note = "the call's media worker stopped before closing the file"
        except Exception as exc:  # the worker is gone: the file holds what was written
            note = f"the recording was not closed cleanly ({type(exc).__name__})"
        finally:
            self.live.pop(call_id, None)
        return await self.close_off_loop(live.row.id, note=note)

    def _live(self, call_id: str) -> Live:
        live = self.live.get(call_id)
        if live is None or live.stopping is not None:
            raise RecordingConflict(f"call {call_id} is not being recorded")
        return live

    # -- closing ----------------------------------------------------------------------------
    def close(self, rec_id: str, *, note: str | None = None) -> RecordingRow:
        """Read the closed (or abandoned) file back and finish the row; idempotent. For start-up
        and tools: on a running node use close_off_loop."""
        row = self.store.get(rec_id)
        if row is None:
            raise KeyError(rec_id)
        if not row.open:
            return row
        return self._finish(row, self._examine(row, note))

    async def close_off_loop(self, rec_id: str, *, note: str | None = None) -> RecordingRow:
        """close(), with the file work in a thread: joining two halves, reading back and
        hashing an hour of dual-channel audio is about 115 MB, which on the event loop would
        stall every call of the node. Shielded: a cancelled caller still gets its row finished."""
        row = self.store.get(rec_id)
        if row is None:
            raise KeyError(rec_id)
        if not row.open:
            return row
        examined = await asyncio.shield(asyncio.to_thread(self._examine, row, note))
        return self._finish(row, examined)

    def _examine(self, row: RecordingRow, note: str | None) -> Examined:
        """The file's facts (joined, repaired when needed, sized and hashed), or why it failed."""
        path = self.path_of(row)
        try:
            if row.channels == 2:
                note = self._join_channels(path, note)
            info = read_info(path)
            if info.open or info.data_size != info.on_disk_data:
                info = repair(path)
                fixed = "header repaired from the file's length (playable to its last second)"
                note = f"{note}; {fixed}" if note else fixed
        except FileNotFoundError:
            return Examined(note, failed=note or "no audio was written (the call had no media)")
        except (WavError, OSError) as exc:
            return Examined(note, failed=f"unreadable audio file: {exc}")
        if info.data_size == 0:
            path.unlink(missing_ok=True)
            return Examined(note, failed=note or "no audio was received")
        return Examined(note, info=info, size=path.stat().st_size, digest=sha256(path))

    def _finish(self, row: RecordingRow, examined: Examined) -> RecordingRow:
        """Bill and complete the row from its file's facts (on the event loop: store, usage)."""
        note, info = examined.note, examined.info
        if examined.failed is not None or info is None:
            return self._fail(row, examined.failed or "no audio was received")
        started = datetime.fromisoformat(row.started_at)
        duration = round(info.duration, 3)
        ended = started + timedelta(seconds=duration)
        event = {
            "id": row.id,
            "account": row.account,
            "kind": "recording",
            "call_id": row.call_id,
            "started_at": iso(started),
            "ended_at": iso(ended),
        }
        billable, price, why = -(-int(duration * 1000) // 1000), None, None
        if self.price_usage is not None:
            try:
                billable, price, why = self.price_usage(row.account, event)
            except Exception as exc:  # a pricing bug must not lose the recording
                log.exception("recording.price_failed", recording_id=row.id)
                why = f"pricing failed: {exc}"
        if why and price is None:
            note = f"{note}; not priced: {why}" if note else f"not priced: {why}"
        row = self.store.update(
            row,
            status="completed",
            ended_at=iso(ended),
            duration_seconds=duration,
            size_bytes=examined.size,
            channels=info.channels,
            sha256=examined.digest,
            billable_seconds=billable,
            price_eur=str(price.quantize(PRICE_QUANTUM, ROUND_HALF_UP))
            if price is not None
            else None,
            note=note,
        )
        if self.usage_sink is not None and row.account:  # no account: nobody to bill
            try:
                self.usage_sink.record(event)
            except Exception:  # the sink spools; a failure here must not lose the row
                log.exception("recording.usage_failed", recording_id=row.id)
        log.info("recording.completed", recording_id=row.id, seconds=duration, note=note)
        self._notify(row, "recording.completed")
        return row

    @staticmethod
    def _join_channels(path: Path, note: str | None) -> str | None:
        """A dual-channel recording's two mono halves become its stereo file (their headers
        repaired first when the worker could not close them); the halves go once joined."""
        halves = [half for half in channel_paths(path) if half.exists()]
        if not halves:
            return note  # joined already (a crash came between the join and the clean-up)
        for half in [h for h in halves if h.stat().st_size == 0]:
            half.unlink()  # killed before its first write (PJSIP buffers 4,000 bytes)
            halves.remove(half)
        if not halves:
            raise FileNotFoundError(path)
        repaired = False
        for half in halves:
            info = read_info(half)
            if info.open or info.data_size != info.on_disk_data:
                repair(half)
                repaired = True
        if all(read_info(half).data_size == 0 for half in halves):
            for half in halves:
                half.unlink()
            raise FileNotFoundError(path)  # nothing was recorded
        interleave(*channel_paths(path), path)
        for half in halves:
            half.unlink()
        if repaired:
            fixed = "header repaired from the file's length (playable to its last second)"
            note = f"{note}; {fixed}" if note else fixed
        return note

    def _fail(self, row: RecordingRow, why: str) -> RecordingRow:
        row = self.store.update(row, status="failed", ended_at=iso(self.clock()), note=why)
        log.warning("recording.failed", recording_id=row.id, why=why)
        self._notify(row, "recording.failed")
        return row

    def _notify(self, row: RecordingRow, event: str) -> None:
        if self.webhooks is None:
            return
        url = row.callback or (self.callback_for(row.call_id) if self.callback_for else None)
        if not url:
            return
        try:
            self.webhooks.enqueue(
                row.account, url, event, {"event": event, "recording": row.resource()}
            )
        except Exception:
            log.exception("recording.webhook_failed", recording_id=row.id)

    def repair_open(self) -> list[RecordingRow]:
        """At start: recordings a previous run left open (its worker or the whole node died)
        are closed from what is on disk."""
        closed = []
        for row in self.store.with_status(OPEN_STATUSES, mine=True):
            if row.call_id in self.live:
                continue
            closed.append(self.close(row.id, note="left open by a node that stopped; recovered"))
        return closed

    # -- deletion and retention -------------------------------------------------------------
    def delete(self, row: RecordingRow, why: str = "deleted over the API") -> RecordingRow:
        """The file goes; the row stays, marked `deleted` (its usage was billed)."""
        if row.open:
            raise RecordingConflict(
                f"recording {row.id} is still {row.status}; stop it first "
                '(POST /v1/calls/{call_id} {"recording": "stop"})'
            )
        if row.status == "deleted":
            return row
        self.path_of(row).unlink(missing_ok=True)
        note = f"{row.note}; {why}" if row.note else why
        log.info("recording.deleted", recording_id=row.id, why=why)
        return self.store.update(row, status="deleted", deleted_at=iso(self.clock()), note=note)

    def retention_days(self, account: str) -> int:
        days = self.retention_days_for(account) if self.retention_days_for else None
        return DEFAULT_RETENTION_DAYS if days is None else days

    def apply_retention(self) -> int:
        """Delete the audio of every closed recording older than its account's retention."""
        deleted = 0
        now = self.clock()
        for account in self.store.accounts_with_closed():
            cutoff = iso(now - timedelta(days=self.retention_days(account)))
            for row in self.store.closed_before(account, cutoff):
                self.delete(row, f"retention: older than {self.retention_days(account)} days")
                deleted += 1
        return deleted

    async def retention_forever(self, interval: float) -> None:
        while True:
            try:
                count = self.apply_retention()
                if count:
                    log.info("recordings.retention", deleted=count)
            except Exception:
                log.exception("recordings.retention_failed")
            await asyncio.sleep(interval)
