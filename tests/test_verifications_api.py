"""/v1/verifications over HTTP; the code goes through SMPP to a real SMSC process and is read
back from what the SMSC received, as a phone would."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from flexvoice.appkeys import USAGE_SINK
from flexvoice.system import free_port
from tests.apikit import Api, running_api
from tests.conftest import node_store_text
from tests.metering_helpers import usage_events
from tests.smsctool import Smsc, running_smsc, smpp_config

MOBILE = "+32475123456"
DEV = "acme:developer"

pytestmark = pytest.mark.process  # the SMSC (or the CLI) runs as its own process


async def start(api: Api, who: str = DEV, **fields: Any) -> tuple[int, Any, Any]:
    r = await api.client.post(
        "/v1/verifications", json={"to": MOBILE, **fields}, headers=api.auth(who)
    )
    return r.status, await r.json(), r.headers


async def check(api: Api, vid: str, code: str, who: str = DEV) -> tuple[int, Any]:
    r = await api.client.post(
        f"/v1/verifications/{vid}/check", json={"code": code}, headers=api.auth(who)
    )
    return r.status, await r.json()


async def code_from(smsc: Smsc, count: int) -> str:
    got = await smsc.wait_received(count)
    found = re.search(r"\d{4,10}", got[count - 1]["text"])
    assert found is not None
    return found.group(0)


async def test_verification_by_sms_end_to_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    with running_smsc(tmp_path, port) as smsc:
        async with running_api(tmp_path, extra_config=smpp_config(port), usage=True) as api:
            status, doc, _ = await start(api, code_length=8, locale="nl")
            assert status == 201, doc
            assert doc["status"] == "pending" and doc["checks_left"] == 5
            assert doc["price_eur"] == "0.05" and "code" not in doc
            code = await code_from(smsc, 1)
            assert len(code) == 8
            got = smsc.received()[0]
            assert got["from"] == "Verify" and got["from_ton"] == 5  # alphanumeric sender
            assert got["text"].startswith("Uw verificatiecode is")
            # Asking again within the validity resends the same code.
            status, again, _ = await start(api, code_length=8, locale="nl")
            assert again["id"] == doc["id"] and again["sends"] == 2
            assert await code_from(smsc, 2) == code
            # Another account cannot see or check it.
            r = await api.client.get(
                f"/v1/verifications/{doc['id']}", headers=api.auth("other:developer")
            )
            assert r.status == 404
            status, _ = await check(api, doc["id"], code, who="other:developer")
            assert status == 404
            status, wrong = await check(
                api, doc["id"], "12345678" if code != "12345678" else "87654321"
            )
            assert (status, wrong["status"], wrong["checks_left"]) == (200, "pending", 4)
            status, ok = await check(api, doc["id"], code)
            assert (status, ok["status"]) == (200, "approved")
            status, _ = await check(api, doc["id"], code)
            assert status == 404
            # The SMS that carried it is not among the account's messages.
            r = await api.client.get("/v1/messages", headers=api.auth(DEV))
            assert (await r.json())["messages"] == []
            await asyncio.sleep(0.3)  # the second SMS is billed once the gateway took it
            await api.app[USAGE_SINK].flush()
    kinds = sorted(e["kind"] for e in usage_events(tmp_path) if e["kind"] != "number")
    assert kinds == ["sms", "sms", "verification", "verification"]
    # No code in any log line of the node, nor in its database, nor in a webhook.
    assert code not in caplog.text
    assert all(
        code not in json.dumps(getattr(r, "fields", {}), default=str) for r in caplog.records
    )
    for path in tmp_path.glob("flexvoice.db*"):
        assert code.encode() not in path.read_bytes()
    stored = node_store_text(tmp_path / "flexvoice.yaml")  # PostgreSQL's rows, or SQLite's
    assert doc["id"] in stored  # the look-up reads the real rows
    assert code not in stored


async def test_wrong_code_five_times_then_404(tmp_path: Path) -> None:
    port = free_port()
    with running_smsc(tmp_path, port) as smsc:
        async with running_api(tmp_path, extra_config=smpp_config(port)) as api:
            _, doc, _ = await start(api)
            code = await code_from(smsc, 1)
            wrong = "000000" if code != "000000" else "111111"
            seen = [(await check(api, doc["id"], wrong))[1]["status"] for _ in range(5)]
            assert seen == ["pending"] * 4 + ["max_attempts_reached"]
            status, _ = await check(api, doc["id"], code)
            assert status == 404
            r = await api.client.get(f"/v1/verifications/{doc['id']}", headers=api.auth(DEV))
            assert (await r.json())["status"] == "max_attempts_reached"


async def test_two_concurrent_checks_at_the_limit(tmp_path: Path) -> None:
    port = free_port()
    with running_smsc(tmp_path, port) as smsc:
        async with running_api(tmp_path, extra_config=smpp_config(port)) as api:
            _, doc, _ = await start(api)
            code = await code_from(smsc, 1)
            wrong = "000000" if code != "000000" else "111111"
            for _ in range(4):
                await check(api, doc["id"], wrong)
            results = await asyncio.gather(check(api, doc["id"], code), check(api, doc["id"], code))
            statuses = sorted(status for status, _ in results)
            assert statuses == [200, 404], results  # the fifth check is counted once


async def test_send_limit_cancel_and_destinations(tmp_path: Path) -> None:
    port = free_port()
    with running_smsc(tmp_path, port):
        async with running_api(tmp_path, extra_config=smpp_config(port)) as api:
            for _ in range(5):
                status, doc, _ = await start(api)
                assert status == 201
            status, limited, headers = await start(api)
            assert status == 429 and limited["type"].endswith("send-rate-limited")
            assert 500 < int(headers["Retry-After"]) <= 600
            r = await api.client.post(
                f"/v1/verifications/{doc['id']}", json={"status": "canceled"}, headers=api.auth(DEV)
            )
            assert (await r.json())["status"] == "canceled"
            status, refused, _ = await start(api, to="+33612345678")
            assert status == 422 and refused["field"] == "to" and "FR" in refused["detail"]
            status, refused, _ = await start(api, to="+3290312345", channel="voice")
            assert status == 422 and "premium" in refused["detail"]
            status, refused, _ = await start(api, code_length=3)
            assert status == 422 and refused["field"] == "code_length"
