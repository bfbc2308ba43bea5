"""Ringing outbound legs until one answers: the one ring/cancel rule of a `dial` step's
targets (flexvoice.sip.leg) and of a call placed over REST (flexvoice.sip.originate).

Whatever stops the ringing (a target answered, the ring timeout, the parent call ended, the
API hung up) every other leg gets its CANCEL, and each attempt says how it ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from flexvoice.callcontrol import DialAttempt, DialOutcome

if TYPE_CHECKING:
    from flexvoice.sip.leg import SipLeg

# Our own reasons for ending a leg that rang: they say more than "487 Request Terminated".
OWN_CAUSES = ("ring_timeout", "answered_elsewhere", "caller_left", "canceled_by_api")


async def ring(
    rung: Sequence[tuple[str, SipLeg]], ring_timeout: float, parent: SipLeg | None = None
) -> tuple[tuple[str, SipLeg] | None, list[DialAttempt]]:
    """Wait until one of `rung` (target, leg) answers, all ended, the timeout passed or
    `parent` ended; CANCEL the others. Returns (the winner, every attempt in order)."""
    legs = [leg for _, leg in rung]
    if not legs:
        return None, []
    others = [*legs[1:], *([parent] if parent is not None else [])]

    def settled() -> bool:
        return (
            (parent is not None and parent.ended)
            or any(leg.answered for leg in legs)
            or all(leg.ended for leg in legs)
        )

    try:
        await legs[0].wait_until(settled, ring_timeout, others=others)
    except asyncio.CancelledError:
        # The API hung up a call that was still ringing: CANCEL it now, no await left.
        for leg in legs:
            leg.end("api", 487, "canceled", outcome="canceled", cause="canceled_by_api")
        raise
    winner = next(((t, leg) for t, leg in rung if leg.answered and not leg.ended), None)
    if parent is not None and parent.ended and winner is not None:
        winner = None  # the caller left as the callee answered: nobody to bridge to
    for _target, leg in rung:
        if winner is not None and leg is winner[1]:
            continue
        if leg.ended:
            continue
        if parent is not None and parent.ended:
            await leg.hangup(
                487, "caller left", ended_by=parent.ended_by or "caller",
                outcome="canceled", cause="caller_left",
            )  # fmt: skip
        elif winner is not None:
            await leg.hangup(
                487, "answered elsewhere", ended_by="flow",
                outcome="canceled", cause="answered_elsewhere",
            )  # fmt: skip
        else:
            await leg.hangup(
                487, "ring timeout", ended_by="flow", outcome="no-answer", cause="ring_timeout"
            )
    return winner, [attempt(t, leg, winner) for t, leg in rung]


def attempt(target: str, leg: SipLeg, winner: tuple[str, SipLeg] | None = None) -> DialAttempt:
    """How ringing `target` ended, in the dial step's terms."""
    if winner is not None and leg is winner[1]:
        return DialAttempt(target, "completed", 200, "OK")
    m = leg.machine
    outcome: DialOutcome = "failed" if m.outcome in (None, "redirected") else m.outcome  # type: ignore[assignment]
    reason = m.cause if m.cause in OWN_CAUSES else m.reason
    return DialAttempt(target, outcome, m.final_status or 487, reason or m.cause)
