"""The call registry: every call the node handles, as a tree of legs (a first leg, inbound or
placed over REST, and the legs it dialled, each pointing at its parent), with status, trace,
price and recordings, in SQLite. It is the `CallObserver` the SIP layer and the flow runtime
report to (flexvoice/callcontrol.py), and the source of the REST API's call resources and
status callbacks.

Status moves only forward: queued -> ringing -> in-progress -> one final status (completed,
busy, no-answer, failed, canceled, redirected). The trace keeps one `ringing`, one
`answered` and one `ended` per leg: a repeated one is dropped, not stored. A leg is priced
from its `call` usage event (flexvoice/callprice.py).

Each event is all or nothing, and the calls in progress are also kept in memory
(flexvoice/livecalls.py, written after the database). On the node's SQLite file the events of
one turn of the event loop commit together (flexvoice.storage.turn; a call's creation at
once): a crash loses at most that turn's events, never half of one and never a call's
existence, and nothing that bills: the usage event reaches the usage spool from the SIP
layer, which remains what billing counts.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from flexvoice.callcontrol import CallStatus, new_call_id
from flexvoice.callprice import Pricer, leg_price
from flexvoice.callrecords import (
    COLUMNS,
    FINAL_STATUSES,
    MIGRATIONS,
    CallPrice,
    CallRecord,
    call_row,
    now_iso,
)
from flexvoice.callresource import call_resource
from flexvoice.livecalls import LiveCalls
from flexvoice.logs import get_logger
from flexvoice.outcomes import outcome_for
from flexvoice.storage.engine import Connection, settle
from flexvoice.storage.migrate import migrate
from flexvoice.storage.turn import for_connection, one_write

log = get_logger(__name__)

__all__ = ["FINAL_STATUSES", "CallPrice", "CallRecord", "CallRegistry", "Pricer"]

_RANK = {"queued": 0, "ringing": 1, "in-progress": 2}
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
PRICE_QUANTUM = Decimal("0.0001")
_ONCE = ("ringing", "answered", "ended")  # kinds a leg's trace holds at most once


class CallListener(Protocol):
    def __call__(
        self, call_id: str, call: CallRecord | None, kind: str, data: dict[str, object]
    ) -> None: ...


class WebhookSender(Protocol):
    def enqueue(self, account: str, url: str, event: str, payload: dict[str, Any]) -> None: ...


def outcome_status(data: dict[str, object], answered: bool) -> CallStatus:
    """The final status for an "ended" event: the SIP layer's outcome when it says one, else
    the outcome of its SIP status (flexvoice.outcomes, the one table)."""
    if answered:
        return "completed"
    outcome = data.get("outcome")
    if outcome in ("busy", "no-answer", "failed", "canceled", "redirected"):
        return outcome  # type: ignore[return-value]
    sip = data.get("sip_status")
    if isinstance(sip, int) and 300 <= sip < 400:
        return "redirected"
    return outcome_for(sip) if isinstance(sip, int) and sip >= 300 else "failed"


class CallRegistry:
    """Calls in the store (this node's SQLite file, or the PostgreSQL several nodes share;
    `node` names this node there, Config.node_name); implements CallObserver. Each event is
    one short transaction (its rows, the call's new state and its queued webhooks commit
    together or not at all), and the calls in progress are also kept in memory
    (flexvoice.livecalls), so an event reads no row: `call_event` never blocks a call for
    long."""

    def __init__(
        self,
        conn: Connection,
        *,
        webhooks: WebhookSender | None = None,
        pricer: Pricer | None = None,
        clock: Callable[[], str] = now_iso,
        node: str | None = None,
        group_commit: bool = False,
    ):
        self.conn = conn
        self.node = node
        self.webhooks = webhooks
        self.pricer = pricer
        self.clock = clock
        # The recordings of a call as the API shows them (flexvoice.recordings' rows, set by
        # the recordings component); none when it is not running.
        self.recordings_for: Callable[[str, str], builtins.list[dict[str, Any]]] | None = None
        # Told every event once the registry has stored it, with the call as it now stands
        # for "queued" and "ended" (None otherwise, and for a leg that is not a call of its
        # own): the statistics' live board and rollups (flexvoice.statistics). A listener
        # must not raise or block.
        self.listeners: builtins.list[CallListener] = []
        self.live = LiveCalls()
        self._touched: set[str] = set()  # calls changed in the open transaction
        self._turn = for_connection(conn) if group_commit else None
        migrate(conn, "calls", MIGRATIONS)

    @contextmanager
    def _transaction(self, call_id: str) -> Iterator[None]:
        """Everything an event writes, all or nothing: in the event loop's group of the turn
        on the node's SQLite connection, else a transaction of its own, joining one already
        open (flexvoice.storage.turn.one_write). If it is rolled back, the calls it touched
        are read from the database again."""
        self._touched.add(call_id)
        nested = self._turn.depth > 0 if self._turn is not None else self.conn.in_transaction
        if nested:  # inside an event (a leg created by its parent's): its part
            yield
            return
        touched = self._touched  # the set itself: the calls of this whole event
        try:
            with one_write(self.conn, self._turn, undo=lambda: self.live.forget(touched)):
                yield
        finally:
            self._touched = set()

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
        parent_call_id: str | None = None,
    ) -> CallRecord:
        call_id = call_id or new_call_id()
        now = self.clock()
        events = json.dumps(list(status_events))
        with self._transaction(call_id):
            self.conn.execute(
                f"INSERT INTO calls ({COLUMNS}, node) VALUES (?, ?, ?, ?, ?, 'queued', NULL, NULL,"
                " ?, ?, NULL, NULL, NULL, NULL, NULL, ?, ?, ?, NULL, ?, NULL, NULL, ?)",
                (call_id, account, direction, from_number, to_number, flow, now,
                 status_callback, events, int(record), parent_call_id, self.node),
            )  # fmt: skip
            self._trace(call_id, "queued", {"flow": flow, "parent_call_id": parent_call_id})
        # A call exists in the store before anything is done to it (its answer, its first
        # command to a worker): a control plane killed right after still finds it at start.
        settle()
        # The row as the database now holds it (status_events as read back: a tuple).
        call = CallRecord(
            call_id, account, direction, from_number, to_number, "queued", None, None, flow,
            now, None, None, None, None, None, status_callback, tuple(json.loads(events)),
            bool(record), None, parent_call_id, None, None,
        )  # fmt: skip
        self.live.created(call)
        self._tell(call, "queued", {"flow": flow})
        return call

    def get(self, call_id: str, account: str | None = None) -> CallRecord | None:
        call = self.live.get(call_id)
        if call is None:
            row = self.conn.execute(
                f"SELECT {COLUMNS} FROM calls WHERE id = ?", (call_id,)
            ).fetchone()
            call = call_row(row) if row is not None else None
        if call is None or (account is not None and call.account != account):
            return None
        return call

    def children(self, call_id: str) -> builtins.list[CallRecord]:
        rows = self.conn.execute(
            f"SELECT {COLUMNS} FROM calls WHERE parent_call_id = ? ORDER BY created_at, rowid",
            (call_id,),
        ).fetchall()
        return [call_row(r) for r in rows]

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
            f"SELECT {COLUMNS} FROM calls WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, id LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [call_row(r) for r in rows]

    def open_calls(self, node: str | None = None) -> builtins.list[CallRecord]:
        """Calls not yet final (at a start: the ones a killed node left open); only those of
        `node` when given (a store several nodes share holds the others' live calls)."""
        final = ", ".join(f"'{s}'" for s in sorted(FINAL_STATUSES))
        sql = f"SELECT {COLUMNS} FROM calls WHERE status NOT IN ({final})"
        if node is None:
            return [call_row(r) for r in self.conn.execute(sql).fetchall()]
        rows = self.conn.execute(sql + " AND node = ?", (node,)).fetchall()
        return [call_row(r) for r in rows]

    def events(self, call_id: str) -> builtins.list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT seq, at, kind, data FROM call_events WHERE call_id = ? ORDER BY seq",
            (call_id,),
        ).fetchall()
        return [{"seq": r[0], "at": r[1], "kind": r[2], "data": json.loads(r[3])} for r in rows]

    # -- the observer

    def call_event(self, call_id: str, kind: str, data: dict[str, object]) -> None:
        """CallObserver: "leg" (a child was dialled), "ringing", "answered", "ended"
        (sip_status, reason, cause, outcome, ended_by, usage) from the SIP layer; "step" from the
        flow runtime; anything else is kept in the trace only."""
        try:
            with self._transaction(call_id):
                ended = self._call_event(call_id, kind, data)
                # What listeners write (the statistics' rollup of an ended call) commits with
                # the event: one commit per event.
                self._tell_event(call_id, kind, data, ended)
            return
        except Exception:  # an observer must never break the call that reports to it
            log.exception("calls.event_failed", call_id=call_id, kind=kind)
        self._tell_event(call_id, kind, data, None)

    def _tell_event(
        self, call_id: str, kind: str, data: dict[str, object], ended: CallRecord | None
    ) -> None:
        if not self.listeners:
            return
        # The record is given only where listeners need it: at the call's end.
        if kind == "ended" and ended is None:
            ended = self.get(call_id)  # a repeated end, or one that failed
        self._tell(ended if kind == "ended" else None, kind, data, call_id)

    def _tell(
        self, call: CallRecord | None, kind: str, data: dict[str, object], call_id: str = ""
    ) -> None:
        for listener in self.listeners:
            try:
                listener(call_id or (call.id if call else ""), call, kind, data)
            except Exception:
                log.exception("calls.listener_failed", call_id=call_id, kind=kind)

    def _call_event(self, call_id: str, kind: str, data: dict[str, object]) -> CallRecord | None:
        """Store one event; returns the call as it ended for an "ended" event that ended it."""
        if kind == "leg":
            self._add_leg(call_id, data)
            return None
        call = self.get(call_id)
        if call is None:
            self._trace(call_id, kind, data)
            return None
        if kind in _ONCE and self._seen(call, kind):
            log.debug("calls.repeated_event", call_id=call_id, kind=kind)
            return None
        at = str(data.get("at") or self.clock())
        if kind == "ended":
            return self._end(call, data, at)
        self._trace(call_id, kind, data)
        if kind == "initiated":
            self.conn.execute(
                "UPDATE calls SET started_at = COALESCE(started_at, ?) WHERE id = ?",
                (at, call_id),
            )
            self.live.changed(call_id, started_at=call.started_at or at)
            self._notify(call_id, "initiated")
        elif kind == "ringing" and self._advance(call, "ringing"):
            self._notify(call_id, "ringing")
        elif kind == "answered" and self._advance(
            call, "in-progress", answered_at=at, started_at=call.started_at or at
        ):
            self._notify(call_id, "answered")
        return None

    def _seen(self, call: CallRecord, kind: str) -> bool:
        if kind == "ended":
            return call.final
        if kind == "answered":
            return call.answered_at is not None or call.final
        return call.status != "queued"  # ringing: once, and never after an answer

    def _add_leg(self, call_id: str, data: dict[str, object]) -> None:
        """A leg the call `parent_call_id` dialled: a call resource of its own, in the
        parent's account, with the parent's status callback."""
        parent = self.get(str(data.get("parent_call_id")))
        if parent is None or self.get(call_id) is not None:
            return
        self.create(
            account=parent.account,
            direction="outbound",
            from_number=str(data.get("from") or ""),
            to_number=str(data.get("to") or ""),
            flow=None,
            status_callback=parent.status_callback,
            status_events=parent.status_events,
            call_id=call_id,
            parent_call_id=parent.id,
        )
        self._trace(parent.id, "dialled", {"call_id": call_id, "to": data.get("to")})
        self._notify(call_id, "initiated")

    def _advance(self, call: CallRecord, status: str, **also: str) -> bool:
        """The call's status moved forward (with `also`'s columns, in one statement)."""
        if call.final or _RANK.get(call.status, 0) >= _RANK[status]:
            return False
        changes = {"status": status, **also}
        self.conn.execute(
            f"UPDATE calls SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
            (*changes.values(), call.id),
        )
        self.live.changed(call.id, **changes)
        return True

    def finish(
        self, call_id: str, status: CallStatus, *, sip_status: int | None, cause: str
    ) -> None:
        """End a call the SIP layer never reported on (origination refused, cancelled before it
        rang): the same as an "ended" event with that outcome."""
        self.call_event(
            call_id,
            "ended",
            {"outcome": status, "sip_status": sip_status, "cause": cause, "ended_by": "api"},
        )

    def _end(self, call: CallRecord, data: dict[str, object], at: str) -> CallRecord:
        answered_at = call.answered_at
        if answered_at is None and data.get("outcome") == "completed":
            answered_at = call.started_at or at  # a stand-in leg that never said "answered"
        status = outcome_status(data, answered_at is not None)
        sip = data.get("sip_status")
        sip_status = sip if isinstance(sip, int) else None
        cause = str(data.get("cause") or data.get("reason") or status)
        priced = CallPrice(0, Decimal(0))  # never answered: nothing is billed
        if answered_at is not None:
            priced = leg_price(self.pricer, call, data.get("usage"), answered_at, at)
        price = priced.price_eur
        ended_by = data.get("ended_by")
        reason = data.get("reason")
        changes: dict[str, Any] = {
            "status": status,
            "sip_status": sip_status,
            "cause": cause,
            "ended_at": at,
            "started_at": call.started_at or at,
            "billable_seconds": priced.billable_seconds,
            "price_eur": (
                str(price.quantize(PRICE_QUANTUM, ROUND_HALF_UP)) if price is not None else None
            ),
            "price_note": priced.unpriced_reason,
            "ended_by": str(ended_by) if ended_by else None,
            "reason": str(reason) if reason else None,
        }
        self.conn.execute(
            "UPDATE calls SET status = ?, sip_status = ?, cause = ?, ended_at = ?,"
            " started_at = COALESCE(started_at, ?), billable_seconds = ?, price_eur = ?,"
            " price_note = ?, ended_by = ?, reason = ? WHERE id = ?",
            (*changes.values(), call.id),
        )
        ended = self.live.changed(call.id, **changes) or dataclasses.replace(call, **changes)
        # The trace says what the resource says: billable seconds as the tariff counts them.
        shown = {k: v for k, v in data.items() if k != "usage"}
        shown |= {"status": status, "billable_seconds": priced.billable_seconds}
        self._trace(call.id, "ended", shown)
        log.info("call.ended", call_id=call.id, status=status, sip_status=sip_status, cause=cause)
        if call.parent_call_id is not None:
            self._trace(
                call.parent_call_id,
                "leg_ended",
                {"call_id": call.id, "to": call.to_number, "status": status,
                 "sip_status": sip_status, "reason": reason, "ended_by": ended_by},
            )  # fmt: skip
        self._completed(call.id, ended)
        if call.parent_call_id is not None:
            self._completed(call.parent_call_id)
        return ended

    def _completed(self, call_id: str, call: CallRecord | None = None) -> None:
        """The `completed` callback, once the call and all its legs ended (so its price is
        the whole tree's): from the parent's own end, or from its last leg's."""
        call = call or self.get(call_id)
        if call is None or not call.final:
            return
        open_legs = self.live.open_legs(call_id)
        if open_legs is None:  # not created here: ask the database
            open_legs = any(not leg.final for leg in self.children(call_id))
        if open_legs:
            return
        self.live.completed(call_id)
        self._notify(call_id, "completed", call)

    def _trace(self, call_id: str, kind: str, data: dict[str, object]) -> None:
        self.conn.execute(
            "INSERT INTO call_events (call_id, at, kind, data) VALUES (?, ?, ?, ?)",
            (call_id, self.clock(), kind, json.dumps(data, default=str, ensure_ascii=False)),
        )

    def _notify(self, call_id: str, event: str, call: CallRecord | None = None) -> None:
        if self.webhooks is None:
            return
        call = call or self.get(call_id)
        if call is None or not call.status_callback:
            return
        if event not in call.status_events:
            return
        payload = {"event": event, "call": self.resource(call)}
        self.webhooks.enqueue(call.account, call.status_callback, event, payload)

    def resource(self, call: CallRecord) -> dict[str, Any]:
        """The call as the API shows it (and webhooks carry it)."""
        recordings = (
            self.recordings_for(call.account, call.id) if self.recordings_for is not None else []
        )
        return call_resource(call, self.children(call.id), recordings)
