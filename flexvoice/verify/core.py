"""The rules of a verification, without I/O. Time is passed in.

- A code is `secrets`-random digits; only HMAC-SHA256(server secret, id NUL code) is stored,
  compared with `hmac.compare_digest`.
- Valid `validity` seconds (10 min); at most `max_checks` checks (5), then
  max_attempts_reached; at most `max_sends` sends to one number per `send_window` (5 per
  10 min); at most `prefix_rate` sends per minute to one number prefix (SMS pumping spreads
  over many numbers of one range).
- Destinations: the account's allowed countries (default: the home country), never premium
  rate or shared cost numbers; SMS only to mobiles.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from flexvoice import e164
from flexvoice.metering.destinations import BadNumber, classify

Status = Literal["pending", "approved", "canceled", "expired", "max_attempts_reached"]
Channel = Literal["sms", "voice"]
REFUSED_TYPES = frozenset({"premium_rate", "shared_cost", "uan", "personal_number", "pager"})
PREFIX_DIGITS = 4  # after the country code


@dataclass(frozen=True)
class Policy:
    validity: float = 600.0
    max_checks: int = 5
    max_sends: int = 5
    send_window: float = 600.0
    prefix_rate: int = 30  # per minute
    countries: tuple[str, ...] = ("BE",)


class Refused(Exception):
    """The destination may not receive codes; the message says why and what to change."""


def new_code(length: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(length))


def code_mac(secret: bytes, verification_id: str, code: str) -> str:
    return hmac.new(secret, f"{verification_id}\x00{code}".encode(), hashlib.sha256).hexdigest()


def code_matches(secret: bytes, verification_id: str, code: str, stored_mac: str) -> bool:
    return hmac.compare_digest(code_mac(secret, verification_id, code), stored_mac)


def check_destination(to: str, channel: Channel, countries: Sequence[str]) -> None:
    try:
        kind = classify(to)
    except BadNumber as exc:
        raise Refused(f"to: {exc}") from None
    region, _, number_type = kind.partition(" ")
    if number_type in REFUSED_TYPES:
        raise Refused(
            f"to: {to} is a {number_type.replace('_', ' ')} number; verification codes never go "
            "to premium-rate or shared-cost numbers (toll fraud)"
        )
    if region not in countries:
        raise Refused(
            f"to: {to} is in {region}; this account may send codes to {', '.join(countries)} "
            "only (the operator can add countries in messaging.accounts.<account>."
            "verify_countries)"
        )
    if channel == "sms" and number_type not in ("mobile", "fixed_or_mobile"):
        raise Refused(f"to: {to} is a {number_type} number; use channel 'voice' for it")


def prefix_of(to: str) -> str:
    """Country code and the next PREFIX_DIGITS digits: the range a pumping attack walks."""
    try:
        cc = str(e164.parse(to).country_code)
    except ValueError:
        cc = to[1:3]
    return to[: 1 + len(cc) + PREFIX_DIGITS]


def send_wait(sends_in_window: Sequence[float], now: float, policy: Policy) -> float:
    """Seconds until another send to this number is allowed (0: now)."""
    recent = sorted(t for t in sends_in_window if t > now - policy.send_window)
    if len(recent) < policy.max_sends:
        return 0.0
    return recent[len(recent) - policy.max_sends] + policy.send_window - now


def prefix_wait(prefix_sends: Sequence[float], now: float, policy: Policy) -> float:
    recent = sorted(t for t in prefix_sends if t > now - 60.0)
    if len(recent) < policy.prefix_rate:
        return 0.0
    return recent[len(recent) - policy.prefix_rate] + 60.0 - now


@dataclass(frozen=True)
class CheckOutcome:
    status: Status
    counted: bool  # False: the verification was not pending (the API answers 404)


def after_check(matched: bool, checks: int, policy: Policy) -> Status:
    """Status after check number `checks` (1-based)."""
    if matched:
        return "approved"
    return "max_attempts_reached" if checks >= policy.max_checks else "pending"
