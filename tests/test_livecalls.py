"""The call registry's live calls in memory (flexvoice.livecalls): always what the database
holds, gone once final, forgotten when an event's transaction is rolled back; and calls the
registry did not create read from the database (fast: no subprocess)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flexvoice.callrecords import CallRecord
from flexvoice.calls import CallPrice, CallRegistry
from flexvoice.storage.sqlite import connect

CHILD = "CA" + "2" * 32


class Hooks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def enqueue(self, account: str, url: str, event: str, payload: dict[str, Any]) -> None:
        self.sent.append((event, payload["call"]["id"]))


class Pricer:
    def price_usage(self, event: dict[str, Any]) -> CallPrice:
        return CallPrice(60, Decimal("0.37"))


def registry(db: Path, hooks: Hooks | None = None) -> CallRegistry:
    return CallRegistry(connect(db), webhooks=hooks or Hooks(), pricer=Pricer())


def new_call(reg: CallRegistry) -> CallRecord:
    return reg.create(
        account="acme",
        direction="inbound",
        from_number="+32470000001",
        to_number="+3225551001",
        flow="connect",
        status_callback="https://crm.example/h",
        status_events=("ringing", "answered", "completed"),
    )


def stored(db: Path, call_id: str) -> CallRecord | None:
    """The row as another connection reads it (what a restarted node would see)."""
    return CallRegistry(connect(db)).get(call_id)


def test_a_live_call_is_what_the_database_holds_and_leaves_memory_when_final(
    tmp_path: Path,
) -> None:
    db = tmp_path / "calls.db"
    reg = registry(db)
    call = new_call(reg)
    assert reg.live.get(call.id) == stored(db, call.id) == call
    for kind, data in (
        ("initiated", {"at": "2026-03-02T09:00:00+00:00"}),
        ("ringing", {"sip_status": 180}),
        ("answered", {"sip_status": 200, "at": "2026-03-02T09:00:02+00:00"}),
    ):
        reg.call_event(call.id, kind, data)
        assert reg.live.get(call.id) == stored(db, call.id), kind
    live = reg.live.get(call.id)
    assert live is not None and live.status == "in-progress" and live.answered_at is not None
    reg.call_event(call.id, "ended", {"sip_status": 200, "at": "2026-03-02T09:00:40+00:00"})
    assert reg.live.get(call.id) is None and len(reg.live) == 0
    assert reg.live.open_legs(call.id) is None  # completed: nothing remembered
    final = stored(db, call.id)
    assert final is not None and final.status == "completed" and final.price_eur == "0.3700"
    assert reg.get(call.id) == final


def test_a_parent_ended_first_completes_with_its_last_leg(tmp_path: Path) -> None:
    hooks = Hooks()
    reg = registry(tmp_path / "calls.db", hooks)
    parent = new_call(reg)
    reg.call_event(CHILD, "leg", {"parent_call_id": parent.id, "to": "+32470555001"})
    assert reg.live.open_legs(parent.id) is True
    reg.call_event(parent.id, "ended", {"sip_status": 487, "outcome": "canceled"})
    assert reg.live.get(parent.id) is None and reg.live.open_legs(parent.id) is True
    assert ("completed", parent.id) not in hooks.sent
    reg.call_event(CHILD, "ended", {"sip_status": 486})
    assert ("completed", parent.id) in hooks.sent
    assert reg.live.open_legs(parent.id) is None and len(reg.live) == 0


def test_a_failed_event_is_rolled_back_whole_and_its_call_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "calls.db"
    reg = registry(db)
    call = new_call(reg)
    reg.call_event(call.id, "answered", {"sip_status": 200})
    trace = reg._trace

    def failing(call_id: str, kind: str, data: dict[str, object]) -> None:
        if kind == "ended":  # after the row's UPDATE, in the same transaction
            raise RuntimeError("disk full")
        trace(call_id, kind, data)

    monkeypatch.setattr(reg, "_trace", failing)
    reg.call_event(call.id, "ended", {"sip_status": 200})  # logged, not raised
    # Nothing of the event is stored (not a final status without its trace), and the memory
    # does not claim otherwise.
    row = stored(db, call.id)
    assert row is not None and row.status == "in-progress"
    assert reg.get(call.id) == row and not reg.conn.in_transaction
    monkeypatch.setattr(reg, "_trace", trace)
    reg.call_event(call.id, "ended", {"sip_status": 200})
    assert reg.get(call.id).status == "completed"  # type: ignore[union-attr]
    assert [e["kind"] for e in reg.events(call.id)].count("ended") == 1


def test_a_call_left_open_by_a_dead_node_is_read_from_the_database(tmp_path: Path) -> None:
    db = tmp_path / "calls.db"
    dead = registry(db)
    call = new_call(dead)
    dead.call_event(CHILD, "leg", {"parent_call_id": call.id, "to": "+32470555001"})
    hooks = Hooks()
    reg = registry(db, hooks)  # the restarted node: nothing in memory
    assert reg.live.get(call.id) is None and reg.get(call.id) == call
    reg.call_event(call.id, "ended", {"sip_status": 487, "outcome": "canceled"})
    assert ("completed", call.id) not in hooks.sent  # its leg is still open (database)
    reg.call_event(CHILD, "ended", {"sip_status": 486})
    assert ("completed", call.id) in hooks.sent
    assert reg.get(call.id).status == "canceled"  # type: ignore[union-attr]
