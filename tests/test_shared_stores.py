"""The stores that several nodes share, on both engines (SQLite in the unit lane, a real
PostgreSQL server in the full lane): the call registry, recordings' rows, flow revisions,
designer users and sessions, webhook deliveries, and the statistics' catch-up reading calls
from the shared store. The same assertions hold on both: one set of SQL, one of migrations."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flexvoice import accounts, users
from flexvoice.api.webhooks import WebhookQueue
from flexvoice.calls import CallRegistry
from flexvoice.errors import UserError
from flexvoice.flows import revisions
from flexvoice.metering.sink import StoreSink
from flexvoice.metering.store import UsageStore
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.recordings.store import RecordingRow, RecordingStore
from flexvoice.statistics.collector import Collector
from flexvoice.storage import sqlite
from flexvoice.storage.engine import Connection, both, is_postgres
from flexvoice.storage.migrate import migrate
from tests.metering_helpers import TARIFFS

CALLER, NUMBER = "+32470000001", "+3225551001"


def _call(reg: CallRegistry, **extra: str) -> str:
    return reg.create(
        account="acme",
        direction="inbound",
        from_number=CALLER,
        to_number=NUMBER,
        flow="support",
        **extra,  # type: ignore[arg-type]
    ).id


def test_the_registry_keeps_calls_legs_and_traces_on_either_engine(store_db: Connection) -> None:
    reg = CallRegistry(store_db, node="node-a", clock=lambda: "2026-12-01T10:00:00.000+00:00")
    parent = _call(reg)
    # Legs dialled within the same millisecond keep the order they were dialled in.
    legs = [f"CA{i:032d}" for i in (9, 1, 5)]
    for leg in legs:
        reg.call_event(leg, "leg", {"parent_call_id": parent, "to": "+32470555001"})
    assert [c.id for c in reg.children(parent)] == legs
    reg.call_event(parent, "answered", {"at": "2026-12-01T10:00:01.000+00:00"})
    reg.call_event(parent, "ended", {"sip_status": 200, "at": "2026-12-01T10:01:02.000+00:00"})
    done = reg.get(parent)
    assert done is not None and done.status == "completed" and done.billable_seconds == 61
    assert [e["kind"] for e in reg.events(parent)][-1] == "ended"
    assert [e["seq"] for e in reg.events(parent)] == sorted(e["seq"] for e in reg.events(parent))
    assert reg.get(parent, account="other") is None
    assert [c.id for c in reg.list("acme", status="completed")] == [parent]


def test_a_node_sees_only_its_own_open_calls_in_a_shared_store(store_db: Connection) -> None:
    a = CallRegistry(store_db, node="node-a")
    b = CallRegistry(store_db, node="node-b")
    mine, theirs = _call(a), _call(b)
    assert {c.id for c in a.open_calls()} == {mine, theirs}  # one node: everything open
    assert [c.id for c in a.open_calls("node-a")] == [mine]
    assert [c.id for c in b.open_calls("node-b")] == [theirs]
    # Either node reads, and ends, any call of the store (the API of node B, a call of A).
    b.call_event(mine, "ended", {"outcome": "canceled", "sip_status": 487})
    assert a.open_calls("node-a") == []


def _recording(rec_id: str, call_id: str, status: str = "in-progress") -> RecordingRow:
    return RecordingRow.started(
        rec_id,
        account="acme",
        call_id=call_id,
        kind="call",
        path=f"acme/{rec_id}.wav",
        channels=2,
        at="2026-12-01T10:00:00+00:00",
        status=status,  # type: ignore[arg-type]
    )


def test_recordings_rows_say_which_node_made_them(store_db: Connection) -> None:
    a = RecordingStore(store_db, node="node-a")
    b = RecordingStore(store_db, node="node-b")
    a.insert(_recording("RE1", "CA1"))
    b.insert(_recording("RE2", "CA2"))
    # At its start a node closes the recordings it left open, not those B is still making.
    assert [r.id for r in a.with_status(["in-progress"], mine=True)] == ["RE1"]
    assert {r.id for r in a.with_status(["in-progress"])} == {"RE1", "RE2"}
    row = a.get("RE1")
    assert row is not None
    done = a.update(row, status="completed", duration_seconds=12.345, size_bytes=1 << 33)
    assert b.get("RE1") == done  # 64-bit sizes, exact float durations on both engines
    assert b.get("RE1", account="other") is None
    assert [r.id for r in b.list("acme", call_id="CA1")] == ["RE1"]


def test_flow_revisions_drafts_and_testers(store_db: Connection) -> None:
    first = revisions.record(store_db, "support", "a: 1\n", "anna@bakery.be", "first")
    second = revisions.record(store_db, "support", "a: 2\n", "anna@bakery.be", "second")
    assert second.id > first.id
    assert [r.id for r in revisions.revisions(store_db, "support")] == [second.id, first.id]
    assert revisions.get_revision(store_db, "support", first.id) == first
    revisions.save_draft(store_db, "support", "a: 3\n", "anna@bakery.be")
    revisions.save_draft(store_db, "support", "a: 4\n", "bert@bakery.be")
    draft = revisions.get_draft(store_db, "support")
    assert draft is not None and draft.text == "a: 4\n" and draft.author == "bert@bakery.be"
    revisions.set_testers(store_db, "support", ["+32470000002", "+32470000001", "+32470000002"])
    assert revisions.testers(store_db, "support") == ["+32470000001", "+32470000002"]


def test_designer_users_belong_to_accounts_of_the_same_store(store_db: Connection) -> None:
    with pytest.raises(UserError, match="no account 'acme'"):
        users.create_user(store_db, "anna@bakery.be", "acme", "manager", "a long passphrase")
    accounts.create_account(store_db, "acme", "flexio-payu")
    user = users.create_user(store_db, "Anna@Bakery.be", "acme", "manager", "a long passphrase")
    assert user.email == "anna@bakery.be"
    with pytest.raises(UserError, match="already exists"):
        users.create_user(store_db, "anna@bakery.be", "acme", "agent", "another passphrase")
    now = time.time()
    token = users.open_session(store_db, user, now=now)
    found = users.find_session(store_db, token, now=now + users.SESSION_TTL_S - 1)
    assert found is not None and found.user == user
    # The expiry is kept to the second and beyond (double precision, not PostgreSQL's REAL).
    assert users.find_session(store_db, token, now=now + users.SESSION_TTL_S + 1) is None
    for _ in range(users.MAX_FAILURES - 1):
        with pytest.raises(users.LoginRefused):
            users.record_login(store_db, user.email, False)
    with pytest.raises(users.LoginRefused) as refused:
        users.record_login(store_db, user.email, False)
    assert refused.value.locked and users.find_session(store_db, token, now=now) is None


def test_two_nodes_delivering_one_webhook_queue_take_each_row_once(
    store_db: Connection,
) -> None:
    clock = [1_800_000_000.25]
    a = WebhookQueue(store_db, lambda _: "secret", timeout_s=10, clock=lambda: clock[0])
    b = WebhookQueue(store_db, lambda _: "secret", timeout_s=10, clock=lambda: clock[0])
    a.enqueue("acme", "http://127.0.0.1:9/hook", "completed", {"call": {"id": "CA1"}})
    taken = a._claim(clock[0])
    assert len(taken) == 1 and isinstance(taken[0][4], bytes) and b'"CA1"' in taken[0][4]
    assert b._claim(clock[0]) == []  # node B leaves the row node A is delivering
    clock[0] += 10 + 31  # node A died mid-attempt: past its timeout, B takes the row over
    assert [r[0] for r in b._claim(clock[0])] == [taken[0][0]]
    assert a.stats() == {"pending": 1}


class _Registry:
    def __init__(self, reg: CallRegistry):
        self.reg = reg

    def get(self, call_id: str, account: str | None = None) -> object:
        return self.reg.get(call_id, account)

    def events(self, call_id: str) -> list[dict[str, object]]:
        return self.reg.events(call_id)


def test_statistics_catch_up_reads_this_nodes_calls_from_the_shared_store(
    store_db: Connection, tmp_path: Path
) -> None:
    """The rollups stay in the node's own file; the calls are in the shared store."""
    a = CallRegistry(store_db, node="node-a")
    b = CallRegistry(store_db, node="node-b")
    for reg in (a, b):
        call = _call(reg)
        reg.call_event(call, "answered", {})
        reg.call_event(call, "ended", {"sip_status": 200})
    own = sqlite.connect(tmp_path / "node-a.db")
    collector = Collector(own, _Registry(a), calls_db=store_db, node="node-a")
    assert collector.catch_up() == 1  # node A's call only: B adds its own
    assert collector.catch_up() == 0  # once


def test_a_migration_script_runs_on_both_engines(store_db: Connection) -> None:
    migrate(
        store_db, "probe", [both("CREATE TABLE probe (n INTEGER PRIMARY KEY, at REAL, b BLOB)")]
    )
    store_db.execute("INSERT INTO probe (at, b) VALUES (?, ?)", (1_800_000_000.125, b"\x00\xff"))
    assert tuple(store_db.execute("SELECT n, at, b FROM probe").fetchone()) == (
        1,
        1_800_000_000.125,
        b"\x00\xff",
    )


def test_a_refused_event_of_a_one_shot_command_is_kept_in_the_given_spool(
    store_db: Connection, tmp_path: Path
) -> None:
    """`flexvoice numbers add` on PostgreSQL: the node's spool, not ./var/usage-spool."""
    sink = StoreSink(UsageStore(store_db, load_tariffs(TARIFFS)), tmp_path / "node" / "spool")
    event = {"id": "n1", "account": "ghost", "kind": "reroute", "number": NUMBER, "at": "x"}
    with pytest.raises(UserError) as refused:
        sink.record(event)
    kept = sink.spool / "rejected.jsonl"
    assert str(sink.spool) in str(refused.value) and '"n1"' in kept.read_text()
    if is_postgres(store_db):
        assert sink.spool == tmp_path / "node" / "spool"
    else:  # beside the SQLite file the event was refused by
        assert sink.spool == tmp_path / "usage-spool"
