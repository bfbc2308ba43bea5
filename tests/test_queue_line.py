"""The queue's rules (flexvoice.flows.queues.Line) and the two boards that keep them: one
node's lines in memory, and the cluster's in a real redis-server (its Lua claim). The same
scenarios run on both, so the in-memory board the single-node tests use cannot drift from
what the cluster does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis

from flexvoice.cluster import queues
from flexvoice.cluster.queues import RedisQueueBoard
from flexvoice.flows.queues import Line, QueueBoard, QueueBoards, pick_agent

AGENTS = ["+3225550201", "+3225550202", "+3225550203"]


def test_agents_are_offered_in_turn_skipping_busy_ones() -> None:
    assert pick_agent(AGENTS, 0, set()) == 0
    assert pick_agent(AGENTS, 4, set()) == 1
    assert pick_agent(AGENTS, 1, {AGENTS[1]}) == 2
    assert pick_agent(AGENTS, 2, {AGENTS[2], AGENTS[0]}) == 1
    assert pick_agent(AGENTS, 0, set(AGENTS)) is None


def test_only_the_head_is_offered_and_arrival_orders_the_line() -> None:
    line = Line()
    line.enter("late", 20.0)
    line.enter("early", 10.0)
    line.enter("tie", 20.0)  # same second: who entered first stays first
    assert [line.position(c) for c in ("early", "late", "tie", "gone")] == [1, 2, 3, 0]
    assert line.claim("late", AGENTS, set()) is None
    assert line.claim("early", AGENTS, set()) == AGENTS[0]
    assert line.claim("early", AGENTS, {AGENTS[1]}) == AGENTS[2]
    line.leave("early")
    assert line.position("late") == 1
    assert line.claim("late", AGENTS, set()) == AGENTS[0]  # the turn goes round


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.process)])
async def boards(request: pytest.FixtureRequest) -> AsyncIterator[tuple[QueueBoards, ...]]:
    """Two nodes' views of the lines: one board in memory (one node), or two nodes' boards
    on one real Redis."""
    if request.param == "memory":
        board = QueueBoard()
        yield board, board
        return
    url = request.getfixturevalue("redis_url")
    a, b = aioredis.from_url(url), aioredis.from_url(url)
    try:
        yield RedisQueueBoard(a, "a"), RedisQueueBoard(b, "b")
    finally:
        await a.aclose()
        await b.aclose()


async def test_one_line_over_both_nodes_first_come_first_served(
    boards: tuple[QueueBoards, QueueBoards],
) -> None:
    a, b = boards
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(a.slot("bakery", "support", "CA1", 100.0))
        second = await stack.enter_async_context(b.slot("bakery", "support", "CA2", 101.5))
        other = await stack.enter_async_context(b.slot("florist", "support", "CA3", 102.0))
        assert [await s.position() for s in (first, second, other)] == [1, 2, 1]
        assert await second.offer(AGENTS) is None  # not the head
        assert await first.offer(AGENTS) == AGENTS[0]
        # The head rings the first agent: the next offer skips that agent, in any queue of
        # the account, but not in another account's.
        async with b.slot("bakery", "sales", "CA4", 103.0) as sales:
            assert await sales.offer(AGENTS[:1]) is None
            assert await sales.offer(AGENTS) == AGENTS[1]
            await sales.agent_done(AGENTS[1])
        assert await other.offer(AGENTS[:1]) == AGENTS[0]
        assert await first.offer(AGENTS) == AGENTS[1]  # round robin, the first still busy
        await first.agent_done(AGENTS[0])
        await first.agent_done(AGENTS[1])
        await first.leave()  # answered: out of the line
        assert await second.position() == 1
        assert await second.offer(AGENTS) == AGENTS[2]
        await second.agent_done(AGENTS[2])
        assert await second.offer(AGENTS) == AGENTS[0]
    # Leaving the step (hang-up, overflow) frees the line and the agents it held.
    async with a.slot("bakery", "support", "CA5", 200.0) as again:
        assert await again.position() == 1
        assert await again.offer(AGENTS[:1]) == AGENTS[0]


@pytest.mark.process
async def test_a_lost_nodes_callers_leave_the_shared_line_and_its_agents_come_free(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queues, "AGENT_TTL_MS", 300)
    a_conn, b_conn = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    a, b = RedisQueueBoard(a_conn, "a"), RedisQueueBoard(b_conn, "b")
    try:
        dead = a.slot("bakery", "support", "CA1", 100.0)
        on_a = await dead.__aenter__()  # node A dies: the step never leaves
        async with b.slot("bakery", "support", "CA2", 101.0) as on_b:
            assert await on_a.offer(AGENTS[:1]) == AGENTS[0]
            assert await on_b.position() == 2
            assert await b.drop_node("a") == ["CA1"]
            assert await on_b.position() == 1
            assert await on_b.offer(AGENTS[:1]) is None  # A's agent still held ...
            for held in list(on_a.held.values()):  # ... until its lock expires unrefreshed
                held.cancel()
            await asyncio.sleep(0.4)
            assert await on_b.offer(AGENTS[:1]) == AGENTS[0]
        assert await a_conn.exists("fv:q:bakery:support", "fv:qin:a", "fv:qin:b") == 0
    finally:
        await a_conn.aclose()
        await b_conn.aclose()


@pytest.mark.process
async def test_a_callers_entry_left_behind_is_tidied_by_its_nodes_heartbeat(redis_url: str) -> None:
    conn = aioredis.from_url(redis_url)
    board = RedisQueueBoard(conn, "a")
    try:
        stale = board.slot("bakery", "support", "CA1", 100.0)
        await stale.__aenter__()  # its step could not leave (Redis was away)
        async with board.slot("bakery", "support", "CA2", 101.0) as waiting:
            assert await waiting.position() == 2
            assert await board.tidy({"CA2"}) == ["CA1"]  # CA1's call is over
            assert await waiting.position() == 1
            assert await board.tidy({"CA2"}) == []
    finally:
        await conn.aclose()
