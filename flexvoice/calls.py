"""The call registry: every call the node handles, its status, its step-by-step trace and its
recordings, in SQLite. It is the `CallObserver` the SIP layer and the flow runtime report to
(flexvoice/callcontrol.py), and the source of the REST API's call resources and status
callbacks.

Status moves only forward: queued -> ringing -> in-progress -> one final status (completed,
busy, no-answer, failed, canceled). Late or repeated events (a second "ended", "ringing" after
"answered") are kept in the trace but do not move the status back.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from flexvoice.callcontrol import CallStatus
from flexvoice.logs import get_logger
from flexvoice.storage.sqlite import migrate

log = get_logger(__name__)

FINAL_STATUSES: frozenset[str] = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
_RANK = {"queued": 0, "ringing": 1, "in-progress": 2}
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
PRICE_QUANTUM = Decimal("0.0001")

MIGRATIONS = [
    """
    CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        from_number TEXT NOT NULL,
        to_number TEXT NOT NULL,
        status TEXT NOT NULL,
        sip_status INTEGER,
        cause TEXT,
        flow TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        answered_at TEXT,
        ended_at TEXT,
        billable_seconds INTEGER,
        price_eur TEXT,
        status_callback TEXT,
        status_events TEXT NOT NULL DEFAULT '[]',
        record INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX calls_account ON calls (account, created_at);
    CREATE TABLE call_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX call_events_call ON call_events (call_id, seq);
    CREATE TABLE recordings (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        call_id TEXT NOT NULL,
        path TEXT NOT NULL,
        started_at TEXT,
        duration_seconds REAL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX recordings_account ON recordings (account, created_at);
    CREATE INDEX recordings_call ON recordings (call_id);
    """,
    # Why price_eur is null (an unpriced destination, no tariff): said, not left to guess.
    "ALTER TABLE calls ADD COLUMN price_note TEXT;",
]


@dataclass(frozen=True)
class CallPrice:
    """What one answered leg costs: billable seconds as the tariff counts them (its
    increments), the price, or no price and the reason (the destination is not priced, the
    account has no tariff ...)."""

    billable_seconds: int
    price_eur: Decimal | None
    unpriced_reason: str | None = None


class Pricer(Protocol):
    """Rates one finished call under the account's tariff (flexvoice.api.pricing, built on
    the metering module's rating)."""

    def price_call(
        self,
        account: str,
        direction: str,
        to: str,
        started_at: str,
        answered_at: str,
        ended_at: str,
    ) -> CallPrice: ...


class CallListener(Protocol):
    def __call__(
        self, call_id: str, call: CallRecord | None, kind: str, data: dict[str, object]
    ) -> None: ...


class WebhookSender(Protocol):
    def enqueue(self, account: str, url: str, event: str, payload: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Recording:
    id: str
    account: str
    call_id: str
    path: str
    started_at: str | None
    duration_seconds: float | None
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "started_at": self.started_at,
            "duration_seconds": self.duration_seconds,
            "created_at": self.created_at,
            "url": f"/v1/recordings/{self.id}.wav",
        }


@dataclass(frozen=True)
class CallRecord:
    id: str
    account: str
    direction: str
    from_number: str
    to_number: str
    status: str
    sip_status: int | None
    cause: str | None
    flow: str | None
    created_at: str
    started_at: str | None
    answered_at: str | None
    ended_at: str | None
    billable_seconds: int | None
    price_eur: str | None
    status_callback: str | None
    status_events: tuple[str, ...]
    record: bool
    price_note: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


_COLUMNS = (
    "id, account, direction, from_number, to_number, status, sip_status, cause, flow,"
    " created_at, started_at, answered_at, ended_at, billable_seconds, price_eur,"
    " status_callback, status_events, record, price_note"
)


def _call(row: Any) -> CallRecord:
    values = list(row)
    values[16] = tuple(json.loads(values[16]))
    values[17] = bool(values[17])
    return CallRecord(*values)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def outcome_status(data: dict[str, object], answered: bool) -> CallStatus:
    """The final status for an "ended" event: from the SIP layer's outcome when it says one,
    else from the SIP status (Twilio's vocabulary)."""
    if answered:
        return "completed"
    outcome = data.get("outcome")
    if outcome in ("busy", "no-answer", "failed", "canceled"):
        return outcome  # type: ignore[return-value]
    sip = data.get("sip_status")
    if sip in (486, 600):
        return "busy"
    if sip in (408, 480):
        return "no-answer"
    if sip == 487:
        return "canceled"
    if sip == 603:
        return "busy"  # declined: Twilio reports a rejected call as busy
    return "failed"


class CallRegistry:
    """Calls in SQLite; implements CallObserver. Writes are one short SQLite transaction, and
    webhooks are queued, so `call_event` never blocks a call for long."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        webhooks: WebhookSender | None = None,
        pricer: Pricer | None = None,
        clock: Callable[[], str] = now_iso,
    ):
        self.conn = conn
        self.webhooks = webhooks
        self.pricer = pricer
        self.clock = clock
        # Told every event once the registry has stored it, with the call as it now stands
        # for "queued" and "ended" (None otherwise, and for a leg that is not a call of its
        # own): the statistics' live board and rollups (flexvoice.statistics). A listener
        # must not raise or block.
        self.listeners: builtins.list[CallListener] = []
        migrate(conn, "calls", MIGRATIONS)

    # -- creation and reads

    def create(
        self,
        *,
        account: str,
        direction: str,
        from_number: str,
        to_number: str,
        flow: str | None,
        status_callback: str | None = None,
        status_events: tuple[str, ...] = ("completed",),
        record: bool = False,
        call_id: str | None = None,
    ) -> CallRecord:
        call_id = call_id or "CA" + uuid.uuid4().hex
        now = self.clock()
        self.conn.execute(
            f"INSERT INTO calls ({_COLUMNS}) VALUES"
            " (?, ?, ?, ?, ?, 'queued', NULL, NULL, ?, ?, NULL, NULL, NULL, NULL, NULL, ?, ?, ?,"
            " NULL)",
            (
                call_id,
                account,
                direction,
                from_number,
                to_number,
                flow,
                now,
                status_callback,
                json.dumps(list(status_events)),
                int(record),
            ),
        )
        self._trace(call_id, "queued", {"flow": flow})
        call = self.get(call_id)
        assert call is not None
        self._tell(call, "queued", {"flow": flow})
        return call

    def get(self, call_id: str, account: str | None = None) -> CallRecord | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM calls WHERE id = ?", (call_id,)).fetchone()
        if row is None or (account is not None and row[1] != account):
            return None
        return _call(row)

    def list(
        self,
        account: str,
        *,
        status: str | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> builtins.list[CallRecord]:
        where, args = ["account = ?"], [account]
        for column, value in (
            ("status", status),
            ("from_number", from_number),
            ("to_number", to_number),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("created_at >= ?")
            args.append(since)
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM calls WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, id LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [_call(r) for r in rows]

    def events(self, call_id: str) -> builtins.list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT seq, at, kind, data FROM call_events WHERE call_id = ? ORDER BY seq",
            (call_id,),
        ).fetchall()
        return [{"seq": r[0], "at": r[1], "kind": r[2], "data": json.loads(r[3])} for r in rows]

    def recordings(self, account: str, call_id: str | None = None) -> builtins.list[Recording]:
        sql = (
            "SELECT id, account, call_id, path, started_at, duration_seconds, created_at"
            " FROM recordings WHERE account = ?"
        )
        args: tuple[str, ...] = (account,)
        if call_id is not None:
            sql += " AND call_id = ?"
            args = (account, call_id)
        rows = self.conn.execute(sql + " ORDER BY created_at DESC, id", args).fetchall()
        return [Recording(*r) for r in rows]

    def recording(self, recording_id: str, account: str) -> Recording | None:
        row = self.conn.execute(
            "SELECT id, account, call_id, path, started_at, duration_seconds, created_at"
            " FROM recordings WHERE id = ? AND account = ?",
            (recording_id, account),
        ).fetchone()
        return Recording(*row) if row else None

    def delete_recording(self, recording_id: str) -> None:
        self.conn.execute("DELETE FROM recordings WHERE id = ?", (recording_id,))

    # -- the observer

    def call_event(self, call_id: str, kind: str, data: dict[str, object]) -> None:
        """CallObserver: "ringing", "answered", "ended" (sip_status, cause, outcome) from the
        SIP layer; "step" (step, verb, why) and "recording" (path, duration, started_at) from
        the flow runtime; anything else is kept in the trace only."""
        try:
            self._call_event(call_id, kind, data)
        except Exception:  # an observer must never break the call that reports to it
            log.exception("calls.event_failed", call_id=call_id, kind=kind)
        if self.listeners:
            # The record is read again only where listeners need it: at the call's end.
            self._tell(self.get(call_id) if kind == "ended" else None, kind, data, call_id)

    def _tell(
        self, call: CallRecord | None, kind: str, data: dict[str, object], call_id: str = ""
    ) -> None:
        for listener in self.listeners:
            try:
                listener(call_id or (call.id if call else ""), call, kind, data)
            except Exception:
                log.exception("calls.listener_failed", call_id=call_id, kind=kind)

    def _call_event(self, call_id: str, kind: str, data: dict[str, object]) -> None:
        self._trace(call_id, kind, data)
        call = self.get(call_id)
        if call is None:
            return
        at = str(data.get("at") or self.clock())
        if kind == "initiated":
            self.conn.execute(
                "UPDATE calls SET started_at = COALESCE(started_at, ?) WHERE id = ?",
                (at, call_id),
            )
            self._notify(call_id, "initiated")
        elif kind == "ringing" and self._advance(call, "ringing"):
            self._notify(call_id, "ringing")
        elif kind == "answered" and self._advance(call, "in-progress"):
            self.conn.execute(
                "UPDATE calls SET answered_at = ?, started_at = COALESCE(started_at, ?)"
                " WHERE id = ?",
                (at, at, call_id),
            )
            self._notify(call_id, "answered")
        elif kind == "ended" and not call.final:
            self._end(call, data, at)
        elif kind == "recording" and data.get("path"):
            duration = data.get("duration")
            self.conn.execute(
                "INSERT INTO recordings (id, account, call_id, path, started_at,"
                " duration_seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    "RE" + uuid.uuid4().hex,
                    call.account,
                    call_id,
                    str(data["path"]),
                    data.get("started_at"),
                    float(duration) if isinstance(duration, int | float) else None,
                    self.clock(),
                ),
            )

    def _advance(self, call: CallRecord, status: str) -> bool:
        if call.final or _RANK.get(call.status, 0) >= _RANK[status]:
            return False
        self.conn.execute("UPDATE calls SET status = ? WHERE id = ?", (status, call.id))
        return True

    def finish(
        self, call_id: str, status: CallStatus, *, sip_status: int | None, cause: str
    ) -> None:
        """End a call the SIP layer never reported on (origination refused, cancelled before it
        rang): the same as an "ended" event with that outcome."""
        self.call_event(
            call_id, "ended", {"outcome": status, "sip_status": sip_status, "cause": cause}
        )

    def _end(self, call: CallRecord, data: dict[str, object], at: str) -> None:
        answered_at = call.answered_at
        status = outcome_status(data, answered_at is not None)
        sip = data.get("sip_status")
        sip_status = sip if isinstance(sip, int) else None
        cause = str(data.get("cause") or data.get("reason") or status)
        priced = CallPrice(0, Decimal(0))  # never answered: nothing is billed
        if answered_at is not None:
            priced = self._price(call, answered_at, at)
        price = priced.price_eur
        self.conn.execute(
            "UPDATE calls SET status = ?, sip_status = ?, cause = ?, ended_at = ?,"
            " started_at = COALESCE(started_at, ?), billable_seconds = ?, price_eur = ?,"
            " price_note = ? WHERE id = ?",
            (
                status,
                sip_status,
                cause,
                at,
                at,
                priced.billable_seconds,
                str(price.quantize(PRICE_QUANTUM, ROUND_HALF_UP)) if price is not None else None,
                priced.unpriced_reason,
                call.id,
            ),
        )
        log.info("call.ended", call_id=call.id, status=status, sip_status=sip_status, cause=cause)
        # The leg's `call` usage event is written by the SIP layer (flexvoice.sip.usage), which
        # sees every leg however it was placed: writing it here too would bill it twice.
        self._notify(call.id, "completed")

    def _price(self, call: CallRecord, answered_at: str, ended_at: str) -> CallPrice:
        seconds = _seconds_between(answered_at, ended_at)
        if self.pricer is None:
            return CallPrice(seconds, None, "no tariffs are loaded on this node")
        try:
            return self.pricer.price_call(
                call.account,
                call.direction,
                call.to_number,
                call.started_at or answered_at,
                answered_at,
                ended_at,
            )
        except Exception as exc:  # a pricing bug must not lose the call's outcome
            log.exception("calls.price_failed", call_id=call.id)
            return CallPrice(seconds, None, f"pricing failed: {exc}")

    def _trace(self, call_id: str, kind: str, data: dict[str, object]) -> None:
        self.conn.execute(
            "INSERT INTO call_events (call_id, at, kind, data) VALUES (?, ?, ?, ?)",
            (call_id, self.clock(), kind, json.dumps(data, default=str, ensure_ascii=False)),
        )

    def _notify(self, call_id: str, event: str) -> None:
        call = self.get(call_id)
        if call is None or self.webhooks is None or not call.status_callback:
            return
        if event not in call.status_events:
            return
        payload = {"event": event, "call": self.resource(call)}
        self.webhooks.enqueue(call.account, call.status_callback, event, payload)

    def resource(self, call: CallRecord) -> dict[str, Any]:
        """The call as the API shows it (and webhooks carry it)."""
        return {
            "id": call.id,
            "account": call.account,
            "direction": call.direction,
            "from": call.from_number,
            "to": call.to_number,
            "status": call.status,
            "sip_status": call.sip_status,
            "cause": call.cause,
            "flow": call.flow,
            "created_at": call.created_at,
            "started_at": call.started_at,
            "answered_at": call.answered_at,
            "ended_at": call.ended_at,
            "billable_seconds": call.billable_seconds,
            "price_eur": call.price_eur,
            "price_note": call.price_note,
            "recordings": [r.as_dict() for r in self.recordings(call.account, call.id)],
            "events_url": f"/v1/calls/{call.id}/events",
        }


def _seconds_between(start: str, end: str) -> int:
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(0, round(delta.total_seconds()))
