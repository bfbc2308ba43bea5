"""Prices on calls and /v1/usage: metering's rating and statements through the REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from flexvoice.api.appkeys import API_DB, CALLS, TARIFFS
from flexvoice.metering.store import UsageStore
from tests.apikit import ACME_NUMBER, Api, running_api, wait_status


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
    store = UsageStore(api.app[API_DB], api.app[TARIFFS])
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
