"""A message body as the network carries it: its encoding and its parts (no I/O).

The counting rules are metering's (flexvoice.metering.sms: GSM-7 160/153 septets, UCS-2 70/67
units); here the parts are also made. A long message is split into concatenated parts, each
with a User Data Header (IE 0x00, 8-bit reference), rather than sent whole in one SMPP
`message_payload`: each part is then billed, submitted, acknowledged and receipted on its own,
which is what operators charge for and what lets a failed part show in the message's status.
An escape pair (a GSM-7 extension character) or a UTF-16 surrogate pair is never cut in two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flexvoice.metering.sms import GSM7_BASIC, GSM7_EXTENSION_CODES, GSM7_TABLE

Encoding = Literal["GSM-7", "UCS-2"]

DATA_CODING = {"GSM-7": 0x00, "UCS-2": 0x08}  # SMPP data_coding: SMSC default alphabet, UCS2
ESM_UDHI = 0x40  # esm_class bit: the short message starts with a User Data Header
MAX_BODY = 1600  # characters, as Twilio: ten GSM-7 parts and then some

_SEPTET = {ch: i for i, ch in enumerate(GSM7_TABLE) if ch != "\x1b"}


@dataclass(frozen=True)
class Part:
    payload: bytes  # short_message as submitted (UDH included for concatenated parts)
    data_coding: int
    esm_class: int


def encoding_of(body: str) -> Encoding:
    for ch in body:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION_CODES:
            return "UCS-2"
    return "GSM-7"


def gsm7_units(body: str) -> list[bytes]:
    """Each character as its septets, one per byte (unpacked, as SMPP data_coding 0 carries
    them): two for an extension character (escape, code)."""
    out = []
    for ch in body:
        code = _SEPTET.get(ch)
        out.append(bytes([code]) if code is not None else bytes([0x1B, GSM7_EXTENSION_CODES[ch]]))
    return out


def ucs2_units(body: str) -> list[bytes]:
    """Each character in UTF-16 big-endian; a character outside the BMP stays one piece."""
    return [ch.encode("utf-16-be") for ch in body]


def _pack(units: list[bytes], single: int, per_part: int) -> list[bytes]:
    total = sum(len(u) for u in units)
    if total <= single:
        return [b"".join(units)]
    parts: list[bytes] = []
    current = b""
    for unit in units:
        if len(current) + len(unit) > per_part:
            parts.append(current)
            current = b""
        current += unit
    parts.append(current)
    return parts


def split(body: str, reference: int) -> tuple[Encoding, list[Part]]:
    """The parts to submit; `reference` (0-255) ties a long message's parts together."""
    encoding = encoding_of(body)
    if encoding == "GSM-7":
        chunks = _pack(gsm7_units(body), 160, 153)
    else:
        # UCS-2 limits count 16-bit units: 140 octets single, 134 per part.
        chunks = _pack(ucs2_units(body), 140, 134)
    coding = DATA_CODING[encoding]
    if len(chunks) == 1:
        return encoding, [Part(chunks[0], coding, 0)]
    count = len(chunks)
    ref = reference & 0xFF
    return encoding, [
        Part(bytes([0x05, 0x00, 0x03, ref, count, i + 1]) + chunk, coding, ESM_UDHI)
        for i, chunk in enumerate(chunks)
    ]


def decode(
    payload: bytes, data_coding: int, esm_class: int = 0
) -> tuple[str, tuple[int, int, int] | None]:
    """Text of a received short message and its concatenation (reference, count, index), if
    it has a concatenation header. GSM-7 unpacked, UCS-2, or Latin-1 for anything else."""
    concat = None
    if esm_class & ESM_UDHI and payload:
        udh_len = payload[0]
        udh, payload = payload[1 : 1 + udh_len], payload[1 + udh_len :]
        i = 0
        while i + 2 <= len(udh):
            iei, length = udh[i], udh[i + 1]
            data = udh[i + 2 : i + 2 + length]
            if iei == 0x00 and length == 3:
                concat = (data[0], data[1], data[2])
            elif iei == 0x08 and length == 4:
                concat = ((data[0] << 8) | data[1], data[2], data[3])
            i += 2 + length
    if data_coding == 0x08:
        return payload.decode("utf-16-be", "replace"), concat
    if data_coding == 0x00:
        return _gsm7_text(payload), concat
    return payload.decode("latin-1"), concat


_EXTENSION_BY_CODE = {code: ch for ch, code in GSM7_EXTENSION_CODES.items()}


def _gsm7_text(septets: bytes) -> str:
    out = []
    escape = False
    for b in septets:
        if escape:
            out.append(_EXTENSION_BY_CODE.get(b, " "))
            escape = False
        elif b == 0x1B:
            escape = True
        elif b < 128:
            out.append(GSM7_TABLE[b])
        else:
            out.append("?")
    return "".join(out)
