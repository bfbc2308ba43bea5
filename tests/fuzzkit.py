"""Schemathesis against the real server's /openapi.json, shared by the test and `bench/fuzz.py`:
serve the API on loopback, then fuzz it and count the answers by status."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from tests.apikit import running_api


@contextlib.contextmanager
def serve_api(tmp: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The API on a loopback port, served from its own thread and event loop."""
    ready = threading.Event()
    stop: dict[str, Any] = {}
    out: dict[str, Any] = {}

    async def main() -> None:
        async with running_api(tmp, extra_config="api: {rate_limit_cps: 1000}\n") as api:
            out["url"] = str(api.client.make_url("")).rstrip("/")
            out["headers"] = api.auth("acme:admin")
            stop["event"] = asyncio.Event()
            stop["loop"] = asyncio.get_running_loop()
            ready.set()
            await stop["event"].wait()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert ready.wait(30), "the API did not start"
    try:
        yield out["url"], out["headers"]
    finally:
        stop["loop"].call_soon_threadsafe(stop["event"].set)
        thread.join(30)


def fuzz_api(base_url: str, headers: dict[str, str], max_examples: int) -> dict[str, int]:
    """Every operation of /openapi.json with `max_examples` generated inputs each; raises on
    the first 5xx or answer the document does not declare. Also what `./run fuzz` runs."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    # An event stream never ends on its own: a request/response fuzzer would wait for it
    # (tests/test_statistics_stream.py covers it).
    operations = [
        op
        for result in schema.get_all_operations()
        if not (op := result.ok()).path.endswith("/stream")
    ]
    assert len(operations) >= 12
    sent = {"n": 0, "4xx": 0, "2xx": 0, "5xx": 0}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=max_examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            response = case.call_and_validate(base_url=base_url, headers=headers, checks=checks)
            sent["n"] += 1
            code = response.status_code
            sent["2xx" if code < 300 else "4xx" if code < 500 else "5xx"] += 1

        run()
    return sent
