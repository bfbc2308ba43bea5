"""The REST API end to end over HTTP against the real node application."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flexvoice.api.models import CallCreate, CallResource
from flexvoice.appkeys import CALLS, CONFIG, KEY_CHECKS, LOCKOUT, RATE_LIMITER
from flexvoice.storage.open import open_shared
from tests.apikit import (
    ACME_NUMBER,
    OTHER_NUMBER,
    Api,
    add_recording,
    problem,
    running_api,
    wait_status,
)

CALL = {"to": "+32475123450", "from": ACME_NUMBER, "flow": "support"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(tmp_path) as a:
        yield a


@pytest.mark.usefixtures("node_engine")  # CI runs it on both engines
async def test_call_lifecycle_and_trace(api: Api) -> None:
    r = await api.client.post("/v1/calls", json=CALL, headers=api.auth("acme:developer"))
    assert r.status == 201, await r.text()
    call = await r.json()
    assert call["status"] == "queued" and call["from"] == ACME_NUMBER
    assert r.headers["Location"] == f"/v1/calls/{call['id']}"
    done = await wait_status(api, "acme:developer", call["id"], {"completed"})
    assert done["sip_status"] == 200 and done["answered_at"] and done["ended_at"]
    assert done["billable_seconds"] is not None
    r = await api.client.get(f"/v1/calls/{call['id']}/events", headers=api.auth("acme:analyst"))
    kinds = [e["kind"] for e in (await r.json())["events"]]
    assert kinds[:4] == ["queued", "initiated", "ringing", "answered"]
    assert kinds.count("step") == 2 and kinds[-1] == "ended"
    assert api.originator is not None and api.originator.calls[0]["ring_timeout"] == 60
    assert api.flows.started == [(call["id"], "support")]
    r = await api.client.get("/v1/calls?status=completed", headers=api.auth("acme:analyst"))
    assert [c["id"] for c in (await r.json())["calls"]] == [call["id"]]


@pytest.mark.parametrize(
    ("to", "status", "sip"), [("+32475123456", "busy", 486), ("+32475123458", "no-answer", 480)]
)
async def test_failed_outcomes(api: Api, to: str, status: str, sip: int) -> None:
    r = await api.client.post(
        "/v1/calls", json={**CALL, "to": to}, headers=api.auth("acme:developer")
    )
    call = await r.json()
    done = await wait_status(api, "acme:developer", call["id"], {status})
    assert done["sip_status"] == sip and done["answered_at"] is None
    assert done["billable_seconds"] == 0 and done["price_eur"] == "0.0000"


async def test_hang_up_a_ringing_call_cancels_it(api: Api) -> None:
    r = await api.client.post(
        "/v1/calls", json={**CALL, "to": "+32475123459"}, headers=api.auth("acme:developer")
    )
    call = await r.json()
    await wait_status(api, "acme:developer", call["id"], {"ringing"})
    r = await api.client.post(
        f"/v1/calls/{call['id']}", json={"status": "completed"}, headers=api.auth("acme:admin")
    )
    assert r.status == 200, await r.text()
    done = await wait_status(api, "acme:developer", call["id"], {"canceled"})
    assert done["sip_status"] == 487
    r = await api.client.post(
        f"/v1/calls/{call['id']}", json={"status": "completed"}, headers=api.auth("acme:admin")
    )
    await problem(r, 409, "conflict", "status")


async def test_no_originator_is_a_clear_503(tmp_path: Path) -> None:
    async with running_api(tmp_path, originator=False) as api:
        r = await api.client.post("/v1/calls", json=CALL, headers=api.auth("acme:developer"))
        doc = await problem(r, 503, "originator-unavailable")
        assert "outbound calling" in doc["detail"]
        assert api.app[CALLS].list("acme") == []


# ---- roles and accounts -------------------------------------------------------------------

# (method, path, body) -> roles allowed (admin may do everything in its account)
MATRIX: list[tuple[str, str, Any, set[str]]] = [
    ("POST", "/v1/calls", CALL, {"admin", "developer"}),
    ("GET", "/v1/calls", None, {"admin", "developer", "analyst"}),
    ("GET", "/v1/numbers", None, {"admin", "developer"}),
    ("GET", f"/v1/numbers/{ACME_NUMBER}", None, {"admin", "developer"}),
    ("PUT", "/v1/numbers/+3226001001", {"flow": "support"}, {"admin"}),
    ("PUT", f"/v1/numbers/{ACME_NUMBER}/continuity", {"active": False}, {"admin"}),
    ("DELETE", "/v1/numbers/+3226001002", None, {"admin"}),
    ("GET", "/v1/recordings", None, {"admin", "developer"}),
]


@pytest.mark.parametrize("role", ["admin", "developer", "finance", "analyst"])
async def test_each_role_is_denied_what_it_may_not_do(api: Api, role: str) -> None:
    # A number for the DELETE to remove, added by the admin.
    await api.client.put(
        "/v1/numbers/+3226001002", json={"flow": "support"}, headers=api.auth("acme:admin")
    )
    for method, path, body, allowed in MATRIX:
        r = await api.client.request(method, path, json=body, headers=api.auth(f"acme:{role}"))
        if role in allowed:
            assert r.status < 300, (method, path, role, await r.text())
        else:
            doc = await problem(r, 403, "forbidden")
            assert f"role '{role}'" in doc["detail"], doc


@pytest.mark.usefixtures("node_engine")  # CI runs it on both engines
async def test_an_account_never_sees_another_accounts_data(api: Api, tmp_path: Path) -> None:
    r = await api.client.post("/v1/calls", json=CALL, headers=api.auth("acme:developer"))
    call = await r.json()
    await wait_status(api, "acme:developer", call["id"], {"completed"})
    rec_id = add_recording(api, "acme", call["id"])
    r = await api.client.get("/v1/recordings", headers=api.auth("acme:developer"))
    assert (await r.json())["recordings"][0]["id"] == rec_id
    r = await api.client.get(f"/v1/recordings/{rec_id}.wav", headers=api.auth("acme:developer"))
    assert r.status == 200 and (await r.read()).startswith(b"RIFF")

    other = api.auth("other:admin")
    for method, path, body in [
        ("GET", f"/v1/calls/{call['id']}", None),
        ("GET", f"/v1/calls/{call['id']}/events", None),
        ("POST", f"/v1/calls/{call['id']}", {"status": "completed"}),
        ("GET", f"/v1/numbers/{ACME_NUMBER}", None),
        ("PUT", f"/v1/numbers/{ACME_NUMBER}/continuity", {"active": False}),
        ("DELETE", f"/v1/numbers/{ACME_NUMBER}", None),
        ("GET", f"/v1/recordings/{rec_id}", None),
        ("GET", f"/v1/recordings/{rec_id}.wav", None),
        ("DELETE", f"/v1/recordings/{rec_id}", None),
    ]:
        r = await api.client.request(method, path, json=body, headers=other)
        await problem(r, 404, "not-found")
    # Taking over another account's number is refused without changing it.
    # Said as for a number that is not available: the answer does not tell whose it is.
    r = await api.client.put(f"/v1/numbers/{ACME_NUMBER}", json={"flow": "x"}, headers=other)
    doc = await problem(r, 409, "number-not-available")
    assert "account" not in doc["detail"], doc
    # Placing a call from another account's number is refused.
    r = await api.client.post("/v1/calls", json={**CALL, "from": ACME_NUMBER}, headers=other)
    await problem(r, 422, "invalid-field", "from")
    # Lists show only the account's own data.
    for path, key in [("/v1/calls", "calls"), ("/v1/recordings", "recordings")]:
        r = await api.client.get(path, headers=other)
        assert (await r.json())[key] == []
    r = await api.client.get("/v1/numbers", headers=other)
    assert [n["number"] for n in (await r.json())["numbers"]] == [OTHER_NUMBER]
    # And acme's data is untouched.
    r = await api.client.get(f"/v1/recordings/{rec_id}", headers=api.auth("acme:developer"))
    assert r.status == 200


async def test_recording_audio_supports_range_and_delete(api: Api, tmp_path: Path) -> None:
    r = await api.client.post("/v1/calls", json=CALL, headers=api.auth("acme:developer"))
    call = await r.json()
    rec_id = add_recording(api, "acme", call["id"], seconds=2)
    dev = api.auth("acme:developer")
    r = await api.client.get(f"/v1/recordings?call_id={call['id']}", headers=dev)
    [listed] = (await r.json())["recordings"]
    assert listed["id"] == rec_id and listed["status"] == "completed"
    assert listed["duration_seconds"] == 2.0 and listed["price_eur"] == "0.0025"  # a minute
    r = await api.client.get(f"/v1/calls/{call['id']}", headers=dev)
    assert [x["id"] for x in (await r.json())["recordings"]] == [rec_id]
    path = tmp_path / "recordings" / "acme" / f"{rec_id}.wav"
    whole = path.read_bytes()
    assert listed["size_bytes"] == len(whole) == 44 + 2 * 8000 * 2
    assert listed["sha256"] == hashlib.sha256(whole).hexdigest()
    r = await api.client.get(
        f"/v1/recordings/{rec_id}.wav", headers={**dev, "Range": "bytes=10-19"}
    )
    assert r.status == 206 and await r.read() == whole[10:20]
    r = await api.client.delete(f"/v1/recordings/{rec_id}", headers=dev)
    assert r.status == 204 and not path.exists()
    # The row stays, marked deleted (its usage was billed); the audio is gone.
    r = await api.client.get(f"/v1/recordings/{rec_id}", headers=dev)
    doc = await r.json()
    assert doc["status"] == "deleted" and doc["deleted_at"], doc
    r = await api.client.get(f"/v1/recordings/{rec_id}.wav", headers=dev)
    await problem(r, 404, "not-found", "recording_id")


# ---- request problems ---------------------------------------------------------------------


async def test_malformed_requests_get_precise_problems(api: Api) -> None:
    dev = {**api.auth("acme:developer"), "Content-Type": "application/json"}
    r = await api.client.post("/v1/calls", data=b'{"to": "+32475123450",', headers=dev)
    doc = await problem(r, 400, "malformed-json")
    assert doc["line"] == 1 and "column" in doc
    r = await api.client.post("/v1/calls", data=b"[1, 2]", headers=dev)
    await problem(r, 400, "invalid-body")
    r = await api.client.post("/v1/calls", data=b'{"x": NaN}', headers=dev)
    await problem(r, 400, "malformed-json")
    r = await api.client.post("/v1/calls", json={**CALL, "colour": "red"}, headers=dev)
    doc = await problem(r, 422, "unknown-field", "colour")
    assert "remove it" in doc["detail"]
    r = await api.client.post("/v1/calls", json={**CALL, "to": "+3212"}, headers=dev)
    await problem(r, 422, "invalid-number", "to")
    r = await api.client.post("/v1/calls", json={**CALL, "to": "hello"}, headers=dev)
    await problem(r, 422, "invalid-number", "to")
    r = await api.client.post("/v1/calls", json={"to": "+32475123450", "flow": "x"}, headers=dev)
    await problem(r, 422, "missing-field", "from")
    r = await api.client.post("/v1/calls", json={**CALL, "ring_timeout": 0}, headers=dev)
    await problem(r, 422, "invalid-field", "ring_timeout")
    r = await api.client.post(
        "/v1/calls", json={**CALL, "flow_url": "https://example.test/f.yaml"}, headers=dev
    )
    doc = await problem(r, 422, "invalid-field")
    assert "exactly one of flow" in doc["detail"]
    r = await api.client.post("/v1/calls", data=b"x" * (1024 * 1024 + 1), headers=dev)
    await problem(r, 413, "body-too-large")
    r = await api.client.get("/v1/calls?colour=red", headers=dev)
    await problem(r, 400, "unknown-query-parameter", "colour")
    r = await api.client.get("/v1/calls?status=nonsense", headers=dev)
    await problem(r, 400, "invalid-query-parameter", "status")
    r = await api.client.get("/v1/numbers/12", headers=dev)
    await problem(r, 422, "invalid-number", "e164")
    r = await api.client.get("/v1/calls/CAnope", headers=dev)
    await problem(r, 404, "not-found", "call_id")
    r = await api.client.get("/v1/nothing-here", headers=dev)
    await problem(r, 404, "not-found")


@pytest.mark.usefixtures("node_engine")  # CI runs it on both engines
async def test_authentication_problems_and_lockout(api: Api) -> None:
    r = await api.client.get("/v1/calls")
    await problem(r, 401, "unauthenticated", "Authorization")
    lockout = api.app[LOCKOUT]
    now = [1_000_000.0]
    lockout.clock = lambda: now[0]  # type: ignore[attr-defined]
    bad = {"Authorization": "Bearer fvk_000000000000_wrong"}
    for _ in range(5):
        await problem(await api.client.get("/v1/calls", headers=bad), 401, "invalid-key")
    # After the fifth failure (itself answered 401) the address is locked out: then even a
    # good key gets 429.
    r = await api.client.get("/v1/calls", headers=bad)
    doc = await problem(r, 429, "too-many-failed-authentications")
    assert r.headers["Retry-After"] == "900", doc
    r = await api.client.get("/v1/calls", headers=api.auth("acme:developer"))
    await problem(r, 429, "too-many-failed-authentications")
    now[0] += 15 * 60 + 1
    r = await api.client.get("/v1/calls", headers=api.auth("acme:developer"))
    assert r.status == 200
    # A revoked or suspended key is refused.
    from flexvoice.accounts import set_status
    from flexvoice.appkeys import SHARED_DB

    set_status(api.app[SHARED_DB], "acme", "suspended")
    r = await api.client.get("/v1/calls", headers=api.auth("acme:developer"))
    await problem(r, 403, "account-suspended")
    set_status(api.app[SHARED_DB], "acme", "active")
    r = await api.client.get("/v1/calls", headers=api.auth("acme:developer"))
    assert r.status == 200  # the key is kept as checked now
    # Revoked by another process, which cannot tell this one: refused within 50 ms (SQLite's
    # data_version), or a second (PostgreSQL, shared by nodes that cannot tell each other).
    key_id = api.keys["acme:developer"].removeprefix("fvk_").partition("_")[0]
    other = open_shared(api.app[CONFIG])
    other.execute("UPDATE api_keys SET revoked_at = 'now' WHERE id = ?", (key_id,))
    other.close()
    await asyncio.sleep(2 * api.app[KEY_CHECKS].unseen_for())
    r = await api.client.get("/v1/calls", headers=api.auth("acme:developer"))
    await problem(r, 401, "invalid-key")


async def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    async with running_api(tmp_path, extra_config="api: {rate_limit_cps: 2}\n") as api:
        api.app[RATE_LIMITER].clock = lambda: 5000.25  # type: ignore[attr-defined]
        dev = api.auth("acme:developer")
        for _ in range(2):
            r = await api.client.post("/v1/calls", json=CALL, headers=dev)
            assert r.status == 201
        r = await api.client.post("/v1/calls", json=CALL, headers=dev)
        doc = await problem(r, 429, "rate-limited")
        assert r.headers["Retry-After"] == "1" and "2 calls per second" in doc["detail"]
        # Another account has its own budget.
        r = await api.client.post(
            "/v1/calls", json={**CALL, "from": OTHER_NUMBER}, headers=api.auth("other:developer")
        )
        assert r.status == 201
        api.app[RATE_LIMITER].clock = lambda: 5001.0  # type: ignore[attr-defined]
        r = await api.client.post("/v1/calls", json=CALL, headers=dev)
        assert r.status == 201
        assert api.originator is not None and len(api.originator.calls) == 4


@pytest.mark.usefixtures("node_engine")  # CI runs it on both engines
async def test_idempotent_retry_places_one_call(api: Api) -> None:
    dev = {**api.auth("acme:developer"), "Idempotency-Key": "order-42"}
    r1 = await api.client.post("/v1/calls", json=CALL, headers=dev)
    r2 = await api.client.post("/v1/calls", json=CALL, headers=dev)
    assert r1.status == r2.status == 201
    assert await r1.json() == await r2.json()
    assert r2.headers["Idempotent-Replayed"] == "true"
    assert api.originator is not None and len(api.originator.calls) == 1
    r3 = await api.client.post("/v1/calls", json={**CALL, "ring_timeout": 30}, headers=dev)
    await problem(r3, 409, "idempotency-key-reused", "Idempotency-Key")
    # The same key in another account is another key.
    r4 = await api.client.post(
        "/v1/calls",
        json={**CALL, "from": OTHER_NUMBER},
        headers={**api.auth("other:developer"), "Idempotency-Key": "order-42"},
    )
    assert r4.status == 201 and (await r4.json())["id"] != (await r1.json())["id"]
    # A problem answer is replayed too, and without a key every POST is new.
    bad = {**CALL, "to": "+3212"}
    r5 = await api.client.post("/v1/calls", json=bad, headers={**dev, "Idempotency-Key": "k2"})
    r6 = await api.client.post("/v1/calls", json=bad, headers={**dev, "Idempotency-Key": "k2"})
    assert r5.status == r6.status == 422
    await api.client.post("/v1/calls", json=CALL, headers=api.auth("acme:developer"))
    assert len(api.originator.calls) == 3


# ---- numbers ------------------------------------------------------------------------------


@pytest.mark.usefixtures("node_engine")  # CI runs it on both engines
async def test_numbers_resource(api: Api) -> None:
    admin = api.auth("acme:admin")
    r = await api.client.put("/v1/numbers/+3226001234", json={"flow": "support"}, headers=admin)
    assert r.status == 201, await r.text()
    doc = await r.json()
    assert doc["number"] == "+3226001234" and doc["managed_by"] == "api"
    r = await api.client.put("/v1/numbers/%2B3226001234", json={"prompt": "closed"}, headers=admin)
    assert r.status == 200 and (await r.json())["prompt"] == "closed"
    r = await api.client.put(
        "/v1/numbers/+3226001234/continuity",
        json={"forward_to": "+32475123456", "active": True},
        headers=admin,
    )
    assert (await r.json())["continuity"] == {"forward_to": "+32475123456", "active": True}
    assert api.app[CALLS] is not None
    r = await api.client.put(
        "/v1/numbers/+3226001234/continuity",
        json={"active": True, "forward_to": "0"},
        headers=admin,
    )
    await problem(r, 422, "invalid-number", "forward_to")
    r = await api.client.put("/v1/numbers/+32475000000", json={"flow": "x"}, headers=admin)
    await problem(r, 422, "invalid-number", "e164")
    r = await api.client.put("/v1/numbers/+3226001234", json={}, headers=admin)
    await problem(r, 422, "invalid-field")
    r = await api.client.delete("/v1/numbers/+3226001234", headers=admin)
    assert r.status == 204
    r = await api.client.get("/v1/numbers/+3226001234", headers=admin)
    await problem(r, 404, "not-found", "e164")


async def test_numbers_from_the_file_are_managed_by_it(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        from flexvoice.api.keys import create_key
        from flexvoice.appkeys import SHARED_DB

        key = create_key(api.app[SHARED_DB], "demo", "admin")[1]
        h = {"Authorization": f"Bearer {key}"}
        r = await api.client.get("/v1/numbers", headers=h)
        assert len((await r.json())["numbers"]) == 3
        r = await api.client.delete("/v1/numbers/+3225551001", headers=h)
        await problem(r, 409, "managed-by-file", "e164")
        r = await api.client.put(
            "/v1/numbers/+3225551001/continuity",
            json={"forward_to": "+32475123456", "active": True},
            headers=h,
        )
        assert r.status == 200


async def test_openapi_and_docs(api: Api) -> None:
    r = await api.client.get("/openapi.json")
    spec = await r.json()
    assert spec["openapi"] == "3.1.0"
    post = spec["paths"]["/v1/calls"]["post"]
    schema = spec["components"]["schemas"]["CallCreate"]
    assert schema["additionalProperties"] is False and "from" in schema["properties"]
    assert post["x-roles"] == ["admin", "developer"]
    assert "Idempotency-Key" in [p["name"] for p in post["parameters"]]
    # The problem types are in the document itself, as a table Swagger UI renders.
    assert "urn:flexvoice:problem:unknown-flow" in spec["info"]["description"]
    # An example per call operation, each valid under the operation's own model: a parent
    # call with two legs among them.
    got = post["responses"]["201"]["content"]["application/json"]["example"]
    CallResource.model_validate(got)
    CallCreate.model_validate(post["requestBody"]["content"]["application/json"]["example"])
    read = spec["paths"]["/v1/calls/{call_id}"]["get"]["responses"]["200"]["content"]
    parent = CallResource.model_validate(read["application/json"]["example"])
    assert len(parent.legs) == 2 and parent.price_eur == "0.7400"
    assert sum(Decimal(p.price_eur or 0) for p in parent.price_breakdown) == Decimal("0.74")
    r = await api.client.get("/docs")
    text = await r.text()
    assert r.status == 200 and "/openapi.json" in text
    assert "urn:flexvoice:problem:rate-limited" in text  # without JavaScript too
    # Swagger UI comes from the node itself: no CDN, every file the page loads is served.
    assert "https://" not in text and "http://" not in text
    for asset in re.findall(r'(?:src|href)="(/docs/static/[^"]+)"', text):
        r = await api.client.get(asset)
        assert r.status == 200 and len(await r.read()) > 1000, asset
