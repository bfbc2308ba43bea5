"""Usage events of call legs, in the metering format (one `call` event per leg).

The SIP layer writes them itself, for every leg it ends, so no path (a flow, a prompt
number, an API call, a dropped worker) can forget one. The event is built once, as the leg
ends (flexvoice.callevent), and the same object goes to the usage feed and, with
the leg's `ended` event, to the call registry that prices it; its id `<call_id>:leg` makes
a second write of the same leg count once."""

from __future__ import annotations

from typing import Any

from flexvoice.logs import get_logger
from flexvoice.sip.leg import SipLeg

log = get_logger(__name__)


def call_usage(leg: SipLeg) -> dict[str, Any] | None:
    """The leg's `call` event, or None when it is not billable (no account; a SIP URI)."""
    if leg.account is not None and leg.usage is None and leg.ended:
        log.info("usage.not_billable", call_id=leg.call_id, to=leg.callee)
    return leg.usage
