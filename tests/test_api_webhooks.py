"""Status callbacks: signed, received by a real local HTTP server, retried after failures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from flexvoice.api.keys import webhook_secret
from flexvoice.api.webhooks import SIGNATURE_HEADER, sign, verify_signature
from flexvoice.appkeys import SHARED_DB, WEBHOOKS
from tests.apikit import ACME_NUMBER, running_api, wait_status

# The test's receiver listens on loopback: allowed here, refused by default.
CONFIG = "api: {webhook_retry_base: 50ms, private_urls: true}\n"


async def test_signed_status_callbacks_arrive_verified_and_failures_are_retried(
    tmp_path: Path,
) -> None:
    received: list[tuple[bytes, str]] = []
    fail_first = {"left": 2}  # the receiver is down for the first two attempts of 'completed'

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if json.loads(body)["event"] == "completed" and fail_first["left"] > 0:
            fail_first["left"] -= 1
            return web.Response(status=503)
        received.append((body, request.headers[SIGNATURE_HEADER]))
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    server = TestServer(receiver, host="127.0.0.1")
    await server.start_server()
    try:
        async with running_api(tmp_path, extra_config=CONFIG) as api:
            url = str(server.make_url("/hook"))
            r = await api.client.post(
                "/v1/calls",
                json={
                    "to": "+32475123450",
                    "from": ACME_NUMBER,
                    "flow": "support",
                    "status_callback": url,
                    "status_events": ["initiated", "ringing", "answered", "completed"],
                },
                headers=api.auth("acme:developer"),
            )
            assert r.status == 201, await r.text()
            call_id = (await r.json())["id"]
            await wait_status(api, "acme:developer", call_id, {"completed"})
            for _ in range(200):
                if len(received) == 4:
                    break
                await asyncio.sleep(0.02)
            secret = webhook_secret(api.app[SHARED_DB], "acme")
            events = []
            for body, header in received:
                assert verify_signature(secret, body, header), header
                assert not verify_signature("whsec_wrong", body, header)
                assert not verify_signature(secret, body + b" ", header)
                events.append(json.loads(body))
            assert [e["event"] for e in events] == ["initiated", "ringing", "answered", "completed"]
            final = events[-1]["call"]
            assert final["id"] == call_id and final["status"] == "completed"
            assert final["sip_status"] == 200 and final["billable_seconds"] is not None
            # A few ms to a BE mobile under flexio-payu: one started minute at 0.37.
            assert final["billable_seconds"] == 60 and final["price_eur"] == "0.3700", final
            assert api.app[WEBHOOKS].stats() == {"delivered": 4}
            row = (
                api.app[SHARED_DB]
                .execute("SELECT attempts FROM webhook_queue WHERE event = 'completed'")
                .fetchone()
            )
            assert row[0] == 3  # two failures, then delivered
    finally:
        await server.close()


def test_signature_refuses_replay_of_an_old_request() -> None:
    body = b'{"event": "completed"}'
    header = sign("whsec_x", body, 1_000_000)
    assert verify_signature("whsec_x", body, header, now=1_000_100)
    assert not verify_signature("whsec_x", body, header, now=1_000_000 + 301)
    assert not verify_signature("whsec_x", body, "v1=abc", now=1_000_000)


async def test_gives_up_after_max_age(tmp_path: Path) -> None:
    async with running_api(tmp_path, extra_config="api: {webhook_max_age: 60s}\n") as api:
        queue = api.app[WEBHOOKS]
        clock = Clock()
        queue.clock = clock
        # Port 9 (discard) on loopback: connection refused at once.
        queue.enqueue("acme", "http://127.0.0.1:9/nowhere", "completed", {"event": "completed"})
        await until(lambda: queue.stats() == {"pending": 1} and attempts(api) == 1)
        clock.now += 100  # the next attempt would be past 60 s: the background task gives up
        queue.enqueue("acme", "http://127.0.0.1:9/nowhere", "ringing", {"event": "ringing"})
        await until(lambda: queue.stats().get("dead") == 1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attempts(api: Any) -> int:
    row = api.app[SHARED_DB].execute("SELECT max(attempts) FROM webhook_queue").fetchone()
    return int(row[0] or 0)


async def until(predicate: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")
