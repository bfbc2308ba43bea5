"""The live board pushed as Server-Sent Events (text/event-stream), for the statistics page and
for API clients: GET /v1/statistics/live/stream and /designer/api/statistics/live/stream.

Each stream is its request's own handler (no task of its own to leak). It looks at the
account's board version every PUSH_EVERY_S and sends the board when it moved, and at least
every REFRESH_S anyway (waits grow, and the write tells a gone client from a quiet one). It
ends when the node shuts down (Statistics.close_streams, on the app's shutdown), when
`still_allowed` says no (a logged-out session), or after MAX_STREAM_S; browsers' EventSource
then reconnects by itself after the `retry` it was given.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from flexvoice.api.problems import ProblemError
from flexvoice.logs import get_logger
from flexvoice.statistics.service import Statistics

log = get_logger(__name__)

PUSH_EVERY_S = 0.5  # at most two pushes a second per stream
REFRESH_S = 5.0  # a push at least this often, changed or not
SHARED_REFRESH_S = 2.0  # with shared Redis: other nodes' boards move without our knowing
CHECK_EVERY_S = 2.0  # how soon a logout ends the stream
MAX_STREAM_S = 3600.0
MAX_STREAMS_PER_ACCOUNT = 20
RETRY_MS = 3000


def event(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def live_stream(
    request: web.Request,
    stats: Statistics,
    account: str,
    still_allowed: Callable[[], Awaitable[bool]] | None = None,
) -> web.StreamResponse:
    if stats.closing:
        raise ProblemError("service-unavailable", "the node is shutting down; connect again")
    if stats.streams.get(account, 0) >= MAX_STREAMS_PER_ACCOUNT:
        raise ProblemError(
            "rate-limited",
            f"account '{account}' already has {MAX_STREAMS_PER_ACCOUNT} live streams open; "
            "close a statistics page or another stream first",
        )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a proxy in front must not hold the events back
            "X-Content-Type-Options": "nosniff",
        }
    )
    stats.streams[account] = stats.streams.get(account, 0) + 1
    loop = asyncio.get_running_loop()
    refresh = REFRESH_S if stats.redis is None else SHARED_REFRESH_S
    try:
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        opened = loop.time()
        sent_version, sent_at, checked_at = -1, 0.0, loop.time()
        while not stats.closing and loop.time() - opened < MAX_STREAM_S:
            now = loop.time()
            if still_allowed is not None and now - checked_at >= CHECK_EVERY_S:
                checked_at = now
                if not await still_allowed():
                    await response.write(event("closed", {"why": "logged out"}))
                    break
            version = stats.board.version(account)
            if version != sent_version or now - sent_at >= refresh:
                board = await stats.live(account)
                await response.write(event("live", board))
                sent_version, sent_at = version, now
            await asyncio.sleep(PUSH_EVERY_S)
        if stats.closing:
            await response.write(event("closed", {"why": "the node is shutting down"}))
    except ConnectionResetError:
        pass  # the client went away (aiohttp's ClientConnectionResetError is one)
    finally:
        left = stats.streams.get(account, 1) - 1
        if left:
            stats.streams[account] = left
        else:
            stats.streams.pop(account, None)
    return response
