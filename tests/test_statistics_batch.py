"""The collector's batches (a node writes ended calls 200 at a time or every second): the rollups
still equal a recomputation, a batch lost with its process is added by the catch-up, and no
call counts twice whoever else added it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flexvoice.calls import CallRegistry
from flexvoice.statistics.collector import Collector
from flexvoice.statistics.query import ask
from flexvoice.statistics.question import make_question
from flexvoice.statistics.rollup import differences, read_rows, recompute
from flexvoice.storage.sqlite import connect
from tests.statskit import Clock, World, answered_by_agent, random_script


class Timer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def batched_world(path: str = ":memory:", batch: int = 10) -> tuple[World, Timer]:
    conn = connect(path)
    clock, timer = Clock(), Timer()
    registry = CallRegistry(conn, clock=clock.iso)
    collector = Collector(conn, registry, clock=lambda: clock.now, batch=batch, timer=timer)
    registry.listeners.append(collector.listener)
    return World(conn, clock, registry, collector), timer


def applied(w: World) -> int:
    return int(w.conn.execute("SELECT COUNT(*) FROM stats_applied").fetchone()[0])


def offered(w: World, account: str = "acme") -> int:
    q = make_question(account, "2026-03-01", "2026-03-31")
    return int(ask(w.conn, q).totals["offered"])


def test_a_batch_is_written_when_full_or_late_and_equals_a_recomputation() -> None:
    w, timer = batched_world(batch=10)
    rng = random.Random(4)
    ids = [w.call(random_script(rng)) for _ in range(25)]
    assert applied(w) == 20 and len(w.collector.pending) == 5
    # The same call ending twice while it waits in the batch counts once.
    w.registry.call_event(ids[-1], "ended", {"sip_status": 200, "cause": "normal"})
    assert len(w.collector.pending) == 5
    assert not w.collector.due()
    timer.now += 1.0  # the oldest waiting call is a second old: the next end writes the batch
    assert w.collector.due()
    w.call(answered_by_agent())
    assert applied(w) == 26 and not w.collector.pending
    assert not differences(read_rows(w.conn), recompute(w.conn, w.registry))
    assert offered(w) == 26


def test_a_batch_lost_with_its_process_is_added_by_the_catch_up(tmp_path: Path) -> None:
    db = tmp_path / "stats.db"
    w, _ = batched_world(str(db), batch=50)
    rng = random.Random(5)
    for i in range(30):
        at = datetime(2026, 3, 10, tzinfo=UTC) + timedelta(minutes=7 * i)
        w.call(random_script(rng), at=at, account=rng.choice(["acme", "other"]))
    assert applied(w) == 0 and len(w.collector.pending) == 30
    w.conn.close()  # the node dies: the batch was never committed
    conn = connect(db)
    registry = CallRegistry(conn)
    collector = Collector(conn, registry, clock=lambda: datetime(2026, 3, 12, tzinfo=UTC))
    assert collector.catch_up() == 30
    assert not differences(read_rows(conn), recompute(conn, registry))
    assert collector.catch_up() == 0
    total = sum(
        ask(conn, make_question(a, "2026-03-01", "2026-03-31")).totals["offered"]
        for a in ("acme", "other")
    )
    assert total == 30


def test_a_call_another_writer_added_meanwhile_counts_once() -> None:
    w, _ = batched_world(batch=10)
    rng = random.Random(6)
    ids = [w.call(random_script(rng)) for _ in range(4)]
    # A tool with its own collector on the same database adds one of the waiting calls.
    other = Collector(w.conn, w.registry, clock=lambda: w.clock.now)
    call = w.registry.get(ids[1])
    assert call is not None and other.add_call(call)
    assert w.collector.flush() == 3
    assert applied(w) == 4 and offered(w) == 4
    assert not differences(read_rows(w.conn), recompute(w.conn, w.registry))
