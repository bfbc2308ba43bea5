"""Message states, delivery receipts and the worst-of-parts rule (no I/O).

Outbound: `queued -> sending -> sent -> delivered | undelivered | failed` (Twilio's words).
A message of several parts has the status of its worst part: a later part's success never
hides an earlier part's failure. Inbound messages are `received`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

MessageStatus = Literal[
    "queued", "sending", "sent", "delivered", "undelivered", "failed", "received"
]
PartStatus = Literal["queued", "sending", "sent", "delivered", "undelivered", "failed"]
FINAL: frozenset[str] = frozenset({"delivered", "undelivered", "failed", "received"})

# Error codes as Twilio publishes them, so that client code written for it keeps working.
OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient"
EXPIRED = 30036  # validity period expired while queued (the gateway stayed down)
UNDELIVERED = 30003  # the handset could not be reached (receipt UNDELIV / EXPIRED ...)
REJECTED = 30007  # refused by the carrier (receipt REJECTD, or the SMSC's submit refused)
UNKNOWN_DESTINATION = 30005
GATEWAY_ERROR = 30008  # anything else

ERROR_TEXT = {
    OPTED_OUT: "the recipient sent STOP to this sender; they must send START to receive again",
    EXPIRED: "the gateway could not take the message within its validity period",
    UNDELIVERED: "the carrier could not deliver it to the handset",
    REJECTED: "the carrier refused the message",
    UNKNOWN_DESTINATION: "the carrier does not know the destination number",
    GATEWAY_ERROR: "the SMS gateway reported an error",
}


def message_status(parts: list[str]) -> MessageStatus:
    """The worst of the parts' statuses."""
    if not parts:
        return "queued"
    states = set(parts)
    for worst in ("failed", "undelivered"):
        if worst in states:
            return worst  # type: ignore[return-value]
    if states == {"queued"}:
        return "queued"
    if states & {"queued", "sending"}:
        return "sending"
    if "sent" in states:
        return "sent"
    return "delivered"


# ---- delivery receipts ----------------------------------------------------------------

# SMPP 3.4 appendix B: "id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done
# date:YYMMDDhhmm stat:DDDDDDD err:E text: . . ."; SMSCs vary in case and spacing.
_RECEIPT_ID = re.compile(r"\bid:\s*(\S+)", re.IGNORECASE)
_RECEIPT_STAT = re.compile(r"\bstat:\s*(\w+)", re.IGNORECASE)
_RECEIPT_ERR = re.compile(r"\berr:\s*(\w+)", re.IGNORECASE)

# Receipt state (text) or SMPP message_state TLV value -> part status.
_STATES = {
    "DELIVRD": "delivered",
    "ACCEPTD": "sent",
    "ENROUTE": "sent",
    "UNKNOWN": "sent",
    "EXPIRED": "undelivered",
    "UNDELIV": "undelivered",
    "DELETED": "undelivered",
    "REJECTD": "undelivered",
}
_TLV_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}


@dataclass(frozen=True)
class Receipt:
    gateway_id: str
    state: str  # DELIVRD, UNDELIV ...
    error: str = ""

    @property
    def status(self) -> PartStatus:
        return _STATES.get(self.state.upper(), "sent")  # type: ignore[return-value]

    @property
    def error_code(self) -> int | None:
        if self.status != "undelivered":
            return None
        return REJECTED if self.state.upper() == "REJECTD" else UNDELIVERED


def parse_receipt(
    text: str, receipted_id: str | None = None, message_state: int | None = None
) -> Receipt | None:
    """A receipt from its text and/or its TLVs (receipted_message_id, message_state); the
    TLVs win when present (their id is usually in the submit response's own base)."""
    id_match = _RECEIPT_ID.search(text)
    stat_match = _RECEIPT_STAT.search(text)
    gateway_id = receipted_id or (id_match.group(1) if id_match else None)
    state = _TLV_STATES.get(message_state or 0) or (stat_match.group(1) if stat_match else None)
    if not gateway_id or not state:
        return None
    err = _RECEIPT_ERR.search(text)
    return Receipt(gateway_id, state.upper(), err.group(1) if err else "")


_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")


@functools.lru_cache(maxsize=4096)  # each id is read when recorded, then by its receipt
def id_keys(gateway_id: str) -> tuple[str, ...]:
    """Lookup keys of a gateway message id, exact first. SMSCs give the id in the submit
    response in one base (often hex) and in the receipt text in another (often decimal),
    sometimes with leading zeros: the numeric readings are keys too."""
    raw = gateway_id.strip()
    keys = ["=" + raw.lower()]
    if _DECIMAL.fullmatch(raw):
        keys.append(f"#{int(raw, 10)}")
    if _HEX.fullmatch(raw) and len(raw) <= 32:
        keys.append(f"#{int(raw, 16)}")
    return tuple(dict.fromkeys(keys))
