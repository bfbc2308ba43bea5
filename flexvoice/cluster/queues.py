"""Queues shared by every node: the lines of flexvoice.flows.queues in Redis, so a caller
waiting on node A and one on node B are in one line (first come, first served over both),
and an agent is offered to one caller at a time whichever node dials. `Line`'s rules, as one
Lua script, are held to the in-memory board by tests/test_queue_line.py.

Keys (account and queue name in the key: two accounts' queues of one name are two lines):
  fv:q:<account>:<queue>          sorted set of waiting call ids, score = arrival by Redis's
                                  clock: one clock for every node, and a caller is never put
                                  ahead of one who was already offered an agent
  fv:qturn:<account>:<queue>      where the agents' round robin stands
  fv:qagent:<account>:<target>    an agent ringing or talking for a caller: the holder
                                  (node/call id), TTL AGENT_TTL refreshed while it is held, so
                                  a dead node's agents come free by themselves
  fv:qin:<node>                   hash call id -> its line's key: a lost node's callers are
                                  taken out of their lines by the node that closes its calls
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from flexvoice.callcontrol import CallLeg, DialResult
from flexvoice.cluster.agents import RemoteAgents
from flexvoice.flows.queues import QueueSlot
from flexvoice.logs import get_logger
from flexvoice.sip.leg import SipLeg

log = get_logger(__name__)

AGENT_TTL_MS = 15_000
AGENT_REFRESH = 5.0  # seconds: three refreshes per TTL

# KEYS: the line, the node's callers; ARGV: call id.
ENTER = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], 'NX', tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], KEYS[1])
"""
# KEYS: the line, its turn, then one agent lock per target (targets' order);
# ARGV: call id, lock holder, lock TTL (ms). Returns the target's index, or -1.
CLAIM = """
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if head[1] ~= ARGV[1] then return -1 end
local n = #KEYS - 2
local turn = tonumber(redis.call('GET', KEYS[2]) or '0')
for i = 0, n - 1 do
  local k = (turn + i) % n
  if redis.call('SET', KEYS[3 + k], ARGV[2], 'NX', 'PX', ARGV[3]) then
    redis.call('SET', KEYS[2], k + 1)
    return k
  end
end
return -1
"""
# The lock is renewed only while this caller holds it.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# The lock goes only if this caller still holds it (it may have expired and been taken).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisQueueBoard:
    """The lines of every node, on an asyncio Redis client (redis.asyncio.Redis)."""

    def __init__(self, redis: Any, node: str):
        self.redis = redis
        self.node = node
        self.agents: RemoteAgents | None = None  # agents dialled by other nodes
        self._enter = redis.register_script(ENTER)
        self._claim = redis.register_script(CLAIM)
        self._release = redis.register_script(RELEASE)
        self._renew = redis.register_script(RENEW)

    @contextlib.asynccontextmanager
    async def slot(
        self, account: str, name: str, call_id: str, arrived: float
    ) -> AsyncIterator[QueueSlot]:
        # `arrived` is this node's clock: the line goes by Redis's (ENTER), one for all nodes.
        line = f"fv:q:{account}:{name}"
        await self._enter(keys=[line, f"fv:qin:{self.node}"], args=[call_id])
        slot = RedisSlot(self, account, line, call_id)
        try:
            yield slot
        finally:
            # Redis away: the agents' claims expire unrenewed, and the heartbeat's tidy (or,
            # for a lost node, the closer) takes the caller out of the line.
            for target in list(slot.held):
                with contextlib.suppress(Exception):
                    await slot.agent_done(target)
            with contextlib.suppress(Exception):
                await slot.leave()

    async def tidy(self, live: set[str]) -> list[str]:
        """Take out of their lines this node's callers whose calls are over (their step
        could not leave while Redis was away): a stale head would hold up the whole line."""
        entries = {_text(c): _text(line) for c, line in (await self.redis.hgetall(
            f"fv:qin:{self.node}")).items()}  # fmt: skip
        gone = sorted(c for c in entries if c not in live)
        if gone:
            async with self.redis.pipeline(transaction=True) as pipe:
                for call_id in gone:
                    pipe.zrem(entries[call_id], call_id)
                pipe.hdel(f"fv:qin:{self.node}", *gone)
                await pipe.execute()
        return gone

    async def drop_node(self, node: str) -> list[str]:
        """Take a lost node's callers out of their lines; their call ids."""
        left = await self.redis.hgetall(f"fv:qin:{node}")
        async with self.redis.pipeline(transaction=True) as pipe:
            for call_id, line in left.items():
                pipe.zrem(line, call_id)
            pipe.delete(f"fv:qin:{node}")
            await pipe.execute()
        return sorted(_text(c) for c in left)


class RedisSlot:
    def __init__(self, board: RedisQueueBoard, account: str, line: str, call_id: str):
        self.board, self.account, self.line, self.call_id = board, account, line, call_id
        self.holder = f"{board.node}/{call_id}"
        self.held: dict[str, asyncio.Task[None]] = {}  # target -> its lock's refresher

    def _agent(self, target: str) -> str:
        return f"fv:qagent:{self.account}:{target}"

    async def position(self) -> int:
        rank = await self.board.redis.zrank(self.line, self.call_id)
        return 0 if rank is None else int(rank) + 1

    async def offer(self, targets: Sequence[str]) -> str | None:
        keys = [self.line, self.line.replace("fv:q:", "fv:qturn:", 1)]
        keys += [self._agent(t) for t in targets]
        k = int(await self.board._claim(keys=keys, args=[self.call_id, self.holder, AGENT_TTL_MS]))
        if k < 0:
            return None
        target = targets[k]
        self.held[target] = asyncio.get_running_loop().create_task(self._keep(target))
        return target

    async def _keep(self, target: str) -> None:
        while True:
            await asyncio.sleep(AGENT_REFRESH)
            try:
                await self.board._renew(
                    keys=[self._agent(target)], args=[self.holder, AGENT_TTL_MS]
                )
            except Exception:
                log.warning("cluster.queue_agent_refresh_failed", target=target)

    async def agent_done(self, target: str) -> None:
        task = self.held.pop(target, None)
        if task is None:
            return
        task.cancel()
        await self.board._release(keys=[self._agent(target)], args=[self.holder])

    async def dial(
        self, leg: CallLeg, target: str, ring_timeout: float, caller_id: str | None
    ) -> DialResult | None:
        agents = self.board.agents
        if agents is None or not isinstance(leg, SipLeg):
            return None
        return await agents.dial(leg, self.account, target, ring_timeout, caller_id)

    async def leave(self) -> None:
        async with self.board.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.line, self.call_id)
            pipe.hdel(f"fv:qin:{self.board.node}", self.call_id)
            await pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
