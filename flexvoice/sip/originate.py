"""Outbound calls for the API: the `Originator` seam (flexvoice.callcontrol) on the pool.

The call placed over REST is the first leg of its tree; it rings by the same rule as a
`dial` step's targets (flexvoice.sip.ringing), and reports its own events: the registry
hears `ringing`, `answered` and `ended` from the leg alone.
"""

from __future__ import annotations

from flexvoice.callcontrol import CallLeg, CallObserver, DialAttempt, EndedBy
from flexvoice.sip.pool import NoFreeSlot, WorkerPool
from flexvoice.sip.ringing import ring
from flexvoice.sip.trunks import Trunk


class PoolOriginator:
    def __init__(self, pool: WorkerPool, trunk: Trunk | None = None):
        self.pool = pool
        self.trunk = trunk

    def caller_id_refusal(self, caller_id: str) -> str | None:
        trunk = self.trunk
        if trunk is None or trunk.caller_id_allowed(caller_id):
            return None
        return (
            f"from: {caller_id} may not be presented on trunk '{trunk.name}': its rule "
            f"caller_id.allowed ({', '.join(trunk.allowed_caller_ids)}) in sip/trunks.yaml "
            "does not match it; add the number (or a pattern) there, or place the call from "
            "a number it allows"
        )

    async def hangup(self, call_id: str, ended_by: EndedBy) -> bool:
        """End a live leg this node holds (an inbound call, a dialled leg) and its tree."""
        leg = self.pool.find(call_id)
        if leg is None or leg.ended:
            return False
        await leg.hangup(ended_by=ended_by)
        return True

    async def originate(
        self,
        to: str,
        caller_id: str,
        *,
        ring_timeout: float,
        call_id: str | None = None,
        observer: CallObserver | None = None,
        account: str | None = None,
    ) -> tuple[CallLeg | None, DialAttempt]:
        try:
            leg = self.pool.originate(self.pool.target_uri(to), caller_id, call_id=call_id or "")
        except NoFreeSlot as exc:
            attempt = DialAttempt(to, "failed", 503, exc.reason)
            if observer is not None and call_id:
                observer.call_event(
                    call_id,
                    "ended",
                    {"sip_status": 503, "reason": exc.reason, "cause": "no_free_slot",
                     "outcome": "failed", "ended_by": "flow"},
                )  # fmt: skip
            return None, attempt
        leg.account = account
        leg.observer = observer
        winner, [attempt] = await ring([(to, leg)], ring_timeout)
        return (leg if winner is not None else None), attempt
