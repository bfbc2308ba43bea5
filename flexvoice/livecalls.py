"""The call registry's memory of the calls it is handling: each live call's row as it stands in
the database, and which of its legs are still open.

A call's events (ringing, answered, ended, steps) each read the call; reading the row from
the database every time was most of the control plane's work per call. The registry writes
every change to the database first, in the event's transaction, and then here
(write-through), so this is never ahead of what is stored: losing it (a crash, a rolled back
event) loses nothing; the database is read again. A call leaves when its status is final.
Calls the registry did not create (left open by a node that died) are not here: they are read
from the database as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from flexvoice.callrecords import CallRecord


class LiveCalls:
    def __init__(self) -> None:
        self._calls: dict[str, CallRecord] = {}
        # call id -> ids of its legs not yet final, for the calls created by this registry
        # (so every leg they have was created here too); kept after the call's own end
        # while a leg is open, so its `completed` waits for the last leg.
        self._open_legs: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, call_id: str) -> CallRecord | None:
        return self._calls.get(call_id)

    def created(self, call: CallRecord) -> None:
        """A call this registry just stored."""
        self._calls[call.id] = call
        self._open_legs[call.id] = set()
        if call.parent_call_id is not None:
            legs = self._open_legs.get(call.parent_call_id)
            if legs is not None:
                legs.add(call.id)

    def changed(self, call_id: str, **fields: object) -> CallRecord | None:
        """The stored row of a live call changed: the same change here. A call that became
        final leaves (its parent then has one open leg fewer)."""
        call = self._calls.get(call_id)
        if call is None:
            return None
        call = dataclasses.replace(call, **fields)  # type: ignore[arg-type]
        if not call.final:
            self._calls[call_id] = call
            return call
        del self._calls[call_id]
        if call.parent_call_id is not None:
            legs = self._open_legs.get(call.parent_call_id)
            if legs is not None:
                legs.discard(call_id)
        return call

    def open_legs(self, call_id: str) -> bool | None:
        """Whether the call has a leg not yet final; None when not known here (read the
        database)."""
        legs = self._open_legs.get(call_id)
        return None if legs is None else bool(legs)

    def completed(self, call_id: str) -> None:
        """The call and all its legs are final: nothing more to remember."""
        self._open_legs.pop(call_id, None)

    def forget(self, call_ids: Iterable[str]) -> None:
        """An event's transaction was rolled back: what it changed here may not be stored.
        Those calls are read from the database again, and every call's open legs too."""
        for call_id in call_ids:
            self._calls.pop(call_id, None)
        self._open_legs.clear()
