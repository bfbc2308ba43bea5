"""The live board pushed as Server-Sent Events over real HTTP: to API keys and to the console's
session, changing when a call starts and ends, refused to agents, ended by logout and by the
node's shutdown, with no stream left counted afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flexvoice.api import livestream
from flexvoice.appkeys import CALLS, STATISTICS
from flexvoice.users import create_user
from tests.designerkit import ANALYST, PASSWORD, Designer, running_designer

AGENT = "agent@bakery.be"
PATH = "/designer/api/statistics/live/stream"


@pytest.fixture
async def d(tmp_path: Path) -> AsyncIterator[Designer]:
    async with running_designer(tmp_path) as designer:
        create_user(designer.conn, AGENT, "acme", "agent", PASSWORD)
        yield designer


@contextlib.asynccontextmanager
async def logged_in(d: Designer, email: str) -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        async with session.post(
            d.url + "/designer/login", data={"email": email, "password": PASSWORD}
        ) as r:
            assert r.status == 200 and r.url.path == "/designer/", (r.status, r.url)
        yield session
    finally:
        await session.close()


async def next_event(resp: aiohttp.ClientResponse, timeout: float = 10) -> tuple[str, Any]:
    """The next named event (the `retry:` line is skipped)."""
    while True:
        raw = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), timeout)
        if not raw:
            raise EOFError("the stream ended")
        fields = dict(
            line.split(": ", 1) for line in raw.decode().strip().split("\n") if ": " in line
        )
        if "event" in fields:
            return fields["event"], json.loads(fields["data"])


async def event_where(resp: aiohttp.ClientResponse, want: Any, timeout: float = 10) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        name, data = await next_event(resp, max(left, 0.01))
        if name == "live" and want(data):
            return data


def start_call(d: Designer, account: str = "acme") -> str:
    return str(
        d.api.app[CALLS]
        .create(
            account=account,
            direction="inbound",
            from_number="+3225550100",
            to_number="+3226001000",
            flow="bakery-main",
        )
        .id
    )


def end_call(d: Designer, call_id: str) -> None:
    d.api.app[CALLS].call_event(
        call_id, "ended", {"sip_status": 200, "cause": "normal", "outcome": "completed"}
    )


async def test_api_stream_pushes_a_call_starting_and_ending_to_its_account_only(
    d: Designer,
) -> None:
    client = d.api.client
    resp = await client.get(
        "/v1/statistics/live/stream", headers=d.api.auth("acme:analyst"), timeout=None
    )
    other = await client.get(
        "/v1/statistics/live/stream", headers=d.api.auth("other:analyst"), timeout=None
    )
    try:
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
        name, first = await next_event(resp)
        assert name == "live" and first["calls_up"] == 0
        await next_event(other)
        call_id = start_call(d)
        t0 = asyncio.get_running_loop().time()
        up = await event_where(resp, lambda b: b["calls_up"] == 1)
        # Pushed on the change (the stream looks twice a second), not at the 5 s refresh.
        assert asyncio.get_running_loop().time() - t0 < 2.0
        assert up["by_number"] == [{"number": "+3226001000", "flow": "bakery-main", "calls": 1}]
        end_call(d, call_id)
        await event_where(resp, lambda b: b["calls_up"] == 0)
        # The other account's stream never saw the call (its refresh says 0 calls).
        name, theirs = await next_event(other, timeout=livestream.REFRESH_S + 3)
        assert theirs["calls_up"] == 0 and theirs["account"] == "other"
    finally:
        resp.close()
        other.close()
    stats = d.api.app[STATISTICS]
    for _ in range(50):  # each handler notices the closed connection at its next write
        if not stats.streams:
            break
        await asyncio.sleep(0.2)
    assert stats.streams == {}


async def test_developer_key_and_agent_session_cannot_follow_the_statistics(
    d: Designer,
) -> None:
    resp = await d.api.client.get(
        "/v1/statistics/live/stream", headers=d.api.auth("acme:developer")
    )
    assert resp.status == 403
    async with logged_in(d, AGENT) as agent:
        for path in (PATH, "/designer/api/statistics/live", "/designer/api/statistics/calls"):
            async with agent.get(d.url + path + "?from=2026-03-01&to=2026-03-01") as r:
                assert r.status == 403, path
                assert "analyst" in (await r.json())["detail"]
        async with agent.get(d.url + "/designer/api/me") as r:
            assert (await r.json())["can_read_statistics"] is False


async def test_console_stream_ends_at_logout(d: Designer) -> None:
    async with logged_in(d, ANALYST) as analyst:
        async with analyst.get(d.url + "/designer/api/me") as r:
            assert (await r.json())["can_read_statistics"] is True
        async with analyst.get(
            d.url + "/designer/api/statistics/calls?from=2026-03-01&to=2026-03-01&format=csv"
        ) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
        resp = await analyst.get(d.url + PATH, timeout=aiohttp.ClientTimeout(total=None))
        try:
            assert resp.status == 200
            assert (await next_event(resp))[0] == "live"
            # Logging out from another tab (same cookie) closes the session: the stream ends.
            async with analyst.post(d.url + "/designer/logout", allow_redirects=False) as out:
                assert out.status == 303
            name, data = await next_event(resp, timeout=livestream.CHECK_EVERY_S + 8)
            while name == "live":
                name, data = await next_event(resp, timeout=livestream.CHECK_EVERY_S + 8)
            assert (name, data) == ("closed", {"why": "logged out"})
            assert await asyncio.wait_for(resp.content.read(), 5) == b""
        finally:
            resp.close()


async def test_shutdown_ends_every_stream(d: Designer) -> None:
    resps = [
        await d.api.client.get(
            "/v1/statistics/live/stream", headers=d.api.auth("acme:manager"), timeout=None
        )
        for _ in range(3)
    ]
    try:
        for resp in resps:
            assert (await next_event(resp))[0] == "live"
        stats = d.api.app[STATISTICS]
        assert stats.streams == {"acme": 3}
        stats.close_streams()  # what the app's on_shutdown does
        for resp in resps:
            name, data = await next_event(resp)
            while name == "live":
                name, data = await next_event(resp)
            assert name == "closed" and "shutting down" in data["why"]
        await asyncio.sleep(0.1)
        assert stats.streams == {}
    finally:
        for resp in resps:
            resp.close()


async def test_stopping_the_node_ends_an_open_stream_at_once(tmp_path: Path) -> None:
    """aiohttp's shutdown waits for running handlers; the app's on_shutdown ends the streams
    first, so a node with a page open still stops at once."""
    session = aiohttp.ClientSession()
    names: list[str] = []
    try:
        async with running_designer(tmp_path) as d:
            resp = await session.get(
                d.url + "/v1/statistics/live/stream",
                headers=d.api.auth("acme:analyst"),
                timeout=aiohttp.ClientTimeout(total=None),
            )
            names.append((await next_event(resp))[0])

            async def rest() -> None:
                with contextlib.suppress(EOFError, aiohttp.ClientError):
                    while True:
                        names.append((await next_event(resp, timeout=30))[0])

            reader = asyncio.create_task(rest())
            t0 = asyncio.get_running_loop().time()
        stopped = asyncio.get_running_loop().time() - t0
        await asyncio.wait_for(reader, 10)
    finally:
        await session.close()
    assert stopped < 5, stopped
    assert names[0] == "live" and names[-1] == "closed", names
