"""The price of one answered leg for the call registry: the leg's `call` usage event (the
one the SIP layer wrote to the usage feed, or, for a leg no SIP layer reported, one built by
the same function) rated by the `Pricer` (flexvoice.api.pricing, metering's own rating)."""

from __future__ import annotations

from typing import Any, Protocol

from flexvoice.callevent import call_event as build_call_event
from flexvoice.callrecords import CallPrice, CallRecord, seconds_between
from flexvoice.logs import get_logger

log = get_logger("flexvoice.calls")


class Pricer(Protocol):
    """Rates one leg's `call` usage event under the account's tariff (flexvoice.api.pricing,
    built on the metering module's rating)."""

    def price_usage(self, event: dict[str, Any]) -> CallPrice: ...


def leg_price(
    pricer: Pricer | None, call: CallRecord, usage: object, answered_at: str, ended_at: str
) -> CallPrice:
    """`usage`: the leg's event as the SIP layer reported it (anything else: built here)."""
    event = usage if isinstance(usage, dict) else usage_of(call, answered_at, ended_at)
    seconds = seconds_between(answered_at, ended_at)
    if event is None:
        return CallPrice(seconds, None, "not billed: a SIP address does not cross the trunk")
    if pricer is None:
        return CallPrice(seconds, None, "no tariffs are loaded on this node")
    try:
        return pricer.price_usage(event)
    except Exception as exc:  # a pricing bug must not lose the call's outcome
        log.exception("calls.price_failed", call_id=call.id)
        return CallPrice(seconds, None, f"pricing failed: {exc}")


def usage_of(call: CallRecord, answered_at: str, ended_at: str) -> dict[str, Any] | None:
    return build_call_event(
        call_id=call.id,
        account=call.account,
        direction=call.direction,
        caller=call.from_number,
        callee=call.to_number,
        started_at=call.started_at or answered_at,
        answered_at=answered_at,
        ended_at=ended_at,
        parent_call_id=call.parent_call_id,
    )
