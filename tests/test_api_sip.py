"""A call placed over REST on a running node (edge, workers, flows, metering) reaches a sipp
callee behind the trunk; its status, trace and price come back over HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import free_port_range
from tests.nodekit import StartTrunkNode
from tests.sipptool import Uas, counts, run_uac

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.xdist_group("sipnode")]


def test_rest_call_rings_sipp_runs_its_flow_and_is_priced(trunk_node: StartTrunkNode) -> None:
    callee = Uas("uas_answer.xml", free_port_range(1), calls=1)
    try:
        node = trunk_node(callee.port)
        status, call = node.call(
            {"to": "+32470123456", "from": "+3225551001", "flow": "notify", "ring_timeout": 10}
        )
        assert status == 201, call
        assert call["status"] == "queued"
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            status, call = node.api("GET", f"/v1/calls/{call['id']}")
            if call["status"] not in ("queued", "ringing", "in-progress"):
                break
            time.sleep(0.3)
        status, trace = node.api("GET", f"/v1/calls/{call['id']}/events")
        node.stop()  # (a failed test's node is stopped by the fixture)
    finally:
        callee_log = callee.stop()
    assert call["status"] == "completed", call
    assert call["sip_status"] == 200
    assert call["answered_at"] and call["ended_at"]
    # A mobile number, one started minute: 0.37.
    assert (call["billable_seconds"], call["price_eur"]) == (60, "0.3700")
    kinds = [e["kind"] for e in trace["events"]] if isinstance(trace, dict) else []
    assert kinds.index("ringing") < kinds.index("answered") < kinds.index("ended"), kinds
    assert any(e["kind"] == "step" and e["data"]["step"] == "tell" for e in trace["events"])
    assert counts(callee_log) == (1, 0)  # the callee answered, then got our BYE
    # The SIP layer billed the leg to the account: finance sees the same 0.37.
    month = call["started_at"][:7]
    [leg] = [row for row in node.export(month) if row["event_id"] == f"{call['id']}:leg"]
    assert (leg["account"], leg["service"], leg["amount_eur"]) == (
        "shop",
        "voice_out_mobile",
        "0.370000",
    )


def test_inbound_calls_are_call_resources_with_trace_and_price(
    trunk_node: StartTrunkNode,
) -> None:
    node = trunk_node(free_port_range(1))
    key = node.new_key("shop", "analyst")
    # The number's flow thanks the caller and hangs up.
    result = run_uac("uac_until_bye.xml", node.edge, "+3225551001")
    assert result.successful == 1, result.output
    deadline = time.monotonic() + 20
    calls: list[Any] = []
    while time.monotonic() < deadline:
        status, listing = node.api("GET", "/v1/calls", key=key)
        assert status == 200, listing
        calls = [c for c in listing["calls"] if c["status"] == "completed"]
        if calls:
            break
        time.sleep(0.3)
    [call] = calls
    status, trace = node.api("GET", f"/v1/calls/{call['id']}/events", key=key)
    node.stop()
    assert (call["direction"], call["from"], call["to"]) == (
        "inbound",
        "+3225550100",
        "+3225551001",
    )
    assert (call["sip_status"], call["billable_seconds"], call["price_eur"]) == (200, 60, "0.0045")
    steps = [e["data"]["step"] for e in trace["events"] if e["kind"] == "step"]
    assert steps[:2] == ["tell", "bye"]
