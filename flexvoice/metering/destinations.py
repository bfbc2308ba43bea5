"""Destination classes of E.164 numbers ('BE mobile', 'BE fixed', 'FR mobile', ...).

The class is what a tariff prices. Classifying with `phonenumbers` costs ~20 µs, more than
the rest of rating together, and customers call the same numbers again and again: cached.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType

from flexvoice.e164 import E164_RE

_TYPES = {
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}


class BadNumber(ValueError):
    pass


@lru_cache(maxsize=200_000)
def classify(number: str) -> str:
    """'BE mobile' for +32470123456; BadNumber when it is not a valid E.164 number."""
    if not E164_RE.match(number):
        raise BadNumber(f"'{number}' is not an E.164 number (write it like +32470123456)")
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        raise BadNumber(f"'{number}' is not a phone number") from None
    # is_valid_number() is region_code_for_number() + number_type() != UNKNOWN; asking
    # for both once saves a third of the cost of a new number.
    region = phonenumbers.region_code_for_number(parsed)
    number_type = phonenumbers.number_type(parsed)
    if region is None or number_type == PhoneNumberType.UNKNOWN:
        raise BadNumber(f"'{number}' is not a valid number in its numbering plan")
    return f"{region} {_TYPES.get(number_type, 'unknown')}"
