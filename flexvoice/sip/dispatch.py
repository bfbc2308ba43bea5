"""Which commands a media worker carries out itself and which go to one of its calls, and
what it answers when a command names no live call (no I/O, no pjsua2).

A command for a call that ended a moment ago crossed the call's end (the flow played to a
caller who had just hung up, the call tree hung up a leg its worker had ended): that is a race,
not a fault. A hangup of such a call asks for what happened already and gets no answer at all;
any other command gets an error marked `ended`, which the control plane logs at debug. A call
id the worker never knew is a fault (an error without `ended`, logged as a warning).
"""

from __future__ import annotations

from typing import Any

# Carried out by the worker itself; every other command goes to the call it names, whose
# method `cmd_<type>` carries it out.
WORKER_COMMANDS = frozenset({"shutdown", "originate", "message"})
# Ended calls remembered, so that a command crossing a call's end is told from a bad call id.
ENDED_CALLS_KEPT = 256


class EndedCalls:
    """The ids of the calls that ended last (at most `keep`), oldest forgotten first."""

    def __init__(self, keep: int = ENDED_CALLS_KEPT):
        self.keep = keep
        self._ids: dict[str, None] = {}  # insertion order: oldest first

    def add(self, call_id: str) -> None:
        self._ids[call_id] = None
        if len(self._ids) > self.keep:
            del self._ids[next(iter(self._ids))]

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


def handler_name(command: str) -> str:
    return f"cmd_{command}"


def no_call_answer(cmd: str, call_id: str | None, ended: EndedCalls) -> dict[str, Any] | None:
    """The error event's fields for a command whose call is not live; None: answer nothing."""
    if call_id is None or call_id not in ended:
        return {"call": call_id, "cmd": cmd, "message": "no such call on this worker"}
    if cmd == "hangup":
        return None
    return {"call": call_id, "cmd": cmd, "message": "call ended", "ended": True}
