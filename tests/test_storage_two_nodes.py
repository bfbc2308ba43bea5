"""Two nodes on one PostgreSQL: a key made once works on both, a number added through one is
the other's too, a call placed through one is listed and traced through the other, a designer
user made on one logs in through the other, a suspension applies to both at once, and both
nodes' usage feeds land in one store, each event once, so either node's /v1/usage gives the
same statement."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flexvoice import accounts, users
from flexvoice.appkeys import SHARED_DB, USAGE_SINK
from tests.apikit import ACME_NUMBER, running_api

pytestmark = pytest.mark.process  # a real PostgreSQL server

NEW_NUMBER = "+3225550199"
PASSWORD = "a long passphrase"


def _call(event_id: str, seconds: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "account": "acme",
        "kind": "call",
        "direction": "outbound",
        "from": ACME_NUMBER,
        "to": "+32475123450",
        "started_at": "2024-03-05T10:00:00+01:00",
        "answered_at": "2024-03-05T10:00:05+01:00",
        "ended_at": f"2024-03-05T10:{(5 + seconds) // 60:02d}:{(5 + seconds) % 60:02d}+01:00",
    }


async def test_two_nodes_share_accounts_keys_numbers_and_usage(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_api(tmp_path / "a", database=pg_url, usage=True) as a,
        running_api(tmp_path / "b", database=pg_url, usage=True) as b,
    ):
        health = await (await b.client.get("/healthz")).json()
        assert health["storage"] == {"shared": "postgresql", "reachable": True}
        # A key made when node A started answers on node B (and B's on A).
        r = await b.client.get("/v1/numbers", headers=a.auth("acme:developer"))
        assert r.status == 200, await r.text()
        r = await a.client.get("/v1/numbers", headers=b.auth("acme:developer"))
        assert r.status == 200, await r.text()

        put = await a.client.put(
            f"/v1/numbers/{NEW_NUMBER}", json={"flow": "support"}, headers=a.auth("acme:admin")
        )
        assert put.status == 201, await put.text()
        seen = await b.client.get(f"/v1/numbers/{NEW_NUMBER}", headers=b.auth("acme:developer"))
        assert seen.status == 200 and (await seen.json())["flow"] == "support"

        # Each node records its own calls; one event reaches both spools (a retried feed).
        a.app[USAGE_SINK].record(_call("call-a", 61))
        b.app[USAGE_SINK].record(_call("call-b", 30))
        for node in (a, b):
            node.app[USAGE_SINK].record(_call("call-both", 10))
        for node in (a, b):
            await node.app[USAGE_SINK].flush()  # (the sinks' own timers may have run first)
        stored = a.app[SHARED_DB].execute("SELECT id, payload FROM usage_events ORDER BY id")
        rows = stored.fetchall()
        assert [r[0] for r in rows if r[0].startswith("call")] == ["call-a", "call-b", "call-both"]
        # The number added through A opened its monthly period in the same store.
        assert sum(NEW_NUMBER in r[1] for r in rows) == 1

        docs = []
        for node in (a, b):
            r = await node.client.get("/v1/usage?month=2024-03", headers=node.auth("acme:finance"))
            assert r.status == 200, await r.text()
            docs.append(await r.json())
        assert docs[0] == docs[1]
        mobile = next(line for line in docs[0]["lines"] if line["service"] == "voice_out_mobile")
        assert mobile["quantity"] == "4"  # 2 + 1 + 1 started minutes, each call once

        # A call placed through A (its fake carrier answers) is listed, shown and traced
        # through B, with its price; a designer user made on B logs in through A.
        call = {"to": "+32475123450", "from": ACME_NUMBER, "flow": "support"}
        r = await a.client.post("/v1/calls", json=call, headers=a.auth("acme:developer"))
        assert r.status == 201, await r.text()
        call_id = (await r.json())["id"]
        for _ in range(100):
            r = await b.client.get(f"/v1/calls/{call_id}", headers=b.auth("acme:analyst"))
            if (await r.json()).get("status") == "completed":
                break
            await asyncio.sleep(0.05)
        shown = await r.json()
        assert shown["status"] == "completed" and shown["price_eur"], shown
        listed = await b.client.get("/v1/calls", headers=b.auth("acme:analyst"))
        assert [c["id"] for c in (await listed.json())["calls"]] == [call_id]
        trace = await b.client.get(f"/v1/calls/{call_id}/events", headers=b.auth("acme:analyst"))
        assert [e["kind"] for e in (await trace.json())["events"]][-1] == "ended"
        users.create_user(b.app[SHARED_DB], "anna@acme.be", "acme", "manager", PASSWORD)
        login = await a.client.post(
            "/designer/login",
            data={"email": "anna@acme.be", "password": PASSWORD},
            headers={"Origin": str(a.client.make_url("")).rstrip("/")},
            allow_redirects=False,
        )
        assert login.status == 303, await login.text()

        # A suspension made through one node's store holds on every node at once.
        accounts.set_status(a.app[SHARED_DB], "acme", "suspended")
        for node in (a, b):
            r = await node.client.get("/v1/numbers", headers=node.auth("acme:developer"))
            assert r.status == 403 and (await r.json())["type"].endswith("account-suspended")
