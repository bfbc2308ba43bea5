"""This node as a member of the cluster: it says in Redis which calls it holds and which of
its workers are up, beats with the node's heartbeat, and closes the calls of a node that died.

Ownership follows the call registry (a listener): a call is owned from its `queued` event
(inbound, placed over REST, or a leg another call dialled) to its `ended` event. The heartbeat
refreshes the TTL of every owned call, so a dead node's entries expire by themselves.

A lost node (its heartbeat expired and it holds no Redis connection: flexvoice.cluster.state)
has its calls closed by one surviving node (a claim in Redis): each answered leg billed from
its answer to the lost node's last heartbeat, one `call` usage event with the leg's own id, so
the lost node's own closing at its next start (flexvoice.node.heartbeat) counts nothing twice
in the shared usage store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from flexvoice.calls import CallRecord, CallRegistry
from flexvoice.cluster.queues import RedisQueueBoard
from flexvoice.cluster.state import ClusterState, NodeInfo
from flexvoice.logs import get_logger
from flexvoice.lostlegs import LiveLeg, lost_leg_end, unanswered_end

log = get_logger(__name__)


class Sink(Protocol):
    def record(self, event: dict[str, Any]) -> None: ...


class Member:
    def __init__(
        self,
        state: ClusterState,
        url: str,
        *,
        sink: Sink,
        calls: CallRegistry | None,
        shared_edge: bool,
        queues: RedisQueueBoard | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.state = state
        self.url = url
        self.sink = sink
        self.calls = calls
        self.shared_edge = shared_edge
        self.queues = queues or RedisQueueBoard(state.redis, state.node)
        self.clock = clock
        self.workers: list[tuple[str, bool]] = []  # (SIP URI, up), set by the pool
        self.owned: set[str] = set()
        self.redis_ok = False
        self.edge_up = False
        self.nodes: list[NodeInfo] = []
        self.session: aiohttp.ClientSession | None = None  # requests to other nodes' APIs
        # Ownership changes in the order the registry told them, written by one task.
        self._queue: asyncio.Queue[tuple[str, str | LiveLeg]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def node(self) -> str:
        return self.state.node

    def now(self) -> str:
        return self.clock().isoformat()

    # -- ownership ------------------------------------------------------------------------
    def on_call_event(
        self, call_id: str, call: CallRecord | None, kind: str, data: dict[str, object]
    ) -> None:
        """CallListener: own a call (a dialled leg is created `queued` too) until `ended`;
        an answered one's billing fields go to Redis at once (not at the next heartbeat), so a
        node killed a moment after the answer still has the leg billed by another."""
        if kind == "queued":
            self._queue.put_nowait(("own", call_id))
        elif kind == "answered" and self.calls is not None:
            record = self.calls.get(call_id)
            if record is not None and record.answered_at:
                self._queue.put_nowait(("answered", LiveLeg(
                    record.id, record.account, record.direction, record.from_number,
                    record.to_number, record.started_at or record.answered_at,
                    record.answered_at, record.parent_call_id,
                )))  # fmt: skip
        elif kind == "ended":
            self._queue.put_nowait(("release", call_id))

    async def write_ownership(self) -> None:
        """Forever: the queued ownership changes, a batch at a time, in order."""
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            own: list[str] = []
            answered: list[LiveLeg] = []
            release: list[str] = []
            for what, item in batch:
                if what == "own" and isinstance(item, str):
                    self.owned.add(item)
                    own.append(item)
                elif what == "answered" and isinstance(item, LiveLeg):
                    answered.append(item)
                elif isinstance(item, str):
                    self.owned.discard(item)
                    release.append(item)
            try:
                await self.state.own(own)
                await self.state.answered([leg for leg in answered if leg.call_id not in release])
                await self.state.release(release)
            except Exception:  # Redis away: the calls go on; the API of other nodes
                log.exception("cluster.ownership_failed", own=len(own), release=len(release))

    # -- heartbeat ------------------------------------------------------------------------
    async def join(self) -> None:
        await self.state.join(self.url, self.workers, self.now())
        self.redis_ok = True

    async def on_beat(self, legs: list[LiveLeg]) -> None:
        """The node's heartbeat: alive now, the owned calls' TTLs, the newly answered legs;
        then the other nodes looked at, and a lost one's calls closed."""
        try:
            await self.state.beat(self.url, self.workers, self.now(), list(self.owned))
            await self.state.answered(legs)
            self.edge_up = await self.state.edge_alive() if self.shared_edge else False
            self.nodes = await self.state.nodes()
            await self.queues.tidy(self.owned)
            self.redis_ok = True
        except Exception:
            self.redis_ok = False
            self.edge_up = False
            raise
        for node in self.nodes:
            if node.name != self.node and node.lost and await self.state.claim(node.name):
                await self.close_lost(node.name)

    def worker_state(self, uri: str, up: bool) -> None:
        """The pool saw a worker come up or go down: the shared edge hears it at once."""
        self.workers = [(u, up if u == uri else was) for u, was in self.workers]
        task = asyncio.get_running_loop().create_task(self._push_workers())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def worker_lost(self, uri: str) -> None:
        """A worker died with calls (or may have): the shared edge ends them toward the
        carriers (BYE), as a node's own edge does."""
        task = asyncio.get_running_loop().create_task(self._push_lost(uri))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push_lost(self, uri: str) -> None:
        try:
            await self.state.worker_lost(uri)
        except Exception:
            log.exception("cluster.worker_lost_push_failed", worker=uri)

    async def _push_workers(self) -> None:
        try:
            await self.state.workers_changed(self.workers)
        except Exception:
            log.exception("cluster.workers_push_failed")

    async def settled(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- a lost node's calls ----------------------------------------------------------------
    async def close_lost(self, lost: str) -> int:
        """Close every call `lost` held; how many. Each answered leg is billed to the lost
        node's last heartbeat (its `call` usage event has the leg's id: counted once, whoever
        writes it); a call not answered ends failed."""
        legs, calls, alive_at = await self.state.left_legs(lost)
        # Its callers waiting in shared queues leave them first: the next caller is offered.
        waiting = await self.queues.drop_node(lost)
        if waiting:
            log.warning("cluster.queue_callers_lost", node=lost, calls=waiting)
        answered = {leg.call_id for leg in legs}
        closed = 0
        for leg in legs:
            usage, ended = lost_leg_end(leg, alive_at)
            if usage is not None:
                self.sink.record(usage)
            self._ended(leg.call_id, ended)
            await self.state.closed(lost, leg.call_id)
            log.warning(
                "cluster.call_node_lost", node=lost, call_id=leg.call_id,
                answered_at=leg.answered_at, billed_to=ended["at"],
            )  # fmt: skip
            closed += 1
        for call_id in calls:
            if call_id in answered:
                continue
            self._ended(call_id, unanswered_end(alive_at, self.now()))
            await self.state.closed(lost, call_id)
            closed += 1
        await self.state.forget_node(lost)
        log.warning("cluster.node_lost", node=lost, calls=closed, last_heartbeat=alive_at)
        return closed

    def _ended(self, call_id: str, ended: dict[str, object]) -> None:
        # The call's record is this node's to end only where the calls store is shared; a
        # node's own calls table is closed by that node at its next start.
        if self.calls is not None and self.calls.get(call_id) is not None:
            self.calls.call_event(call_id, "ended", ended)
