"""One edge in front of every node (`flexvoice cluster edge`): Kamailio's dispatcher list is
the workers of the nodes that are up, read from Redis (flexvoice.cluster.state).

Why one edge fed from Redis rather than one edge per node behind a dispatching edge: one
Kamailio holds every call's dialog, so a dead node's calls get their BYE from the edge the
moment the node is seen dead, and the call-count per worker (`dlg` profile) stays exact
across nodes; a second tier would add a hop to every SIP message and a second place where a
node's death must be noticed. Nodes never talk to Kamailio: they write their workers and
states to Redis, and only this process runs `kamcmd`.

Every POLL seconds: a worker of a node that holds no Redis connection any more (killed) or
that left is disabled at once, its calls ended toward the carriers, and it leaves the list
(`dispatcher.reload`); a node that is connected but stopped beating (stalled) has its workers
disabled, its calls kept; new nodes' workers join the list; each worker's state follows what
its node says (the pool's view: up, or down while it restarts or drains). Calls are counted
per worker by the dialog module, so a reload loses no call count.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from flexvoice.cluster.state import EDGE_ALIVE, EDGE_TTL, LOST_WORKERS, ClusterState
from flexvoice.errors import UserError
from flexvoice.logs import get_logger
from flexvoice.sip.addresses import WorkerAddress
from flexvoice.sip.edge import Edge
from flexvoice.sip.edge_kamcmd import parse_kamcmd, targets_from

log = get_logger(__name__)

POLL = 0.2


def parse_uri(uri: str) -> tuple[str, int]:
    """'sip:127.0.0.1:5070' -> ('127.0.0.1', 5070)."""
    host, _, port = uri.removeprefix("sip:").rpartition(":")
    return host.strip("[]"), int(port)


class SharedEdge:
    def __init__(self, edge: Edge, redis: Any):
        self.edge = edge
        self.redis = redis
        self.state = ClusterState(redis, "edge")
        self.by_uri: dict[str, WorkerAddress] = {w.uri: w for w in edge.workers}
        self.node_of: dict[str, str] = {}
        self.up: dict[str, bool] = {}
        # Kamailio refuses a reload within 5 s of the last one ("ongoing reload"): the list
        # is loaded again at the next poll until it holds what it should.
        self.stale = False
        self._index = itertools.count(max((w.index for w in edge.workers), default=-1) + 1)

    async def run(self) -> None:
        while True:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis or Kamailio away a moment: the next poll tries again
                log.exception("shared_edge.sync_failed")
            await asyncio.sleep(POLL)

    async def sync(self) -> None:
        await self.redis.set(EDGE_ALIVE, "1", ex=EDGE_TTL)
        nodes = await self.state.nodes()
        wanted: dict[str, tuple[str, bool]] = {}
        stalled: set[str] = set()
        for node in nodes:
            if not node.connected:
                continue  # killed (or its Redis link cut): its workers leave
            for uri, up in node.workers:
                wanted[uri] = (node.name, up and node.beating)
            if not node.beating:
                stalled.add(node.name)
        gone = [uri for uri in self.by_uri if uri not in wanted]
        await self._remove(gone)
        new = [uri for uri in wanted if uri not in self.by_uri]
        for uri in new:
            host, port = parse_uri(uri)
            self.by_uri[uri] = WorkerAddress(next(self._index), host, port)
            self.node_of[uri] = wanted[uri][0]
            self.up[uri] = wanted[uri][1]
        if gone or new or self.stale:
            await self._reload()
            log.info("shared_edge.workers", added=len(new), removed=len(gone), total=len(wanted),
                     loaded=not self.stale)  # fmt: skip
        for uri, (owner, up) in wanted.items():
            if self.up.get(uri) != up:
                self.up[uri] = up
                self.edge.set_worker_state(self.by_uri[uri].index, up)
                why = "stalled" if owner in stalled else "node says"
                log.info("shared_edge.worker_state", node=owner, worker=uri, up=up, why=why)
        await self.edge.settled()
        await self._end_lost_workers()

    async def _remove(self, uris: list[str]) -> None:
        if not uris:
            return
        for uri in uris:
            if self.up.get(uri, True):
                self.edge.set_worker_state(self.by_uri[uri].index, False)
        await self.edge.settled()  # no new call reaches them from here on
        for uri in uris:
            worker = self.by_uri[uri]
            try:
                ended = await self.edge.end_dialogs(worker, "node lost")
            except UserError as exc:
                log.error("shared_edge.end_dialogs_failed", worker=uri, error=str(exc))
                ended = 0
            log.warning("shared_edge.worker_removed", node=self.node_of.get(uri), worker=uri,
                        calls_ended=ended)  # fmt: skip
            del self.by_uri[uri]
            self.up.pop(uri, None)
            self.node_of.pop(uri, None)

    async def _reload(self) -> None:
        workers = sorted(self.by_uri.values(), key=lambda w: w.index)
        await self.edge.set_workers(workers, {w.index: self.up.get(w.uri, True) for w in workers})
        listed = {t.uri for t in targets_from(parse_kamcmd(await self.edge.rpc("dispatcher.list")),
                                               workers)}  # fmt: skip
        self.stale = listed != set(self.by_uri)

    async def _end_lost_workers(self) -> None:
        """A node's worker died (the node restarts it): the calls it held end here."""
        while (raw := await self.redis.lpop(LOST_WORKERS)) is not None:
            uri = raw.decode() if isinstance(raw, bytes) else str(raw)
            worker = self.by_uri.get(uri)
            if worker is None:
                continue
            try:
                ended = await self.edge.end_dialogs(worker, "media worker lost")
            except UserError as exc:
                log.error("shared_edge.end_dialogs_failed", worker=uri, error=str(exc))
                continue
            log.info("shared_edge.worker_calls_ended", worker=uri, calls=ended)
