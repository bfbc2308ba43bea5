"""Usage events of call legs, in the metering format (one `call` event per leg).

The SIP layer writes them itself, for every leg it ends, so no path (a flow, a prompt
number, an API call, a dropped worker) can forget one; the event id `<call_id>:leg` makes a
second write of the same leg count once."""

from __future__ import annotations

from typing import Any

from flexvoice.e164 import E164_RE as E164
from flexvoice.logs import get_logger
from flexvoice.sip.leg import SipLeg

log = get_logger(__name__)


def call_usage(leg: SipLeg) -> dict[str, Any] | None:
    """The leg's `call` event, or None when it is not billable (no account; a SIP URI)."""
    if leg.account is None:
        return None  # never routed to an account (404 and the like): nobody to bill
    if leg.started_at is None or leg.ended_at is None:
        return None
    billed_number = leg.callee
    if not E164.match(billed_number):
        # A SIP URI target (an agent's phone, a PBX) does not cross the trunk: not priced.
        log.info("usage.not_billable", call_id=leg.call_id, to=billed_number)
        return None
    return {
        "id": f"{leg.call_id}:leg",
        "account": leg.account,
        "kind": "call",
        "direction": leg.direction,
        "from": leg.caller or "anonymous",
        "to": billed_number,
        "started_at": leg.started_at.isoformat(),
        "answered_at": leg.answered_at.isoformat() if leg.answered_at else None,
        "ended_at": leg.ended_at.isoformat(),
    }
