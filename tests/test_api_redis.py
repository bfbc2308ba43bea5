"""Idempotency, rate limits and lockout in a real redis-server shared by two API nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexvoice.appkeys import RATE_LIMITER
from tests.apikit import ACME_NUMBER, running_api

pytestmark = pytest.mark.process  # the CLI, a node or Redis as real processes

CALL = {"to": "+32475123450", "from": ACME_NUMBER, "flow": "support"}


async def test_two_nodes_share_idempotency_rate_limit_and_lockout(
    tmp_path: Path, redis_url: str
) -> None:
    extra = f"redis: {{enabled: true, url: '{redis_url}'}}\napi: {{rate_limit_cps: 2}}\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_api(tmp_path / "a", extra_config=extra) as a,
        running_api(tmp_path / "b", extra_config=extra) as b,
    ):
        # Each node has its own SQLite (as separate machines would); keys differ per node.
        headers_a = {**a.auth("acme:developer"), "Idempotency-Key": "k-1"}
        headers_b = {**b.auth("acme:developer"), "Idempotency-Key": "k-1"}
        r1 = await a.client.post("/v1/calls", json=CALL, headers=headers_a)
        assert r1.status == 201, await r1.text()
        r2 = await b.client.post("/v1/calls", json=CALL, headers=headers_b)
        assert r2.status == 201 and r2.headers["Idempotent-Replayed"] == "true"
        assert await r2.json() == await r1.json()
        assert a.originator is not None and b.originator is not None
        assert len(a.originator.calls) + len(b.originator.calls) == 1
        r3 = await b.client.post("/v1/calls", json={**CALL, "record": True}, headers=headers_b)
        assert r3.status == 409

        # Rate limit: 2 calls per second for the account across both nodes.
        for api in (a, b):
            api.app[RATE_LIMITER].clock = lambda: 7000.5  # type: ignore[attr-defined]
        assert (
            await a.client.post("/v1/calls", json=CALL, headers=a.auth("acme:developer"))
        ).status == 201
        assert (
            await b.client.post("/v1/calls", json=CALL, headers=b.auth("acme:developer"))
        ).status == 201
        r = await a.client.post("/v1/calls", json=CALL, headers=a.auth("acme:developer"))
        assert r.status == 429 and r.headers["Retry-After"] == "1"

        # Lockout: failures on node a lock the address out on node b too.
        bad = {"Authorization": "Bearer fvk_000000000000_nope"}
        for _ in range(5):  # the fifth failure is still answered 401; then the lockout
            assert (await a.client.get("/v1/calls", headers=bad)).status == 401
        assert (await a.client.get("/v1/calls", headers=bad)).status == 429
        r = await b.client.get("/v1/calls", headers=b.auth("acme:developer"))
        assert r.status == 429 and int(r.headers["Retry-After"]) > 800
