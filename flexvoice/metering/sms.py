"""SMS segments, as operators count them (3GPP TS 23.038 / 23.040).

GSM-7: 160 septets in a single message, 153 per part once concatenated; characters of the
extension table (such as € and {) take two septets. Any character outside GSM-7 turns the
whole message into UCS-2: 70 UTF-16 units single, 67 per part (an emoji takes two units).
"""

from __future__ import annotations

import re

# The GSM 03.38 default alphabet in code order (0x1B is the escape to the extension table,
# not a character): the position of a character is its septet value.
GSM7_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension characters and the septet that follows the escape for each.
GSM7_EXTENSION_CODES = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
GSM7_BASIC = frozenset(GSM7_TABLE) - {"\x1b"}
GSM7_EXTENSION = frozenset(GSM7_EXTENSION_CODES)


def _parts(units: int, single: int, per_part: int) -> int:
    if units <= single:
        return 1  # an empty message is still one SMS sent
    return -(-units // per_part)


# Most messages are plain GSM-7: one regex pass instead of a Python loop over characters.
_ALL_BASIC = re.compile("[" + re.escape("".join(sorted(GSM7_BASIC))) + "]*")


def segments(body: str) -> int:
    if _ALL_BASIC.fullmatch(body):
        return _parts(len(body), 160, 153)
    septets = 0
    for ch in body:
        if ch in GSM7_BASIC:
            septets += 1
        elif ch in GSM7_EXTENSION:
            septets += 2
        else:
            units = len(body.encode("utf-16-le")) // 2
            return _parts(units, 70, 67)
    return _parts(septets, 160, 153)
