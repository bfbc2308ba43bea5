"""/v1/messages over HTTP, through the SMPP gateway to a real SMSC process (tests/smsc.py on
PyPI smpp34's server): receipts, long messages by segments, restart safety, opt-out, inbound."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flexvoice.accounts import set_status
from flexvoice.appkeys import CONFIG, USAGE_SINK
from flexvoice.storage.open import open_shared
from flexvoice.system import free_port
from tests.apikit import ACME_NUMBER, OTHER_NUMBER, Api, running_api, wait_resource
from tests.metering_helpers import usage_events
from tests.smsctool import running_smsc, smpp_config

MOBILE = "+32475123456"
DEV = "acme:developer"

pytestmark = pytest.mark.process  # the SMSC (or the CLI) runs as its own process


async def send(api: Api, who: str = DEV, **fields: Any) -> Any:
    body = {"to": MOBILE, "from": ACME_NUMBER, "body": "Your parcel arrives today", **fields}
    r = await api.client.post("/v1/messages", json=body, headers=api.auth(who))
    return r.status, await r.json()


async def wait_message(api: Api, message_id: str, want: set[str], timeout: float = 10) -> Any:
    return await wait_resource(api, DEV, f"/v1/messages/{message_id}", want, timeout)


async def test_sms_through_smpp_with_delivery_receipt(tmp_path: Path) -> None:
    port = free_port()
    with running_smsc(tmp_path, port) as smsc:
        async with running_api(tmp_path, extra_config=smpp_config(port), usage=True) as api:
            status, doc = await send(api)
            assert status == 201, doc
            assert doc["status"] == "queued" and doc["segments"] == 1
            assert doc["encoding"] == "GSM-7" and doc["price_eur"] == "0.095"
            done = await wait_message(api, doc["id"], {"delivered"})
            assert done["sent_at"] is not None and done["error_code"] is None
            (got,) = smsc.received()
            assert got["text"] == "Your parcel arrives today"
            assert (got["from"], got["from_ton"], got["to"]) == ("3226001000", 1, "32475123456")
            assert got["registered_delivery"] == 1
            await api.app[USAGE_SINK].flush()
    (event,) = [e for e in usage_events(tmp_path) if e["kind"] == "sms"]
    assert event["segments"] == 1 and event["id"] == f"sms:{doc['id']}"


async def test_long_message_split_priced_by_segments_worst_part_wins(tmp_path: Path) -> None:
    port = free_port()
    text = "Dear customer, " + "your order of bread and pastries is ready. " * 9  # 402 chars
    with running_smsc(tmp_path, port, "--fail-part", "1") as smsc:
        async with running_api(tmp_path, extra_config=smpp_config(port), usage=True) as api:
            status, doc = await send(api, body=text)
            assert status == 201
            assert doc["segments"] == 3 and doc["price_eur"] == "0.285"
            done = await wait_message(api, doc["id"], {"undelivered"})
            # Part 1 failed while parts 2 and 3 were delivered after it: still undelivered.
            assert done["error_code"] == 30003
            got = smsc.received()
            assert len(got) == 3
            assert sorted(g["concat"][2] for g in got) == [1, 2, 3]
            assert len({g["concat"][0] for g in got}) == 1  # one reference ties them
            assert "".join(g["text"] for g in sorted(got, key=lambda g: g["concat"][2])) == text
            # Euro sign and emoji: UCS-2, 67 units per part.
            status, doc = await send(api, body="Prijs: 5 € 😀 " * 10)
            assert doc["encoding"] == "UCS-2" and doc["segments"] == 3
            await wait_message(api, doc["id"], {"undelivered"})
            await api.app[USAGE_SINK].flush()
    segments = sorted(e["segments"] for e in usage_events(tmp_path) if e["kind"] == "sms")
    assert segments == [3, 3]


@pytest.mark.usefixtures("node_engine")  # CI runs it on both engines
async def test_gateway_down_restart_then_up_delivers_each_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    config = smpp_config(port)
    ids: list[str] = []
    with running_smsc(tmp_path, port, start=False) as smsc:
        async with running_api(tmp_path, extra_config=config) as api:
            for i in range(20):
                status, doc = await send(api, body=f"message {i}", to=f"+324751234{i:02d}")
                assert status == 201
                ids.append(doc["id"])
            await asyncio.sleep(0.5)  # a few attempts against the closed port
            for message_id in ids:
                r = await api.client.get(f"/v1/messages/{message_id}", headers=api.auth(DEV))
                assert (await r.json())["status"] == "queued"
        # The engine is stopped; the SMSC comes up; a new engine on the same database.
        smsc.start()
        async with running_api(tmp_path, extra_config=config) as api:
            for message_id in ids:
                await wait_message(api, message_id, {"delivered"}, timeout=20)
            await asyncio.sleep(0.5)  # anything sent twice would show up now
        got = smsc.received()
    texts = sorted(g["text"] for g in got)
    assert texts == sorted(f"message {i}" for i in range(20)), texts


async def test_opt_out_and_inbound_webhook(tmp_path: Path, crm: Any) -> None:
    url, seen, _ = crm
    port = free_port()
    accounts = f"  accounts:\n    acme: {{sms_url: '{url}', senders: [ACME]}}\n"
    with running_smsc(tmp_path, port) as smsc:
        async with running_api(tmp_path, extra_config=smpp_config(port, accounts)) as api:
            status, first = await send(api)  # binds the ESME, so the SMSC can deliver to it
            await wait_message(api, first["id"], {"delivered"})
            smsc.mobile_originated(MOBILE, ACME_NUMBER, "STOP")
            for _ in range(200):
                if seen:
                    break
                await asyncio.sleep(0.05)
            (hook,) = seen
            assert hook["event"] == "received"
            assert hook["message"]["body"] == "STOP" and hook["message"]["from"] == MOBILE
            r = await api.client.get(f"/v1/messages/{hook['message']['id']}", headers=api.auth(DEV))
            assert (await r.json())["direction"] == "inbound"
            status, doc = await send(api)
            assert status == 422, doc
            assert doc["type"].endswith("recipient-opted-out") and doc["error_code"] == 21610
            assert doc["field"] == "to"
            # Another sender of the account is not the one they stopped.
            status, doc = await send(api, **{"from": "ACME"})
            assert status == 201, doc
            smsc.mobile_originated(MOBILE, ACME_NUMBER, "start")
            for _ in range(200):
                status, doc = await send(api)
                if status == 201:
                    break
                await asyncio.sleep(0.05)
            assert status == 201
            for _ in range(200):
                if len(seen) == 2:
                    break
                await asyncio.sleep(0.05)
            assert [h["message"]["body"] for h in seen] == ["STOP", "start"]


async def test_refusals_name_the_field(tmp_path: Path) -> None:
    async with running_api(tmp_path, extra_config=smpp_config(free_port())) as api:
        cases = [
            ({"body": ""}, "body"),
            ({"body": "x" * 1601}, "body"),
            ({"to": "+3225551234"}, "to"),  # a fixed line
            ({"to": "+3290312345"}, "to"),  # premium rate
            ({"from": OTHER_NUMBER}, "from"),  # another account's number
            ({"from": "NOTALLOWED"}, "from"),
            ({"from": "way too long sender"}, "from"),
            ({"to": "hello"}, "to"),
        ]
        for fields, field in cases:
            status, doc = await send(api, **fields)
            assert status == 422, (fields, doc)
            assert doc["field"] == field, (fields, doc)
        status, doc = await send(api, body="x" * 1600)
        assert status == 201 and doc["segments"] == 11


async def test_messages_are_per_account(tmp_path: Path) -> None:
    async with running_api(tmp_path, extra_config=smpp_config(free_port())) as api:
        status, doc = await send(api)
        assert status == 201
        r = await api.client.get(f"/v1/messages/{doc['id']}", headers=api.auth("other:developer"))
        assert r.status == 404
        r = await api.client.get("/v1/messages", headers=api.auth("other:developer"))
        assert (await r.json())["messages"] == []
        r = await api.client.get(
            "/v1/messages", params={"to": MOBILE}, headers=api.auth("acme:analyst")
        )
        assert [m["id"] for m in (await r.json())["messages"]] == [doc["id"]]
        status, _ = await send(api, who="acme:analyst")
        assert status == 403
        # What another connection changes (the CLI, another node) counts for the next
        # message at once, cached or not: a suspension, then a tariff without SMS prices.
        admin = open_shared(api.app[CONFIG])
        set_status(admin, "acme", "suspended")
        status, doc = await send(api)
        assert (status, doc["type"].rsplit(":", 1)[-1]) == (403, "account-suspended"), doc
        set_status(admin, "acme", "active")
        assert (await send(api))[0] == 201
        admin.execute("UPDATE accounts SET tariff = 'vms-smart-routing' WHERE name = 'acme'")
        status, doc = await send(api)
        assert (status, doc["field"]) == (422, "to"), doc
        assert "cannot be priced" in doc["detail"], doc


async def test_status_callbacks_are_signed(tmp_path: Path, crm: Any) -> None:
    url, seen, _ = crm
    port = free_port()
    with running_smsc(tmp_path, port):
        async with running_api(tmp_path, extra_config=smpp_config(port)) as api:
            status, doc = await send(api, status_callback=url)
            assert status == 201
            for _ in range(200):
                if any(s["event"] == "delivered" for s in seen):
                    break
                await asyncio.sleep(0.05)
            assert [s["event"] for s in seen] == ["sent", "delivered"]
            assert seen[-1]["message"]["id"] == doc["id"]
