"""Voice Continuity, decided here and nowhere else: a number whose override is active is
redirected as a whole to its `forward_to`, before any flow or prompt runs.

The flow runtime (flexvoice.flows.runtime) carries it out for numbers with a flow (it
traces the step and bills the reroute); the inbound router (flexvoice.node.inbound_router)
for numbers the flow runtime does not run. Both ask `continuity_target`.
"""

from __future__ import annotations

from typing import Any


def continuity_target(override: Any) -> str | None:
    """The number to redirect to, from a `continuity_for(number)` answer
    (`(forward_to, active)` or None), or None when calls go their normal way."""
    if not isinstance(override, tuple | list) or len(override) != 2:
        return None
    forward_to, active = override
    if active and isinstance(forward_to, str) and forward_to:
        return forward_to
    return None
