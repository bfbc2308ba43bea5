"""A call as the REST API shows it and webhooks carry it: its own leg, the legs it dialled
(`legs`), and its price as its own plus its legs' (`price_breakdown` says which is which)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexvoice.callrecords import CallRecord, seconds_between

PRICE_QUANTUM = Decimal("0.0001")


def call_resource(
    call: CallRecord, legs: list[CallRecord], recordings: list[dict[str, Any]]
) -> dict[str, Any]:
    """The call as the API shows it (and webhooks carry it): its legs, and its price as
    its own plus its legs' (`price_breakdown` says which is which)."""
    breakdown = [{"call_id": call.id, "part": "own", "price_eur": call.price_eur}]
    breakdown += [{"call_id": leg.id, "part": "leg", "price_eur": leg.price_eur} for leg in legs]
    known = [Decimal(p["price_eur"]) for p in breakdown if p["price_eur"] is not None]
    total = str(sum(known, Decimal(0)).quantize(PRICE_QUANTUM)) if call.final and known else None
    return {
        "id": call.id,
        "parent_call_id": call.parent_call_id,
        "account": call.account,
        "direction": call.direction,
        "from": call.from_number,
        "to": call.to_number,
        "status": call.status,
        "sip_status": call.sip_status,
        "reason": call.reason,
        "cause": call.cause,
        "ended_by": call.ended_by,
        "flow": call.flow,
        "created_at": call.created_at,
        "started_at": call.started_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "billable_seconds": call.billable_seconds,
        "price_eur": total,
        "price_breakdown": breakdown,
        "price_note": call.price_note,
        "legs": [leg_summary(leg) for leg in legs],
        "recordings": recordings,
        "events_url": f"/v1/calls/{call.id}/events",
    }


def leg_summary(leg: CallRecord) -> dict[str, Any]:
    """One entry of a parent's `legs`."""
    duration = None
    if leg.answered_at and leg.ended_at:
        duration = seconds_between(leg.answered_at, leg.ended_at)
    return {
        "id": leg.id,
        "from": leg.from_number,
        "to": leg.to_number,
        "status": leg.status,
        "sip_status": leg.sip_status,
        "reason": leg.reason,
        "cause": leg.cause,
        "ended_by": leg.ended_by,
        "answered_at": leg.answered_at,
        "ended_at": leg.ended_at,
        "duration_seconds": duration,
        "billable_seconds": leg.billable_seconds,
        "price_eur": leg.price_eur,
    }
