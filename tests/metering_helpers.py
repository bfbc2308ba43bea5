"""Builders for usage events and stores used by the metering tests."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

from flexvoice.accounts import create_account
from flexvoice.metering.sink import UsageSink
from flexvoice.metering.store import StatementLine, UsageStore
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.storage.sqlite import connect
from tests.conftest import REPO, node_store

TARIFFS = REPO / "metering" / "tariffs"


def make_store(tmp: Path, tariffs: Path | None = None, **accounts: str) -> UsageStore:
    """A store on a fresh database; accounts given as name=tariff (default: acme, vms)."""
    folder = tariffs or TARIFFS
    conn = connect(tmp / "usage.db")
    for name, tariff in (accounts or {"acme": "flexio-payu", "vms": "vms-smart-routing"}).items():
        create_account(conn, name, tariff, folder)
    return UsageStore(conn, load_tariffs(folder))


def copy_tariffs(tmp: Path) -> Path:
    folder = tmp / "tariffs"
    shutil.copytree(TARIFFS, folder)
    return folder


def call(
    cid: str,
    seconds: int | None,
    to: str = "+32470123456",
    start: str = "2024-03-05T10:00:00+01:00",
    direction: str = "outbound",
    account: str = "acme",
) -> dict[str, Any]:
    """A call answered 5 s after `start` lasting `seconds` (None: never answered)."""
    base = start[:17]  # 'YYYY-MM-DDTHH:MM:'; seconds and durations are added below
    offset = start[19:]

    def at(sec: int) -> str:
        minutes, s = divmod(sec, 60)
        hh, mm = int(base[11:13]), int(base[14:16]) + minutes
        hh, mm = hh + mm // 60, mm % 60
        return f"{base[:11]}{hh:02d}:{mm:02d}:{s:02d}{offset}"

    return {
        "id": f"{cid}:leg",
        "account": account,
        "kind": "call",
        "direction": direction,
        "from": "+3225551234",
        "to": to,
        "started_at": start,
        "answered_at": None if seconds is None else at(5),
        "ended_at": at(5 + (seconds or 0)),
    }


def sms(sid: str, body: str, sent_at: str = "2024-03-05T10:00:00+01:00") -> dict[str, Any]:
    return {
        "id": sid,
        "account": "acme",
        "kind": "sms",
        "from": "Acme",
        "to": "+32470123456",
        "sent_at": sent_at,
        "body": body,
    }


def lines(statement: list[StatementLine]) -> dict[tuple[str, str], StatementLine]:
    return {(s.account, s.service): s for s in statement}


def amount(statement: list[StatementLine], account: str, service: str) -> Decimal | None:
    return lines(statement)[(account, service)].amount


def usage_events(tmp_path: Path) -> list[dict[str, Any]]:
    """The usage events in the store of the node configured in tmp_path, whatever the engine."""
    store = UsageStore(node_store(tmp_path / "flexvoice.yaml"), load_tariffs(TARIFFS))
    try:
        rows = store.conn.execute("SELECT payload FROM usage_events ORDER BY id").fetchall()
    finally:
        store.conn.close()
    return [json.loads(r[0]) for r in rows]


def make_sink(tmp_path: Path) -> UsageSink:
    db = tmp_path / "usage.db"
    return UsageSink(
        tmp_path / "spool", lambda: UsageStore(connect(db), load_tariffs(TARIFFS)), interval=60
    )
