"""How a call leg ended, in one table: SIP final status -> outcome and reason phrase, and who
ended it. The leg (flexvoice.sip.leg), the call registry (flexvoice.calls), the flow
simulator and the tests' scripted leg (flexvoice.flows.simulate) all read it, so a 603 is
"busy" everywhere or nowhere.
"""

from __future__ import annotations

from typing import Literal

# Twilio's vocabulary for how a leg (or a dial attempt) ended.
DialOutcome = Literal["completed", "busy", "no-answer", "failed", "canceled"]

# Who ended a call; a call's legs all end with it and carry the same answer.
# `node_lost`: the control plane died with the call up; closed at its next start (node/heartbeat).
EndedBy = Literal["caller", "callee", "api", "flow", "worker_lost", "node_shutdown", "node_lost"]
ENDED_BY: tuple[EndedBy, ...] = (
    "caller", "callee", "api", "flow", "worker_lost", "node_shutdown", "node_lost"
)  # fmt: skip

# The final status of an unanswered INVITE -> outcome. 603 Decline is reported as busy, as
# Twilio reports a rejected call; 408 and 480 are the callee's phone not being answered.
_OUTCOMES: dict[int, DialOutcome] = {
    486: "busy",
    600: "busy",
    603: "busy",
    408: "no-answer",
    480: "no-answer",
    487: "canceled",
}

# RFC 3261 reason phrases for the statuses a leg ends with (what the trace shows).
REASONS: dict[int, str] = {
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    302: "Moved Temporarily",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    487: "Request Terminated",
    500: "Server Internal Error",
    503: "Service Unavailable",
    600: "Busy Everywhere",
    603: "Decline",
}
# What an answered leg that ends with a BYE says (Q.850 cause 16), whatever status the BYE
# was asked to carry: the INVITE was answered 200, the call was cleared normally.
NORMAL_CLEARING = "Normal call clearing"


def outcome_for(status: int) -> DialOutcome:
    """The outcome of an INVITE that got the final `status` (2xx: completed)."""
    if 200 <= status < 300:
        return "completed"
    return _OUTCOMES.get(status, "failed")


def reason_for(status: int) -> str:
    """The standard reason phrase of `status` ("Busy Here"), else "SIP <status>"."""
    return REASONS.get(status, f"SIP {status}")


def far_end(direction: str) -> EndedBy:
    """Who is at the other end of a leg: an inbound leg's far end called us (the caller), an
    outbound leg's far end is the one we called (the callee)."""
    return "caller" if direction == "inbound" else "callee"
