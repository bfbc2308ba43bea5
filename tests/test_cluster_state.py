"""The cluster's live state on a real redis-server: ownership with TTLs, a lost node told from a
stalled one, its calls closed once (by one node) and billed to its last heartbeat; the pure
parts (merging call lists, config checks) without Redis."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from flexvoice.cluster.forward import OwnerGone, forward
from flexvoice.cluster.member import Member
from flexvoice.cluster.shared_edge import parse_uri
from flexvoice.cluster.state import NODE_TTL, ClusterState, client_name, connected_nodes
from flexvoice.config import Config
from flexvoice.errors import UserError
from flexvoice.lostlegs import LiveLeg
from flexvoice.node.cluster import check_cluster_config, node_url
from flexvoice.system import free_port

LEG = LiveLeg(
    "CA" + "1" * 32, "bakery", "inbound", "+3225550100", "+3225551003",
    "2026-03-02T10:00:00+00:00", "2026-03-02T10:00:02+00:00", None,
)  # fmt: skip


class Sink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def record(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def member(redis: Any, node: str, sink: Sink) -> Member:
    clock = lambda: datetime(2026, 3, 2, 10, 0, 9, tzinfo=UTC)  # noqa: E731
    return Member(ClusterState(redis, node), f"http://{node}", sink=sink, calls=None,
                  shared_edge=True, clock=clock)  # fmt: skip


@pytest.mark.process
async def test_a_killed_nodes_calls_are_closed_once_and_a_stalled_node_is_left_alone(
    redis_url: str,
) -> None:
    a_conn = aioredis.from_url(redis_url, client_name=client_name("a"))
    b_conn = aioredis.from_url(redis_url, client_name=client_name("b"))
    c_conn = aioredis.from_url(redis_url, client_name=client_name("c"))
    sinks = {n: Sink() for n in "abc"}
    a, b, c = (member(r, n, sinks[n]) for r, n in ((a_conn, "a"), (b_conn, "b"), (c_conn, "c")))
    try:
        a.workers = [("sip:127.0.0.1:5070", True)]
        for m in (a, b, c):
            await m.join()
        # A owns a ringing call and an answered one, and beats.
        a.on_call_event(LEG.call_id, None, "queued", {})
        a.on_call_event("CA" + "2" * 32, None, "queued", {})
        writer = asyncio.create_task(a.write_ownership())
        await asyncio.sleep(0.1)
        await a.on_beat([LEG])
        assert await b.state.owner(LEG.call_id) == ("a", "http://a")
        assert 0 < await a_conn.ttl(f"fv:owner:{LEG.call_id}") <= NODE_TTL
        # Stalled: A's heartbeat expired but its connection lives: nobody closes its calls.
        await a_conn.delete("fv:node:a")
        await b.on_beat([])
        info = {n.name: n for n in b.nodes}
        assert not info["a"].serving and not info["a"].lost
        assert sinks["b"].events == []
        # Killed: no connection either. B and C look at once; one of them closes, once.
        writer.cancel()
        await a_conn.aclose()
        await asyncio.sleep(0.1)
        await asyncio.gather(b.on_beat([]), c.on_beat([]))
        billed = sinks["b"].events + sinks["c"].events
        assert [e["id"] for e in billed] == [f"{LEG.call_id}:leg"]
        assert billed[0]["ended_at"].startswith("2026-03-02T10:00:09")  # A's last heartbeat
        assert await b.state.owner(LEG.call_id) is None
        assert "a" not in {n.name for n in await b.state.nodes()}
        await asyncio.gather(b.on_beat([]), c.on_beat([]))
        assert len(sinks["b"].events + sinks["c"].events) == 1
    finally:
        for conn in (a_conn, b_conn, c_conn):
            await conn.aclose()


@pytest.mark.process
async def test_an_ended_call_stays_readable_a_while_then_expires(redis_url: str) -> None:
    conn = aioredis.from_url(redis_url)
    try:
        state = ClusterState(conn, "a")
        await state.own(["CA1"])
        await state.release(["CA1"])
        assert await state.owner("CA1") == ("a", None)  # A no longer beats: no URL
        assert NODE_TTL < await conn.ttl("fv:owner:CA1") <= 300
        assert await conn.smembers("fv:calls:a") == set()
    finally:
        await conn.aclose()


async def test_a_request_to_a_node_that_is_gone_says_so() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(OwnerGone):
            await forward(session, f"http://127.0.0.1:{free_port()}", "GET", "/v1/calls/x",
                          {"Authorization": "Bearer k"}, b"", "b", timeout=2)  # fmt: skip


def test_connected_nodes_and_uris() -> None:
    clients = [{"name": "fvnode-a"}, {"name": ""}, {"name": "fvedge"}, {"name": "fvnode-b"}]
    assert connected_nodes(clients) == {"a", "b"}
    assert parse_uri("sip:127.0.0.1:5070") == ("127.0.0.1", 5070)


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"cluster": {"edge": "shared"}}, "cluster.edge: 'shared' needs cluster.enabled"),
        ({"cluster": {"enabled": True}}, "set redis.enabled: true"),
        ({"cluster": {"enabled": True}, "redis": {"enabled": True}}, "postgresql://"),
    ],
)
def test_cluster_settings_that_cannot_work_are_refused(doc: dict[str, Any], words: str) -> None:
    with pytest.raises(UserError, match=re.escape(words)):
        check_cluster_config(Config.model_validate(doc))


def test_a_node_on_every_address_must_say_where_others_reach_it() -> None:
    cfg = Config.model_validate({"http": {"host": "0.0.0.0", "port": 8080}})
    with pytest.raises(UserError, match=r"cluster\.url"):
        node_url(cfg)
    assert node_url(Config.model_validate({"http": {"port": 8081}})) == "http://127.0.0.1:8081"


def test_a_node_name_redis_cannot_carry_is_refused() -> None:
    with pytest.raises(ValidationError, match="a node's name is 1-63 letters"):
        Config.model_validate({"cluster": {"node": "a b"}})
    assert Config.model_validate({"cluster": {"node": "node-a.eu_1"}}).cluster.node
