"""A number's usage events (metering issue): every activation period of a number is one
`number` event. Adding a number records it with `active_to: null`; removing it records the same
event id again with `active_to` set, which the metering store treats as closing that period."""

from __future__ import annotations

import uuid
from typing import Any, Protocol


class UsageSink(Protocol):
    """Where usage events go (the metering issue's `flexvoice.metering.sink.UsageSink`)."""

    def record(self, event: dict[str, Any]) -> None: ...


def usage_id(e164: str, active_from: str) -> str:
    # The random part keeps two periods started within the same second apart.
    return f"number:{e164}:{active_from}:{uuid.uuid4().hex[:8]}"


def number_event(
    usage_id: str, account: str, e164: str, active_from: str, active_to: str | None
) -> dict[str, Any]:
    return {
        "id": usage_id,
        "account": account,
        "kind": "number",
        "number": e164,
        "active_from": active_from,
        "active_to": active_to,
    }
