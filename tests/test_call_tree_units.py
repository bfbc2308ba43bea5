"""The call tree without SIP: the leg state machine, the one outcome table, the registry's
legs, trace and prices (fast: no subprocess)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from flexvoice.calls import CallPrice, CallRegistry
from flexvoice.flows.simulate import dial_token
from flexvoice.legstate import (
    Answered,
    Disconnected,
    EndTree,
    HangupAsked,
    LegMachine,
    Lost,
    ReportEvent,
    Ringing,
    SendHangup,
)
from flexvoice.outcomes import outcome_for
from flexvoice.storage.engine import Connection

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ended(commands: list[Any]) -> dict[str, Any]:
    [report] = [c for c in commands if isinstance(c, ReportEvent) and c.kind == "ended"]
    return report.data


def test_an_answered_leg_ends_with_normal_clearing_whatever_status_the_bye_echoes() -> None:
    m = LegMachine("inbound", T0)
    assert m.handle(Answered(), at(1)) == [
        ReportEvent("answered", {"sip_status": 200, "at": at(1).isoformat(timespec="milliseconds")})
    ]
    assert m.handle(Answered(), at(2)) == []  # one answered per leg
    assert m.handle(HangupAsked("flow", 480, "flow_end"), at(10)) == [SendHangup(480, "flow_end")]
    assert m.handle(HangupAsked("api"), at(10)) == []  # asked once; the first asker ended it
    out = m.handle(Disconnected(480, "Temporarily Unavailable"), at(10.2))
    data = ended(out)
    assert (data["sip_status"], data["reason"], data["outcome"], data["ended_by"]) == (
        200,
        "Normal call clearing",
        "completed",
        "flow",
    )
    assert data["talk_seconds"] == 10 and out[-1] == EndTree("flow")
    assert m.handle(Disconnected(200), at(11)) == []  # one ended per leg


@pytest.mark.parametrize(("direction", "who"), [("inbound", "caller"), ("outbound", "callee")])
def test_the_far_end_hanging_up_is_the_caller_or_the_callee(direction: Any, who: str) -> None:
    m = LegMachine(direction, T0)
    m.handle(Answered(), at(1))
    assert ended(m.handle(Disconnected(200), at(5)))["ended_by"] == who


def test_unanswered_legs_take_their_outcome_from_the_one_table() -> None:
    busy = LegMachine("outbound", T0)
    busy.handle(Ringing(), at(0.5))
    data = ended(busy.handle(Disconnected(486, "Busy Here"), at(1)))
    assert (data["outcome"], data["reason"], data["ended_by"]) == ("busy", "Busy Here", "callee")
    timed_out = LegMachine("outbound", T0)
    timed_out.handle(HangupAsked("flow", 487, outcome="no-answer", cause="ring_timeout"), at(20))
    data = ended(timed_out.handle(Disconnected(487), at(20.1)))
    assert (data["outcome"], data["cause"], data["reason"]) == (
        "no-answer",
        "ring_timeout",
        "Request Terminated",
    )
    moved = LegMachine("inbound", T0)
    moved.expect("redirected")
    assert ended(moved.handle(Disconnected(302), at(0.1)))["outcome"] == "redirected"
    lost = LegMachine("inbound", T0)
    lost.handle(Answered(), at(1))
    data = ended(lost.handle(Lost(), at(3)))
    assert (data["ended_by"], data["cause"]) == ("worker_lost", "worker_lost")


def test_the_simulator_reads_the_same_outcome_table() -> None:
    for status in (486, 600, 603, 408, 480, 487, 500, 503, 404):
        assert dial_token(str(status))[0] == outcome_for(status)
    assert dial_token("declined") == ("busy", 603, "Decline")


class Hooks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def enqueue(self, account: str, url: str, event: str, payload: dict[str, Any]) -> None:
        self.sent.append((event, payload))


class FlatPricer:
    """0.37 per started minute: enough to see which event was priced."""

    def __init__(self) -> None:
        self.priced: list[dict[str, Any]] = []

    def price_usage(self, event: dict[str, Any]) -> CallPrice:
        self.priced.append(event)
        return CallPrice(60, Decimal("0.37"))


def test_children_are_calls_whose_parent_completes_last_with_the_whole_price(
    store_db: Connection,
) -> None:
    hooks, pricer = Hooks(), FlatPricer()
    reg = CallRegistry(store_db, webhooks=hooks, pricer=pricer)
    parent = reg.create(
        account="acme",
        direction="inbound",
        from_number="+32470000001",
        to_number="+3225551001",
        flow="connect",
        status_callback="https://crm.example/h",
        status_events=("answered", "completed"),
    )
    reg.call_event(parent.id, "answered", {"sip_status": 200, "at": at(1).isoformat()})
    reg.call_event(parent.id, "answered", {"sip_status": 200, "at": at(2).isoformat()})
    child = "CA" + "1" * 32
    reg.call_event(
        child, "leg", {"parent_call_id": parent.id, "to": "+32470555001", "from": "+3225551001"}
    )
    reg.call_event(child, "answered", {"sip_status": 200, "at": at(3).isoformat()})
    usage = {"id": f"{child}:leg", "kind": "call", "account": "acme"}
    reg.call_event(
        parent.id, "ended", {"sip_status": 200, "ended_by": "caller", "at": at(30).isoformat()}
    )
    # The parent ended first; its `completed` waits for its leg, so it carries both prices.
    assert [e for e, _ in hooks.sent] == ["answered", "answered"]
    reg.call_event(
        child,
        "ended",
        {"sip_status": 200, "ended_by": "caller", "usage": usage, "at": at(30.1).isoformat()},
    )
    assert pricer.priced[-1] is usage  # the leg's own usage event is what was priced
    [done] = [p for e, p in hooks.sent if e == "completed" and p["call"]["id"] == parent.id]
    call = done["call"]
    assert call["price_eur"] == "0.7400" and len(call["legs"]) == 1
    assert call["legs"][0]["ended_by"] == "caller" and call["ended_by"] == "caller"
    resource = reg.resource(reg.get(child))  # type: ignore[arg-type]
    assert resource["parent_call_id"] == parent.id and resource["account"] == "acme"
    kinds = [e["kind"] for e in reg.events(parent.id)]
    assert kinds.count("answered") == 1 and kinds.count("ended") == 1, kinds
    assert "dialled" in kinds and "leg_ended" in kinds
    [end] = [e["data"] for e in reg.events(parent.id) if e["kind"] == "ended"]
    assert end["billable_seconds"] == reg.get(parent.id).billable_seconds == 60  # type: ignore[union-attr]
    assert "usage" not in end
