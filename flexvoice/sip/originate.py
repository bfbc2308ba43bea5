"""Outbound calls for the API: the `Originator` seam (flexvoice.callcontrol) on the pool."""

from __future__ import annotations

from flexvoice.callcontrol import CallLeg, CallObserver, DialAttempt
from flexvoice.sip.leg import outcome_for
from flexvoice.sip.pool import NoFreeSlot, WorkerPool


class PoolOriginator:
    def __init__(self, pool: WorkerPool):
        self.pool = pool

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
                    call_id, "ended", {"sip_status": 503, "cause": exc.reason, "outcome": "failed"}
                )
            return None, attempt
        leg.caller = caller_id
        leg.account = account
        leg.observer = observer
        answered = await leg.wait_until(lambda: leg.answered or leg.ended, ring_timeout)
        if leg.answered and not leg.ended:
            return leg, DialAttempt(to, "completed", 200, "OK")
        if not answered:
            leg.cause = "ring_timeout"
            await leg.hangup(487, "ring timeout")
            return None, DialAttempt(to, "no-answer", leg.final_status or 487, "ring_timeout")
        status = leg.final_status or 500
        return None, DialAttempt(to, outcome_for(status), status, leg.final_reason)
