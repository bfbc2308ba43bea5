"""Decimal helpers for the money path: parsing prices, rounding to cents, printing amounts.

Floats never appear here: every amount is a `decimal.Decimal` built from text or integers.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

CENT = Decimal("0.01")
MICRO = Decimal("0.000001")
ZERO = Decimal(0)
PRICE_DECIMALS = 6


def parse_price(text: str) -> Decimal:
    """A price written as text ('0.095'): non-negative, at most 6 decimals."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"'{text}' is not a number; write it like '0.095'") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"'{text}' must be a number of at least 0")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > PRICE_DECIMALS:
        raise ValueError(f"'{text}' has more than {PRICE_DECIMALS} decimals")
    return value


def cents(value: Decimal) -> Decimal:
    """Round once to cents, half up (0.005 -> 0.01), as finance rounds."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 60 -> '60', 1.50 -> '1.5'."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def fmt_cents(value: Decimal) -> str:
    return format(cents(value), "f")


def fmt_micro(value: Decimal) -> str:
    return format(value.quantize(MICRO, rounding=ROUND_HALF_UP), "f")


@lru_cache(maxsize=1024)  # a handful of distinct prices, formatted for every event
def fmt_price(value: Decimal) -> str:
    """A unit price as finance writes it: at least 2 decimals (0.80, 30.00, 0.095)."""
    text = plain(value)
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"
