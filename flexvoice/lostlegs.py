"""What a leg becomes when the node holding it died (issue 12, and issue 18 across nodes): the
answered leg's fields kept while it is up, and, from them and the node's last heartbeat, its
one `call` usage event and its `ended` event. No I/O: the node's own SQLite rows
(flexvoice.node.heartbeat) and the cluster's Redis hash (flexvoice.cluster) feed it alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flexvoice.callevent import call_event


@dataclass(frozen=True)
class LiveLeg:
    call_id: str
    account: str | None
    direction: str
    caller: str
    callee: str
    started_at: str
    answered_at: str
    parent_call_id: str | None


# -- the core: what a lost leg becomes (no I/O) ---------------------------------------------
def lost_leg_end(
    leg: LiveLeg, alive_at: str | None
) -> tuple[dict[str, Any] | None, dict[str, object]]:
    """The leg's `call` usage event (None when not billable) and its `ended` event, billed
    from its answer to the last moment the node was known alive."""
    ended_at = max(leg.answered_at, alive_at or leg.answered_at, key=datetime.fromisoformat)
    usage = None
    if leg.account:
        usage = call_event(
            call_id=leg.call_id,
            account=leg.account,
            direction=leg.direction,
            caller=leg.caller,
            callee=leg.callee,
            started_at=leg.started_at,
            answered_at=leg.answered_at,
            ended_at=ended_at,
            parent_call_id=leg.parent_call_id,
        )
    seconds = datetime.fromisoformat(ended_at) - datetime.fromisoformat(leg.answered_at)
    ended: dict[str, object] = {
        "sip_status": 200,
        "reason": "node lost",
        "outcome": "completed",
        "cause": "node_lost",
        "ended_by": "node_lost",
        "talk_seconds": max(0, -int(-seconds.total_seconds() // 1)),
        "at": ended_at,
        "usage": usage,
    }
    return usage, ended


def unanswered_end(alive_at: str | None, fallback: str) -> dict[str, object]:
    """The `ended` event of a call that was ringing (or queued) when the node died."""
    return {
        "sip_status": 503,
        "reason": "node lost",
        "outcome": "failed",
        "cause": "node_lost",
        "ended_by": "node_lost",
        "at": alive_at or fallback,
    }
