"""Prices on calls and /v1/usage: metering's rating and statements through the REST API."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from flexvoice.appkeys import CALLS, SHARED_DB, TARIFFS
from flexvoice.metering.store import UsageStore
from tests.apikit import ACME_NUMBER, Api, problem, running_api, wait_status


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(tmp_path) as a:
        yield a


def call_event(call: dict[str, str], event_id: str) -> dict[str, object]:
    """The `call` usage event the SIP layer writes for this leg (flexvoice.sip.usage)."""
    return {
        "id": event_id,
        "account": "acme",
        "kind": "call",
        "direction": "outbound",
        "from": call["from"],
        "to": call["to"],
        "started_at": call["started_at"],
        "answered_at": call["answered_at"],
        "ended_at": call["ended_at"],
    }


async def place(api: Api, to: str) -> dict[str, str]:
    body = {"to": to, "from": ACME_NUMBER, "flow": "support"}
    r = await api.client.post("/v1/calls", json=body, headers=api.auth("acme:developer"))
    assert r.status == 201, await r.text()
    done: dict[str, str] = await wait_status(
        api, "acme:developer", (await r.json())["id"], {"completed"}
    )
    return done


async def test_a_call_is_priced_as_metering_bills_it(api: Api) -> None:
    mobile = await place(api, "+32475123450")  # BE mobile, 0.37 per started minute
    assert mobile["billable_seconds"] == 60 and mobile["price_eur"] == "0.3700", mobile
    assert mobile["price_note"] is None
    fixed = await place(api, "+3225551230")  # BE fixed, 0.095
    assert fixed["billable_seconds"] == 60 and fixed["price_eur"] == "0.0950", fixed
    # The same legs through metering's import give the same amounts.
    store = UsageStore(api.app[SHARED_DB], api.app[TARIFFS])
    report = store.ingest([call_event(mobile, "m:leg"), call_event(fixed, "f:leg")])
    assert report.imported == 2 and not report.unrated
    month = mobile["started_at"][:7]
    lines = {s.service: s.amount for s in store.statement(month, "acme")}
    assert lines["voice_out_mobile"] == Decimal(mobile["price_eur"])
    assert lines["voice_out_fixed"] == Decimal("0.10")  # 0.095 rounded to cents on the bill


async def test_an_unpriced_destination_has_no_price_and_says_why(api: Api) -> None:
    call = await place(api, "+33612345670")  # FR mobile: flexio-payu does not price it
    assert call["price_eur"] is None and call["billable_seconds"] == 1
    assert (
        call["price_note"] == "outbound call to FR mobile is not priced by flexio-payu@2024-01-01"
    )


async def test_a_long_call_counts_every_started_minute(api: Api) -> None:
    registry = api.app[CALLS]
    call = registry.create(
        account="acme",
        direction="outbound",
        from_number=ACME_NUMBER,
        to_number="+32475123450",
        flow="support",
    )
    registry.call_event(call.id, "answered", {"at": "2024-03-10T10:00:00.000+00:00"})
    registry.call_event(call.id, "ended", {"at": "2024-03-10T10:02:00.001+00:00"})
    ended = registry.get(call.id)
    assert ended is not None
    assert ended.billable_seconds == 180 and ended.price_eur == "1.1100"


# ---- /v1/usage ----------------------------------------------------------------------------


def seed_usage(api: Api) -> UsageStore:
    """March 2024: two calls and an SMS for acme, one call for other, one unpriced call."""
    store = UsageStore(api.app[SHARED_DB], api.app[TARIFFS])

    answered = datetime.fromisoformat("2024-03-05T10:00:05+01:00")

    def call(event_id: str, account: str, to: str, seconds: int) -> dict[str, object]:
        return {
            "id": event_id,
            "account": account,
            "kind": "call",
            "direction": "outbound",
            "from": ACME_NUMBER,
            "to": to,
            "started_at": "2024-03-05T10:00:00+01:00",
            "answered_at": answered.isoformat(),
            "ended_at": (answered + timedelta(seconds=seconds)).isoformat(),
        }

    sms = {
        "id": "s1",
        "account": "acme",
        "kind": "sms",
        "from": "FlexVoice",
        "to": "+32475123450",
        "sent_at": "2024-03-06T09:00:00+01:00",
        "body": "Your code is 1234",
    }
    report = store.ingest(
        [
            call("a1", "acme", "+32475123450", 61),  # 2 minutes to BE mobile
            call("a2", "acme", "+3225551230", 30),  # 1 minute to BE fixed
            call("a3", "acme", "+33612345670", 10),  # FR mobile: not priced
            sms,
            call("o1", "other", "+32475123450", 3000),  # 50 minutes: never shown to acme
        ]
    )
    assert report.imported == 5, report
    return store


@pytest.mark.usefixtures("node_engine")  # CI runs it on both engines
async def test_usage_statement_is_the_accounts_own_in_decimal_strings(api: Api) -> None:
    store = seed_usage(api)
    r = await api.client.get("/v1/usage?month=2024-03", headers=api.auth("acme:finance"))
    assert r.status == 200, await r.text()
    doc = await r.json()
    assert doc["account"] == "acme" and doc["month"] == "2024-03" and doc["currency"] == "EUR"
    lines = {line["service"]: line for line in doc["lines"]}
    assert lines["voice_out_mobile"] == {
        "service": "voice_out_mobile",
        "row": "service",
        "quantity": "2",
        "unit": "minute",
        "unit_price_eur": "0.37",
        "amount_eur": "0.74",
    }
    assert lines["voice_out_fixed"]["amount_eur"] == "0.10"
    assert lines["sms"]["amount_eur"] == "0.10"  # 0.095 rounded to cents on its line
    assert lines["subtotal"]["amount_eur"] == "0.94"
    assert lines["vat"]["amount_eur"] == "0.20" and lines["vat"]["unit_price_eur"] == "0.21"
    assert lines["total"]["amount_eur"] == "1.14"
    unrated = [line for line in doc["lines"] if line["row"] == "unrated"]
    assert len(unrated) == 1 and "FR mobile" in unrated[0]["service"]
    assert unrated[0]["amount_eur"] is None and unrated[0]["quantity"] == "1"
    # The same figures as metering's statement for acme alone.
    total = next(s for s in store.statement("2024-03", "acme") if s.row == "total")
    assert total.amount is not None and str(total.amount) == lines["total"]["amount_eur"]
    r = await api.client.get(
        "/v1/usage?month=2024-03&service=sms", headers=api.auth("acme:analyst")
    )
    assert [line["service"] for line in (await r.json())["lines"]] == ["sms"]
    # other sees only its own 50 minutes.
    r = await api.client.get("/v1/usage?month=2024-03", headers=api.auth("other:finance"))
    other = {line["service"]: line for line in (await r.json())["lines"]}
    assert other["voice_out_mobile"]["quantity"] == "50" and "sms" not in other
    # An empty month is a statement of zeros, not an error.
    r = await api.client.get("/v1/usage?month=2023-01", headers=api.auth("acme:finance"))
    assert r.status == 200 and (await r.json())["lines"] == []


@pytest.mark.usefixtures("node_engine")  # CI runs it on both engines
async def test_usage_export_is_the_metering_export_of_the_account(api: Api) -> None:
    store = seed_usage(api)
    r = await api.client.get("/v1/usage/export?month=2024-03", headers=api.auth("acme:finance"))
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "usage-acme-2024-03-summary.csv" in r.headers["Content-Disposition"]
    body = await r.read()
    assert body == store.export("2024-03", "acme", "csv", False)
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert {row["account"] for row in rows} == {"acme"}
    r = await api.client.get(
        "/v1/usage/export?month=2024-03&format=json&detail=1", headers=api.auth("acme:admin")
    )
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    body = await r.read()
    assert body == store.export("2024-03", "acme", "json", True)
    text = json.dumps(json.loads(body))
    assert "a1" in text and "o1" not in text and "not priced" in text


async def test_usage_is_not_for_developers(api: Api) -> None:
    for path in ("/v1/usage?month=2024-03", "/v1/usage/export?month=2024-03"):
        r = await api.client.get(path, headers=api.auth("acme:developer"))
        await problem(r, 403, "forbidden")


async def test_usage_queries_are_checked(api: Api) -> None:
    who = api.auth("acme:finance")
    for query, field in [
        ("", "month"),
        ("?month=2024-13", "month"),
        ("?month=2024-03&format=xml", "format"),
        ("?month=2024-03&account=other", "account"),
    ]:
        r = await api.client.get(f"/v1/usage/export{query}", headers=who)
        slug = "unknown-query-parameter" if field == "account" else "invalid-query-parameter"
        await problem(r, 400, slug, field)
