"""Examples the API documentation shows (GET /openapi.json, /docs), per operation: what a
developer sends and what comes back. They are checked against the operations' own models by
the tests, so an example cannot drift from what the API accepts and answers."""

from __future__ import annotations

from typing import Any

PARENT = "CA5f0c2a9e3b7d4c1f8e6a2b9d0c4e7f13"
LEG_BUSY = "CA1b9e4d7c2a6f4e0b8d3c5a7e9f1b2d46"
LEG_ANSWERED = "CA7d3f1e9b5c2a4d8e6f0b1c3a5e7d9f28"


def _leg(
    call_id: str, to: str, status: str, sip: int, reason: str, answered: str | None, ended: str
) -> dict[str, Any]:
    talked = answered is not None
    return {
        "id": call_id,
        "from": "+3225551001",
        "to": to,
        "status": status,
        "sip_status": sip,
        "reason": reason,
        "cause": "normal" if talked else "busy",
        "ended_by": "api" if talked else "callee",
        "answered_at": answered,
        "ended_at": ended,
        "duration_seconds": 42 if talked else None,
        "billable_seconds": 60 if talked else 0,
        "price_eur": "0.3700" if talked else "0.0000",
    }


# A call placed over REST whose flow dialled two phones in turn: busy, then answered; then
# hung up over the API, which ended both legs.
CALL_WITH_TWO_LEGS: dict[str, Any] = {
    "id": PARENT,
    "parent_call_id": None,
    "account": "acme",
    "direction": "outbound",
    "from": "+3225551001",
    "to": "+32470123456",
    "status": "completed",
    "sip_status": 200,
    "reason": "Normal call clearing",
    "cause": "normal",
    "ended_by": "api",
    "flow": "connect",
    "created_at": "2026-03-02T10:00:00.000+00:00",
    "started_at": "2026-03-02T10:00:00.120+00:00",
    "answered_at": "2026-03-02T10:00:03.410+00:00",
    "ended_at": "2026-03-02T10:00:52.030+00:00",
    "billable_seconds": 60,
    "price_eur": "0.7400",
    "price_breakdown": [
        {"call_id": PARENT, "part": "own", "price_eur": "0.3700"},
        {"call_id": LEG_BUSY, "part": "leg", "price_eur": "0.0000"},
        {"call_id": LEG_ANSWERED, "part": "leg", "price_eur": "0.3700"},
    ],
    "price_note": None,
    "legs": [
        _leg(
            LEG_BUSY,
            "+32470555001",
            "busy",
            486,
            "Busy Here",
            None,
            "2026-03-02T10:00:04.200+00:00",
        ),
        _leg(
            LEG_ANSWERED,
            "+32470555003",
            "completed",
            200,
            "Normal call clearing",
            "2026-03-02T10:00:09.900+00:00",
            "2026-03-02T10:00:52.030+00:00",
        ),
    ],
    "recordings": [],
    "events_url": f"/v1/calls/{PARENT}/events",
}

QUEUED_CALL: dict[str, Any] = {
    **CALL_WITH_TWO_LEGS,
    "status": "queued",
    "sip_status": None,
    "reason": None,
    "cause": None,
    "ended_by": None,
    "started_at": None,
    "answered_at": None,
    "ended_at": None,
    "billable_seconds": None,
    "price_eur": None,
    "price_breakdown": [{"call_id": PARENT, "part": "own", "price_eur": None}],
    "legs": [],
}

CHILD_CALL: dict[str, Any] = {
    **CALL_WITH_TWO_LEGS,
    **{k: v for k, v in CALL_WITH_TWO_LEGS["legs"][1].items() if k != "duration_seconds"},
    "parent_call_id": PARENT,
    "flow": None,
    "created_at": "2026-03-02T10:00:04.210+00:00",
    "started_at": "2026-03-02T10:00:04.210+00:00",
    "price_breakdown": [{"call_id": LEG_ANSWERED, "part": "own", "price_eur": "0.3700"}],
    "legs": [],
    "events_url": f"/v1/calls/{LEG_ANSWERED}/events",
}

CALL_EVENTS: dict[str, Any] = {
    "call_id": PARENT,
    "events": [
        {"seq": 1, "at": "2026-03-02T10:00:00.000+00:00", "kind": "queued",
         "data": {"flow": "connect", "parent_call_id": None}},
        {"seq": 2, "at": "2026-03-02T10:00:00.120+00:00", "kind": "initiated",
         "data": {"to": "+32470123456", "from": "+3225551001"}},
        {"seq": 3, "at": "2026-03-02T10:00:01.010+00:00", "kind": "ringing",
         "data": {"sip_status": 180}},
        {"seq": 4, "at": "2026-03-02T10:00:03.410+00:00", "kind": "answered",
         "data": {"sip_status": 200}},
        {"seq": 5, "at": "2026-03-02T10:00:03.420+00:00", "kind": "step",
         "data": {"step": "connect", "verb": "dial", "why": "start", "from": None}},
        {"seq": 6, "at": "2026-03-02T10:00:03.430+00:00", "kind": "dialled",
         "data": {"call_id": LEG_BUSY, "to": "+32470555001"}},
        {"seq": 7, "at": "2026-03-02T10:00:04.200+00:00", "kind": "leg_ended",
         "data": {"call_id": LEG_BUSY, "to": "+32470555001", "status": "busy",
                  "sip_status": 486, "reason": "Busy Here", "ended_by": "callee"}},
        {"seq": 8, "at": "2026-03-02T10:00:52.030+00:00", "kind": "ended",
         "data": {"sip_status": 200, "reason": "Normal call clearing", "outcome": "completed",
                  "cause": "normal", "ended_by": "api", "talk_seconds": 49,
                  "status": "completed", "billable_seconds": 60}},
    ],
}  # fmt: skip

# "<METHOD> <path under /v1>" -> {"request": body, "response": body}
EXAMPLES: dict[str, dict[str, Any]] = {
    "POST /calls": {
        "request": {
            "to": "+32470123456",
            "from": "+3225551001",
            "flow": "connect",
            "ring_timeout": 30,
            "status_callback": "https://crm.example.com/calls",
            "status_events": ["answered", "completed"],
        },
        "response": QUEUED_CALL,
    },
    "GET /calls": {"response": {"calls": [CALL_WITH_TWO_LEGS, CHILD_CALL]}},
    "GET /calls/{call_id}": {"response": CALL_WITH_TWO_LEGS},
    "POST /calls/{call_id}": {"request": {"status": "completed"}, "response": CALL_WITH_TWO_LEGS},
    "GET /calls/{call_id}/events": {"response": CALL_EVENTS},
}

PROBLEM_EXAMPLE: dict[str, Any] = {
    "type": "urn:flexvoice:problem:unknown-flow",
    "title": "No flow has this name",
    "status": 422,
    "detail": "flow: no flow named 'conect'; did you mean 'connect'? the flows on this node "
    "are: connect, support-line (GET /v1/flows lists them)",
    "field": "flow",
}
