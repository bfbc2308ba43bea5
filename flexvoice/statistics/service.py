"""The statistics of a running node: the rollup collector and the live board listening to the
call registry, the catch-up at start, and - when nodes share Redis - each node's live board
published every few seconds so that any node answers for all of them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Histogram

from flexvoice.logs import get_logger
from flexvoice.statistics.collector import BATCH, MAX_DELAY, Collector
from flexvoice.statistics.facts import CallFacts
from flexvoice.statistics.live import LiveBoard, merge
from flexvoice.statistics.rollup import CallSource
from flexvoice.storage.engine import Connection

log = get_logger(__name__)

# Bounded labels only: outcomes are a fixed list; accounts, numbers and queues are not.
OUTCOMES = Counter(
    "flexvoice_call_outcomes_total", "Calls ended, by statistics outcome", ["outcome"]
)
ROLLUP_SECONDS = Histogram(
    "flexvoice_statistics_rollup_seconds",
    "Time to add one ended call to the statistics rollups (with its share of its batch's write)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
)
PUBLISH_EVERY = 2.0  # seconds between two publications of a node's board in Redis
PUBLISH_TTL = 10  # a node that stopped publishing leaves the shared view after this


def _measure(facts: CallFacts, seconds: float) -> None:
    OUTCOMES.labels(facts.outcome).inc()
    ROLLUP_SECONDS.observe(seconds)


class Statistics:
    def __init__(
        self,
        conn: Connection,
        calls: CallSource,
        *,
        node: str = "node",
        redis: Any = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        """`conn`: the call registry's store (the rollups live beside the calls)."""
        self.conn = conn
        self.node = node
        self.redis = redis
        self.collector = Collector(
            conn,
            calls,
            clock=clock,
            on_added=[_measure],
            batch=BATCH,
        )
        self.board = LiveBoard(clock)
        self._publisher: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        # Live streams (flexvoice.api.livestream): open ones per account, and the flag that
        # ends them all when the node shuts down.
        self.streams: dict[str, int] = {}
        self.closing = False

    def listen(self, listeners: list[Any]) -> None:
        """Attach to the call registry's listeners (flexvoice.calls.CallRegistry.listeners)."""
        listeners.append(self.board.listener)
        listeners.append(self.collector.listener)

    async def start(self) -> None:
        added = self.collector.catch_up()
        log.info("statistics.started", caught_up=added, shared=self.redis is not None)
        self._flusher = asyncio.create_task(self._flush_forever(), name="stats-flush")
        if self.redis is not None:
            self._publisher = asyncio.create_task(self._publish_forever(), name="stats-live")

    def close_streams(self) -> None:
        """Every live stream ends at its next tick (the node is shutting down)."""
        self.closing = True

    async def stop(self) -> None:
        self.close_streams()
        for task in (self._publisher, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.flush()

    def flush(self) -> None:
        """Write the ended calls still waiting in the collector's batch (before a question is
        read, and at shutdown). A failure is logged: the calls stay waiting, and the catch-up
        at the next start adds them if the node stops first."""
        try:
            self.collector.flush()
        except Exception as exc:
            log.warning(
                "statistics.flush_failed", error=str(exc), waiting=len(self.collector.pending)
            )

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(MAX_DELAY / 4)
            if self.collector.due():
                self.flush()

    def _key(self, account: str, node: str = "") -> str:
        return f"flexvoice:live:{account}:{node or self.node}"

    async def _publish_forever(self) -> None:
        while True:
            try:
                await self.publish()
            except Exception as exc:  # Redis away: the node's own view still answers
                log.warning("statistics.publish_failed", error=str(exc))
            await asyncio.sleep(PUBLISH_EVERY)

    async def publish(self) -> None:
        accounts = {c.account for c in self.board.calls.values()}
        accounts |= {a for a, starts in self.board.started.items() if starts}
        for account in accounts:
            snap = self.board.snapshot(account)
            await self.redis.set(self._key(account), json.dumps(snap), ex=PUBLISH_TTL)

    async def live(self, account: str) -> dict[str, Any]:
        """The account's live figures on every node that shares this one's Redis."""
        boards = [(self.node, self.board.snapshot(account))]
        if self.redis is not None:
            try:
                prefix = self._key(account, "*")
                async for raw in self.redis.scan_iter(match=prefix, count=100):
                    key = raw.decode() if isinstance(raw, bytes) else str(raw)
                    node = key.rsplit(":", 1)[-1]
                    if node == self.node:
                        continue
                    value = await self.redis.get(key)
                    if value:
                        boards.append((node, json.loads(value)))
            except Exception as exc:
                log.warning("statistics.shared_view_failed", error=str(exc))
        return merge(boards)
