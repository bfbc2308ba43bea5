"""The `call` usage event of one leg: built here, once, for every leg that ends.

The SIP layer writes it to the usage feed as the leg ends (flexvoice.sip.usage), and the call
registry prices that very event with metering's rating for the call resource
(flexvoice.api.pricing): the price a developer reads on a call and the row finance exports
for it come from one object, so they agree to the cent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flexvoice.e164 import E164_RE


def leg_event_id(call_id: str) -> str:
    """The usage event id of a leg: writing the same leg twice counts once."""
    return f"{call_id}:leg"


def billable_number(direction: str, caller: str, callee: str) -> str | None:
    """The number the leg is priced on (the callee for both directions: the tariff prices
    an inbound call by the number that was called), or None for a SIP URI, which does not
    cross the trunk and is not billed."""
    return callee if E164_RE.match(callee) else None


def call_event(
    *,
    call_id: str,
    account: str,
    direction: str,
    caller: str,
    callee: str,
    started_at: datetime | str,
    answered_at: datetime | str | None,
    ended_at: datetime | str,
    parent_call_id: str | None = None,
) -> dict[str, Any] | None:
    """The leg's `call` event, or None when the leg is not billable (a SIP URI target)."""
    number = billable_number(direction, caller, callee)
    if number is None:
        return None
    event: dict[str, Any] = {
        "id": leg_event_id(call_id),
        "account": account,
        "kind": "call",
        "direction": direction,
        "from": caller or "anonymous",
        "to": number,
        "started_at": _iso(started_at),
        "answered_at": _iso(answered_at) if answered_at is not None else None,
        "ended_at": _iso(ended_at),
        "call_id": call_id,
    }
    if parent_call_id:
        event["parent_call_id"] = parent_call_id
    return event


def _iso(moment: datetime | str) -> str:
    return moment if isinstance(moment, str) else moment.isoformat()
