"""Hostile input at the REST API (issue 12): YAML bombs and oversized documents refused with a
422 naming the limit, without holding the event loop; requests aiohttp refuses answered as
problem documents; inputs that were 500s; the lockout counted after the fifth failure, kept
across restarts and lifted by `flexvoice keys unlock`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from flexvoice.api.guards import LockoutPolicy, SqliteLockout
from flexvoice.api.httperrors import answer_with_problems
from flexvoice.flows.validate import MAX_FLOW_BYTES
from flexvoice.looplag import LOOP_LAG
from flexvoice.storage.sqlite import connect
from tests.apikit import problem, running_api
from tests.conftest import run_cli

YAML = {"Content-Type": "application/yaml"}


def alias_bomb(levels: int) -> str:
    """Anchors that repeat the one before nine times: 9**levels values from a few hundred
    bytes (the attack of the issue: 8 levels froze the node for 3 minutes)."""
    lines = ["flow: bomb", "start: a", "steps: {a: {hangup: {}}}", "x0: &x0 [q,q,q,q,q,q,q,q,q]"]
    for i in range(1, levels):
        lines.append(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def big_flow(target_bytes: int) -> str:
    """A valid flow as large as the upload bound allows: the worst a developer may send."""
    head = "flow: big\nstart: s0\nsteps:\n"
    step = '  s{n}:\n    play:\n      say: "Thank you for calling, one moment please"\n'
    step += "      then: s{m}\n"
    parts = [head]
    size = len(head)
    n = 0
    while size + 200 < target_bytes:
        text = step.format(n=n, m=n + 1)
        parts.append(text)
        size += len(text)
        n += 1
    parts.append(f"  s{n}:\n    hangup: {{}}\n")
    return "".join(parts)


async def test_yaml_alias_bomb_and_deep_nesting_get_422_naming_the_limit(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        dev = {**api.auth("acme:developer"), **YAML}
        started = time.monotonic()
        r = await api.client.put("/v1/flows/bomb", data=alias_bomb(8), headers=dev)
        doc = await problem(r, 422, "invalid-flow")
        assert "expands to more than 50000 values" in doc["detail"], doc
        assert time.monotonic() - started < 5  # the old main spent 3 minutes here
        deep = "flow: deep\nstart: a\nsteps: {a: {hangup: {}}}\nx: " + "[" * 5000 + "]" * 5000
        r = await api.client.put("/v1/flows/deep", data=deep, headers=dev)
        doc = await problem(r, 422, "invalid-flow")
        assert "nested more than 64 levels" in doc["detail"], doc
        too_big = big_flow(MAX_FLOW_BYTES + 10_000)
        r = await api.client.put("/v1/flows/big", data=too_big, headers=dev)
        doc = await problem(r, 422, "invalid-flow")
        assert f"over the limit of {MAX_FLOW_BYTES} bytes" in doc["detail"], doc
        # The same bomb inline (JSON has no aliases, but the size bound holds there too).
        r = await api.client.post(
            "/v1/calls",
            json={"to": "+32475123456", "from": "+3226001000", "flow_inline": {"x": "y" * 300_000}},
            headers=api.auth("acme:developer"),
        )
        doc = await problem(r, 422, "invalid-flow")
        assert "over the limit" in doc["detail"], doc
        assert not (tmp_path / "flows" / "bomb.yaml").exists()


async def test_healthz_stays_fast_while_the_largest_allowed_flow_is_checked(
    tmp_path: Path,
) -> None:
    """The worst upload a developer may send is parsed and validated in a thread: /healthz
    answers within 200 ms (95th percentile; the worst single probe within 1 s, as other test
    runs share this 2-core machine: measured 22-231 ms at worst under a load average of 8-10)."""
    text = big_flow(MAX_FLOW_BYTES - 2_000)
    async with running_api(tmp_path) as api:
        dev = {**api.auth("acme:developer"), **YAML}
        api.app[LOOP_LAG].worst = 0.0  # from here on: start-up (keys, schema) is not measured
        put = asyncio.ensure_future(api.client.put("/v1/flows/big", data=text, headers=dev))
        took: list[float] = []
        while not put.done():
            started = time.monotonic()
            r = await api.client.get("/healthz")
            await r.read()
            took.append(time.monotonic() - started)
            await asyncio.sleep(0.02)
        r = await put
        assert r.status == 201, await r.text()
        # The old main held the loop for the whole parse: one or two probes, seconds each.
        assert len(took) >= 5, took
        took.sort()
        p95 = took[int(len(took) * 0.95) - 1]
        assert p95 < 0.2, f"/healthz p95 {p95 * 1000:.0f} ms during the upload"
        assert took[-1] < 1.0, f"/healthz took {took[-1] * 1000:.0f} ms at worst"
        r = await api.client.get("/metrics")
        assert "flexvoice_event_loop_lag_seconds_bucket" in await r.text()


async def raw_request(port: int, data: bytes) -> tuple[int, dict[str, Any], str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.decode().partition(":") for line in head.split(b"\r\n")[1:])
    }
    return status, headers, body.decode()


async def test_requests_aiohttp_refuses_get_problem_documents(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        assert api.client.server.runner is not None
        answer_with_problems(api.client.server.runner)
        port = api.client.server.port
        assert port is not None
        cases = [
            (b"GET /v1/" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri-too-long"),
            (
                b"POST /v1/calls HTTP/1.1\r\nHost: x\r\nIdempotency-Key: "
                + b"k" * 100_000
                + b"\r\nContent-Length: 0\r\n\r\n",
                431,
                "headers-too-large",
            ),
            (
                b"GET /v1/calls HTTP/1.1\r\nHost: x\r\n"
                + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
                + b"\r\n",
                431,
                "headers-too-large",
            ),
            (b"BLAH / HTTP/1.1\r\n\r\n", 400, "malformed-request"),
        ]
        for data, status, slug in cases:
            got, headers, body = await raw_request(port, data)
            assert got == status, body
            assert headers["content-type"].startswith("application/problem+json"), headers
            doc = json.loads(body)
            assert doc["type"] == f"urn:flexvoice:problem:{slug}" and doc["detail"], doc


async def test_inputs_that_were_500s(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        r = await api.client.get("/v1/usage?month=9999-12", headers=api.auth("acme:finance"))
        doc = await problem(r, 400, "invalid-query-parameter", "month")
        assert "9998-12" in doc["detail"], doc
        r = await api.client.put(
            "/v1/flows/" + "a" * 300,
            data="flow: a\n",
            headers={**api.auth("acme:developer"), **YAML},
        )
        doc = await problem(r, 422, "invalid-field", "name")
        assert "at most 63 characters" in doc["detail"], doc


@pytest.mark.process  # `flexvoice keys unlock` as a real CLI process
async def test_lockout_after_the_fifth_failure_survives_a_restart_and_unlocks(
    tmp_path: Path,
) -> None:
    bad = {"Authorization": "Bearer fvk_000000000000_wrong"}
    async with running_api(tmp_path) as api:
        for _ in range(5):
            r = await api.client.get("/v1/calls", headers=bad)
            await problem(r, 401, "invalid-key")
        r = await api.client.get("/v1/calls", headers=api.auth("acme:developer"))
        await problem(r, 429, "too-many-failed-authentications")
        address = "127.0.0.1"
        # A restarted node (another connection to the same database) still sees it.
        db = tmp_path / "flexvoice.db"
        restarted = SqliteLockout(connect(db), LockoutPolicy())
        assert await restarted.locked_for(address) > 800
        proc = run_cli("keys", "unlock", "--address", address, "--db", str(db))
        assert proc.returncode == 0, proc.stderr
        assert f"unlocked {address}" in proc.stdout
        assert await restarted.locked_for(address) == 0
        r = await api.client.get("/v1/calls", headers=api.auth("acme:developer"))
        assert r.status == 200, await r.text()
        proc = run_cli("keys", "unlock", "--address", "not-an-ip", "--db", str(db))
        assert proc.returncode == 2 and "not an IP address" in proc.stderr
