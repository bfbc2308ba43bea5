"""The verdict on what a caller typed, shared by `menu` and `gather` (no I/O): no input, an
invalid answer, or the digits; and whether a menu key is a key of a phone keypad."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from flexvoice.flows.base import DTMF_KEYS


@dataclass(frozen=True)
class Verdict:
    kind: Literal["ok", "no-input", "invalid"]
    value: str  # the digits as the caller typed them (without the terminator)


def judge_menu(digits: str, options: dict[str, str]) -> Verdict:
    if not digits:
        return Verdict("no-input", "")
    key = digits[0]
    return Verdict("ok" if key in options else "invalid", key)


def judge_gather(digits: str, *, min_digits: int, max_digits: int, pattern: str | None) -> Verdict:
    if not digits:
        return Verdict("no-input", "")
    if not (min_digits <= len(digits) <= max_digits):
        return Verdict("invalid", digits)
    if pattern is not None and not re.fullmatch(pattern, digits):
        return Verdict("invalid", digits)
    return Verdict("ok", digits)


def bad_dtmf_key(key: str) -> str | None:
    """A message when `key` cannot be pressed on a phone keypad, else None."""
    if len(key) == 1 and key in DTMF_KEYS:
        return None
    if key.lower() in ("true", "false"):
        return (
            f"'{key}' is not a DTMF key: YAML read an unquoted yes/no/on/off as true/false; "
            "use one of 0-9, * or # (quote * and #)"
        )
    return f"'{key}' is not a DTMF key; a menu option is one of 0-9, * or # (quote * and #)"
