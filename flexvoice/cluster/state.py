"""What is live in a cluster, in Redis: which nodes are up (and their workers), which node
holds each call, and what an answered leg needs to be billed if its node dies.

Keys (one prefix, so a Redis can be shared with the API's guards):
  fv:nodes                 set of node names that joined (left on a clean stop, or once
                           another node closed a lost one's calls)
  fv:node:<node>           hash {url, workers (JSON [[uri, up], ...]), at}; TTL NODE_TTL,
                           refreshed by the node's heartbeat: present = the node beats
  fv:alive:<node>          the last heartbeat's time (ISO), no TTL: what lost calls are
                           billed up to
  fv:owner:<call_id>       the node holding the call; TTL NODE_TTL, refreshed by the
                           heartbeat; at the call's end ENDED_TTL (where its record is)
  fv:calls:<node>          set of the call ids the node holds (the heartbeat refreshes them)
  fv:legs:<node>           hash call_id -> the answered leg's billing fields (JSON), no TTL:
                           read back by whoever closes the node's calls when it is lost
  fv:lost:<node>           a claim (SET NX, short TTL): one node closes a lost one's calls
  fv:edge:changed          channel: a node's workers changed (the shared edge re-reads)
  fv:edge:alive            set by the shared edge while it runs (TTL), for /healthz
  fv:edge:lost             list of worker URIs a node saw die: the edge ends their calls

Every node's Redis connections carry the client name `fvnode-<node>`. The kernel closes them
the moment the process dies (kill -9, OOM killer), so `CLIENT LIST` tells a dead node within
the shared edge's poll interval, where a heartbeat key takes its whole TTL. A node that only
stalls (a long pause of its event loop) keeps its connections: it may be taken out of the
edge, but its calls are never closed while it holds one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from flexvoice.lostlegs import LiveLeg

NODE_TTL = 6  # seconds: three missed heartbeats (flexvoice.node.heartbeat: every 2 s)
EDGE_TTL = 3
CLAIM_TTL = 30
# An ended call stays readable through any node this long (its record is in its node's own
# calls table until that table is shared): a client reading the final state after its hang-up.
ENDED_TTL = 300
CLIENT_PREFIX = "fvnode-"
CHANGED = "fv:edge:changed"
EDGE_ALIVE = "fv:edge:alive"
LOST_WORKERS = "fv:edge:lost"  # list of worker URIs a node saw die: the edge ends their calls


def client_name(node: str) -> str:
    return CLIENT_PREFIX + node


@dataclass(frozen=True)
class NodeInfo:
    name: str
    url: str
    workers: list[tuple[str, bool]]  # (SIP URI, up)
    beating: bool  # its heartbeat key is present
    connected: bool  # it holds a Redis connection

    @property
    def serving(self) -> bool:
        """The edge may send it calls."""
        return self.beating and self.connected

    @property
    def lost(self) -> bool:
        """Dead for sure: its heartbeat expired and it holds no connection."""
        return not self.beating and not self.connected


def connected_nodes(client_list: Iterable[dict[str, Any]]) -> set[str]:
    """The node names among `CLIENT LIST`'s entries."""
    found = set()
    for client in client_list:
        name = str(client.get("name") or "")
        if name.startswith(CLIENT_PREFIX):
            found.add(name[len(CLIENT_PREFIX) :])
    return found


class ClusterState:
    """The keys above on an asyncio Redis client (redis.asyncio.Redis)."""

    def __init__(self, redis: Any, node: str):
        self.redis = redis
        self.node = node

    # -- this node ------------------------------------------------------------------------
    async def join(self, url: str, workers: list[tuple[str, bool]], at: str) -> None:
        await self.beat(url, workers, at, [])
        await self.redis.sadd("fv:nodes", self.node)
        await self.redis.publish(CHANGED, self.node)

    async def beat(
        self, url: str, workers: list[tuple[str, bool]], at: str, calls: Iterable[str]
    ) -> None:
        """The node is alive at `at`: its key, and the TTL of every call it holds."""
        key = f"fv:node:{self.node}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping={"url": url, "workers": json.dumps(workers), "at": at})
            pipe.expire(key, NODE_TTL)
            pipe.set(f"fv:alive:{self.node}", at)
            for call_id in calls:
                pipe.expire(f"fv:owner:{call_id}", NODE_TTL)
            await pipe.execute()

    async def workers_changed(self, workers: list[tuple[str, bool]]) -> None:
        key = f"fv:node:{self.node}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, "workers", json.dumps(workers))
            pipe.expire(key, NODE_TTL)
            pipe.publish(CHANGED, self.node)
            await pipe.execute()

    async def worker_lost(self, uri: str) -> None:
        await self.redis.rpush(LOST_WORKERS, uri)

    async def leave(self) -> None:
        """A clean stop: every call ended (the drain), nothing left to close."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(f"fv:node:{self.node}", f"fv:legs:{self.node}", f"fv:calls:{self.node}")
            pipe.srem("fv:nodes", self.node)
            pipe.publish(CHANGED, self.node)
            await pipe.execute()

    async def own(self, call_ids: Iterable[str]) -> None:
        await self._mark(list(call_ids), NODE_TTL, held=True)

    async def release(self, call_ids: Iterable[str]) -> None:
        await self._mark(list(call_ids), ENDED_TTL, held=False)

    async def _mark(self, ids: list[str], ttl: int, *, held: bool) -> None:
        """Each call names this node for `ttl` seconds; held ones are in the node's set (the
        heartbeat refreshes them), ended ones leave it with their billing fields."""
        if not ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for call_id in ids:
                pipe.set(f"fv:owner:{call_id}", self.node, ex=ttl)
            if held:
                pipe.sadd(f"fv:calls:{self.node}", *ids)
            else:
                pipe.srem(f"fv:calls:{self.node}", *ids)
                pipe.hdel(f"fv:legs:{self.node}", *ids)
            await pipe.execute()

    async def answered(self, legs: Iterable[LiveLeg]) -> None:
        rows = {leg.call_id: json.dumps(asdict(leg)) for leg in legs}
        if rows:
            await self.redis.hset(f"fv:legs:{self.node}", mapping=rows)

    # -- any node -------------------------------------------------------------------------
    async def owner(self, call_id: str) -> tuple[str, str | None] | None:
        """(node, its API URL or None when the node no longer beats) for a live call."""
        node = await self.redis.get(f"fv:owner:{call_id}")
        if node is None:
            return None
        name = node.decode() if isinstance(node, bytes) else str(node)
        url = await self.redis.hget(f"fv:node:{name}", "url")
        return name, (url.decode() if isinstance(url, bytes) else url)

    async def nodes(self) -> list[NodeInfo]:
        names = sorted(_text(n) for n in await self.redis.smembers("fv:nodes"))
        connected = connected_nodes(await self.redis.client_list())
        found = []
        for name in names:
            raw = await self.redis.hgetall(f"fv:node:{name}")
            doc = {_text(k): _text(v) for k, v in raw.items()}
            workers = [(str(u), bool(up)) for u, up in json.loads(doc.get("workers", "[]"))]
            found.append(NodeInfo(name, doc.get("url", ""), workers, bool(doc), name in connected))
        return found

    async def free_slots(self, nodes: Iterable[NodeInfo], max_calls: int) -> dict[str, int]:
        """Call slots each serving node has free: its workers up, less the calls it holds."""
        serving = [n for n in nodes if n.serving]
        async with self.redis.pipeline(transaction=False) as pipe:
            for n in serving:
                pipe.scard(f"fv:calls:{n.name}")
            held = await pipe.execute()
        return {
            n.name: sum(1 for _, up in n.workers if up) * max_calls - int(h)
            for n, h in zip(serving, held, strict=True)
        }

    async def claim(self, lost: str) -> bool:
        """This node closes `lost`'s calls (no other node does at the same time)."""
        return bool(await self.redis.set(f"fv:lost:{lost}", self.node, nx=True, ex=CLAIM_TTL))

    async def left_legs(self, lost: str) -> tuple[list[LiveLeg], list[str], str | None]:
        """A lost node's answered legs, every call it held, and its last heartbeat."""
        legs = [
            LiveLeg(**json.loads(v)) for v in (await self.redis.hgetall(f"fv:legs:{lost}")).values()
        ]
        calls = sorted(_text(c) for c in await self.redis.smembers(f"fv:calls:{lost}"))
        alive = await self.redis.get(f"fv:alive:{lost}")
        return legs, calls, _text(alive) if alive is not None else None

    async def closed(self, lost: str, call_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hdel(f"fv:legs:{lost}", call_id)
            pipe.srem(f"fv:calls:{lost}", call_id)
            pipe.delete(f"fv:owner:{call_id}")
            await pipe.execute()

    async def forget_node(self, lost: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(f"fv:legs:{lost}", f"fv:calls:{lost}", f"fv:lost:{lost}")
            pipe.srem("fv:nodes", lost)
            pipe.publish(CHANGED, lost)
            await pipe.execute()

    async def edge_alive(self) -> bool:
        return bool(await self.redis.exists(EDGE_ALIVE))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
