"""Phone numbers: the one E.164 rule of the engine, checked with phonenumbers.

Every number people write (flows, sip/numbers.yaml, sip/trunks.yaml, the REST API, the CLI,
usage events) is E.164: '+', the country code and the subscriber number, digits only, 7 to 15
of them (+3225551001). A national form such as 0475123456 is refused, and the message gives
the E.164 form when the digits make a valid number of the platform's home country (Belgium):
the engine never guesses silently, since the same digits are another number elsewhere.

Only numbers that arrive from the network (the callee of an inbound INVITE, which carriers
often send in national form) are read as home-country numbers: `from_network`.
"""

from __future__ import annotations

import re

import phonenumbers

HOME_REGION = "BE"
E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
EXAMPLE = "+3225551001"


class NotE164(ValueError):
    pass


def hint(text: str) -> str:
    """How to write `text` in E.164: its own E.164 form when it is a national number."""
    national = from_network(text)
    if national is not None and national != text:
        return f"write it in E.164: {national}"
    return f"write + then country code and number, no spaces or leading 0, e.g. {EXAMPLE}"


def is_e164(text: str) -> bool:
    """The E.164 shape: '+' and 7 to 15 digits (phonenumbers decides the rest)."""
    return E164_RE.match(text) is not None


def parse(text: str) -> phonenumbers.PhoneNumber:
    """The number written in E.164 as `text`, or NotE164 saying how to write it."""
    if not is_e164(text):
        if text[:1] == "+" and text[1:].isdigit():
            raise NotE164(f"'{text}' is not a valid number (wrong length: 7 to 15 digits)")
        raise NotE164(f"'{text}' is not an E.164 number; {hint(text)}")
    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise NotE164(f"'{text}' is not a phone number; {hint(text)}") from None


def is_possible(text: str) -> bool:
    """E.164 and of a possible length for its country."""
    try:
        return phonenumbers.is_possible_number(parse(text))
    except NotE164:
        return False


def is_valid(text: str) -> bool:
    """E.164 and in an assigned range of its country's numbering plan."""
    try:
        return phonenumbers.is_valid_number(parse(text))
    except NotE164:
        return False


def from_network(text: str) -> str | None:
    """A number as a carrier sends it (E.164, or national in the home country), in E.164;
    None when it is not a valid number."""
    try:
        parsed = phonenumbers.parse(text.strip(), HOME_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
