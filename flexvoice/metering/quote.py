"""The price of one usage event before it is recorded: metering's own parsing and rating
under the account's tariff, so what a resource shows is what the statement charges."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flexvoice.accounts import Account, get_account
from flexvoice.metering.events import EventError, parse_event
from flexvoice.metering.rating import Unrated, rate
from flexvoice.metering.tariffs import TariffBook
from flexvoice.storage.engine import Connection


def quote(
    conn: Connection,
    tariffs: TariffBook | None,
    event: dict[str, Any],
    account: Account | None = None,
) -> tuple[Decimal | None, str | None]:
    """(amount, None) or (None, why it is not priced). `account`: the event's account when
    the caller has it at hand (read from `conn` otherwise)."""
    if account is None or account.name != event.get("account"):
        account = get_account(conn, str(event.get("account")))
    if account is None:
        return None, f"account '{event.get('account')}' does not exist"
    tariff = tariffs.get(account.tariff) if tariffs is not None else None
    if tariff is None:
        return None, f"the account's tariff '{account.tariff}' is not loaded"
    try:
        parsed = parse_event(event)
    except EventError as exc:
        return None, f"cannot be priced: {exc}"
    charge = rate(parsed, tariff)
    if isinstance(charge, Unrated):
        return None, charge.reason
    return charge.amount, None
