"""Answered legs survive a killed control plane (issue 12): none is lost, none billed twice.

While a leg is answered, the node keeps a row for it in its database (`live_legs`: who, what
number, when it was answered), and every HEARTBEAT_SECONDS it writes the time it last knew
the node alive (`node_alive`). A clean stop ends every leg, and each leg's end deletes its
row. So the rows found at the next start are the legs that were up when the node died
(kill -9, a power cut, the OOM killer): each is closed with `ended_by: node_lost`, billed
from its answer to the last heartbeat (at most HEARTBEAT_SECONDS of talk lost), its one
`call` usage event written to the usage feed and the same event priced by the call registry.
The row goes only after both; a crash in between repeats the close, which changes nothing
(the usage event's id is the leg's, the registry ends a call once). Calls the registry still
shows live without a row (ringing, or answered after the last heartbeat) end the same way.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import astuple
from datetime import UTC, datetime

from aiohttp import web

from flexvoice.appkeys import CALLS, DB, HEARTBEAT, POOL, USAGE_SINK, need
from flexvoice.calls import CallRegistry
from flexvoice.logs import get_logger
from flexvoice.lostlegs import LiveLeg, lost_leg_end, unanswered_end
from flexvoice.metering.sink import UsageSink
from flexvoice.sip.leg import SipLeg
from flexvoice.storage.engine import is_postgres, write_transaction
from flexvoice.storage.sqlite import migrate
from flexvoice.storage.turn import for_connection, one_write

log = get_logger(__name__)

__all__ = ["HEARTBEAT_SECONDS", "LegHeartbeat", "LiveLeg", "lost_leg_end", "unanswered_end"]

HEARTBEAT_SECONDS = 2.0

MIGRATIONS = [
    """
    CREATE TABLE live_legs (
        call_id TEXT PRIMARY KEY,
        account TEXT,
        direction TEXT NOT NULL,
        caller TEXT NOT NULL,
        callee TEXT NOT NULL,
        started_at TEXT NOT NULL,
        answered_at TEXT NOT NULL,
        parent_call_id TEXT
    );
    CREATE TABLE node_alive (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL);
    """,
]
_LEG_COLUMNS = (
    "call_id, account, direction, caller, callee, started_at, answered_at, parent_call_id"
)


def live_leg(leg: SipLeg, answered_at: datetime) -> LiveLeg:
    return LiveLeg(
        leg.call_id, leg.account, leg.direction, leg.caller, leg.callee,
        leg.started_at.isoformat(), answered_at.isoformat(), leg.parent_call_id,
    )  # fmt: skip


# -- the store ------------------------------------------------------------------------------
class LegHeartbeat:
    """The live_legs / node_alive tables on the event loop's connection (a few rows a beat)."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], datetime] | None = None):
        self.conn = conn
        self.clock = clock or (lambda: datetime.now(UTC))
        self.known: set[str] = set()
        self._turn = for_connection(conn)  # the event loop's group of writes (SQLite)
        # Told, after each beat, the legs it newly noted (the cluster mirrors them in Redis).
        self.listeners: list[Callable[[list[LiveLeg]], Awaitable[None]]] = []
        migrate(conn, "heartbeat", MIGRATIONS)

    def beat(self, answered: Iterable[SipLeg]) -> list[LiveLeg]:
        """Note the answered legs not yet known and the node alive now, in one transaction;
        the legs newly noted (the cluster keeps them in Redis as well)."""
        legs = []
        for leg in answered:
            if leg.call_id in self.known or leg.answered_at is None:
                continue
            self.known.add(leg.call_id)
            legs.append(live_leg(leg, leg.answered_at))
        with write_transaction(self.conn, "flexvoice.heartbeat"):
            if legs:
                self.conn.executemany(
                    f"INSERT OR REPLACE INTO live_legs ({_LEG_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                    [astuple(leg) for leg in legs],
                )
            self.conn.execute(
                "INSERT OR REPLACE INTO node_alive (id, at) VALUES (1, ?)",
                (self.clock().isoformat(),),
            )
        return legs

    def forget(self, leg: SipLeg) -> None:
        """The leg ended (its usage event is already written): no longer live."""
        if leg.call_id not in self.known:
            return
        self.known.discard(leg.call_id)
        # In the turn's group of writes (flexvoice.storage.turn) when there is one: a crash
        # before it commits leaves the row, and the next start closes the leg once more, which
        # changes nothing (its usage event's id is the leg's).
        with one_write(self.conn, self._turn):
            self.conn.execute("DELETE FROM live_legs WHERE call_id = ?", (leg.call_id,))

    def left_behind(self) -> tuple[list[LiveLeg], str | None]:
        """The legs a dead node left, and the last time it was known alive."""
        legs = [
            LiveLeg(*row)
            for row in self.conn.execute(f"SELECT {_LEG_COLUMNS} FROM live_legs ORDER BY rowid")
        ]
        alive = self.conn.execute("SELECT at FROM node_alive WHERE id = 1").fetchone()
        return legs, alive[0] if alive else None

    def closed(self, call_id: str) -> None:
        with write_transaction(self.conn, "flexvoice.heartbeat"):
            self.conn.execute("DELETE FROM live_legs WHERE call_id = ?", (call_id,))


def close_lost_legs(
    heartbeat: LegHeartbeat,
    sink: UsageSink,
    calls: CallRegistry | None,
    now: str,
    node: str | None = None,
) -> int:
    """At start: close every leg and call a killed node left open (of `node` only, when
    given); how many."""
    legs, alive_at = heartbeat.left_behind()
    closed = 0
    for leg in legs:
        usage, ended = lost_leg_end(leg, alive_at)
        if usage is not None:
            sink.record(usage)  # durable once written; the store counts its id once
        if calls is not None:
            calls.call_event(leg.call_id, "ended", ended)
        heartbeat.closed(leg.call_id)
        log.warning(
            "call.node_lost",
            call_id=leg.call_id,
            answered_at=leg.answered_at,
            billed_to=ended["at"],
            seconds=ended["talk_seconds"],
        )
        closed += 1
    if calls is not None:
        for call in calls.open_calls(node):
            if call.answered_at is not None:
                live = LiveLeg(
                    call.id, call.account, call.direction, call.from_number, call.to_number,
                    call.started_at or call.answered_at, call.answered_at, call.parent_call_id,
                )  # fmt: skip
                usage, ended = lost_leg_end(live, alive_at)
                if usage is not None:
                    sink.record(usage)
            else:
                ended = unanswered_end(alive_at, now)
            calls.call_event(call.id, "ended", ended)
            log.warning("call.node_lost", call_id=call.id, status=call.status)
            closed += 1
    return closed


# -- the node component ---------------------------------------------------------------------
async def heartbeat_component(app: web.Application) -> AsyncIterator[None]:
    """Closes what a killed node left open, then beats for the pool (which wires itself to
    `app[HEARTBEAT]`); placed after the usage sink and the API, before the pool."""
    heartbeat = LegHeartbeat(app[DB])
    sink = need(app, USAGE_SINK, "usage_component", "heartbeat_component")
    calls = app.get(CALLS)
    # On a store several nodes share, only this node's calls: the others' are live elsewhere.
    node = calls.node if calls is not None and is_postgres(calls.conn) else None
    closed = close_lost_legs(heartbeat, sink, calls, datetime.now(UTC).isoformat(), node)
    if closed:
        log.warning("node.lost_calls_closed", calls=closed)
    app[HEARTBEAT] = heartbeat
    task = asyncio.create_task(_beat(app, heartbeat))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def answered_legs(app: web.Application) -> list[SipLeg]:
    from_pool = app.get(POOL)
    if from_pool is None:
        return []
    return [
        leg
        for worker in from_pool.workers
        for leg in worker.legs.values()
        if leg.answered and not leg.machine.ended
    ]


async def _beat(app: web.Application, heartbeat: LegHeartbeat) -> None:
    while True:
        try:
            legs = heartbeat.beat(answered_legs(app))
        except sqlite3.Error:
            log.exception("heartbeat.failed")
            legs = []
        for listener in heartbeat.listeners:
            try:
                await listener(legs)
            except Exception:  # Redis away: the next beat tries again; calls go on
                log.exception("heartbeat.listener_failed")
        await asyncio.sleep(HEARTBEAT_SECONDS)
