"""How long the event loop was kept from running: the node's own stall detector.

A task asks to wake every `INTERVAL` seconds and measures how late it woke; the lateness is
the time some callback held the loop (a parse, a query, a bug). Served in /metrics as a
histogram and as the worst lateness of the last minute, and logged when over 100 ms, so a
stall shows itself with a time stamp instead of as silence.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Gauge, Histogram

from flexvoice.logs import get_logger

log = get_logger(__name__)

INTERVAL = 0.05
WINDOW = 60.0  # seconds over which the worst lag is reported
STALL = 0.1  # the bound the node promises; a lag above it is logged

LAG = Histogram(
    "flexvoice_event_loop_lag_seconds",
    "How late the control plane's event loop woke a timer (time held by other work)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 5),
)
LAG_MAX = Gauge(
    "flexvoice_event_loop_lag_max_seconds",
    "The worst event-loop lag seen in the last minute",
)


class LoopLagMonitor:
    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.recent: collections.deque[tuple[float, float]] = collections.deque()
        self.worst = 0.0  # since start: what tests and the bench read

    def observe(self, now: float, lag: float) -> None:
        lag = max(0.0, lag)
        LAG.observe(lag)
        self.worst = max(self.worst, lag)
        self.recent.append((now, lag))
        while self.recent and self.recent[0][0] < now - WINDOW:
            self.recent.popleft()
        LAG_MAX.set(max(v for _, v in self.recent))
        if lag > STALL:
            log.warning("node.loop_stalled", seconds=round(lag, 3))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.observe(now, now - due)


LOOP_LAG = web.AppKey("loop_lag", LoopLagMonitor)


async def loop_lag_component(app: web.Application) -> AsyncIterator[None]:
    monitor = LoopLagMonitor()
    app[LOOP_LAG] = monitor
    task = asyncio.create_task(monitor.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
