"""The statistics' rollups in the shared store, on both engines (SQLite in the unit lane, a real
PostgreSQL server in the full lane): the same questions give the same answers; two nodes
writing their batches at once count each call once; a rebuild while a node holds a batch not
yet written counts it once; a node's catch-up adds another node's lost calls once."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flexvoice.calls import CallRegistry
from flexvoice.cli import main
from flexvoice.statistics.collector import Collector
from flexvoice.statistics.query import ask
from flexvoice.statistics.question import make_question
from flexvoice.statistics.rebuild import rebuild, verify
from flexvoice.statistics.rollup import differences, read_rows, recompute
from flexvoice.storage import postgres, sqlite
from flexvoice.storage.engine import Connection
from flexvoice.storage.postgres import PgConnection
from tests.statskit import World, random_script, world, world_on

MARCH = datetime(2026, 3, 1, tzinfo=UTC)


def another(conn: Connection) -> Connection:
    """A second connection to the same store: another node, or a command."""
    if isinstance(conn, PgConnection):
        return postgres.connect(conn.url)
    return sqlite.connect(conn.execute("PRAGMA database_list").fetchone()[2])


def store_url(conn: Connection) -> str:
    if isinstance(conn, PgConnection):
        return conn.url
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def play(
    w: World, rng: random.Random, calls: int, start: datetime = MARCH, days: float = 30
) -> list[str]:
    """`calls` random calls starting within `days` from `start`."""
    ids = []
    for _ in range(calls):
        at = start + timedelta(seconds=rng.randrange(0, int(days * 86400)))
        number = rng.choice(["+3226001000", "+3226001001"])
        account = rng.choice(["acme", "acme", "other"])
        ids.append(w.call(random_script(rng), at=at, number=number, account=account))
    return ids


def offered(conn: Connection, start: str = "2026-03-01", end: str = "2026-04-30") -> int:
    return sum(
        int(ask(conn, make_question(a, start, end)).totals["offered"]) for a in ("acme", "other")
    )


def counted(conn: Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM stats_applied").fetchone()[0])


def flush_at_once(*nodes: World) -> list[int]:
    """Each node writes its batch in a thread of its own, all starting together."""
    start = threading.Barrier(len(nodes))
    written = [0] * len(nodes)
    errors: list[BaseException] = []

    def flush(i: int) -> None:
        start.wait()
        try:
            written[i] = nodes[i].collector.flush()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=flush, args=(i,)) for i in range(len(nodes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return written


QUESTIONS = [
    ("Europe/Brussels", "number,hour"),
    ("Europe/Brussels", "date"),
    ("Asia/Kolkata", "flow,date"),
    ("Asia/Kathmandu", "hour"),
    ("UTC", "outcome,dow"),
    ("UTC", "step"),
    ("America/St_Johns", "queue,month"),
    ("UTC", "quarter"),
]


def test_the_same_questions_give_the_same_answers_on_either_engine(store_db: Connection) -> None:
    shared, reference = world_on(store_db), world()
    for w in (shared, reference):
        play(w, random.Random(16), 120)
    assert not differences(read_rows(store_db), recompute(store_db, shared.registry))
    assert read_rows(store_db) == read_rows(reference.conn)
    for tz, group_by in QUESTIONS:
        for account in ("acme", "other"):
            q = make_question(account, "2026-03-01", "2026-03-31", tz, group_by)
            got, want = ask(store_db, q), ask(reference.conn, q)
            assert got.rows == want.rows and got.totals == want.totals, (tz, group_by)
            assert got.rows, (tz, group_by)


def test_two_nodes_writing_batches_at_once_count_each_call_once(store_db: Connection) -> None:
    a = world_on(store_db, batch=10_000, node="node-a")
    b = world_on(another(store_db), batch=10_000, node="node-b")
    rng = random.Random(17)
    total = 0
    for _ in range(3):
        mine_a, mine_b = play(a, rng, 25), play(b, rng, 25)
        total += 50
        # Each node also holds some of the other's calls (its catch-up found them ended).
        for call_id in mine_a[::2]:
            assert b.collector.add_call(b.registry.get(call_id))
        for call_id in mine_b[::3]:
            assert a.collector.add_call(a.registry.get(call_id))
        written = flush_at_once(a, b)
        assert sum(written) == 50, written
        assert counted(store_db) == total
    assert not differences(read_rows(store_db), recompute(store_db, a.registry))
    assert offered(store_db) == total


def test_a_rebuild_while_a_node_holds_a_batch_counts_each_call_once(
    store_db: Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    node = world_on(store_db, batch=10_000, node="node-a")
    now = datetime.now(UTC).replace(microsecond=0)
    node.clock.now = now
    rng = random.Random(18)
    play(node, rng, 30, start=now - timedelta(days=30), days=20)
    assert node.collector.flush() == 30
    # 20 more calls end; the node has not written them yet (it writes every second).
    play(node, rng, 20, start=now - timedelta(days=2), days=1)
    assert len(node.collector.pending) == 20
    # The operator rebuilds the statistics meanwhile, from another process.
    assert main(["statistics", "rebuild", "--db", store_url(store_db)]) == 0
    assert "rebuilt from 50 ended calls" in capsys.readouterr().out
    assert node.collector.flush() == 0  # the rebuild counted them: not again
    one_more = play(node, rng, 1, start=now - timedelta(hours=1), days=0.01)
    assert node.collector.flush() == 1  # a call ending after the rebuild is the node's
    assert not differences(read_rows(store_db), recompute(store_db, node.registry))
    month = (now - timedelta(days=31)).date().isoformat(), now.date().isoformat()
    assert offered(store_db, *month) == 51
    assert main(["statistics", "verify", "--db", store_url(store_db)]) == 0
    assert "equal a recomputation" in capsys.readouterr().out
    # A rebuild in the same process (the registry's own connection) says the same.
    tool = another(store_db)
    assert rebuild(tool, CallRegistry(tool), now=now) == 51
    assert not verify(tool, CallRegistry(tool)) and one_more


def test_verify_says_which_rows_differ(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = world(str(tmp_path / "store.db"))
    play(w, random.Random(19), 10)
    w.conn.execute("UPDATE stats_calls SET offered = offered + 1 WHERE grain = 86400")
    assert main(["statistics", "verify", "--db", str(tmp_path / "store.db")]) == 1
    out = capsys.readouterr().out
    assert "stats_calls" in out and "flexvoice statistics rebuild" in out
    assert main(["statistics", "rebuild", "--db", str(tmp_path / "store.db")]) == 0
    assert main(["statistics", "verify", "--db", str(tmp_path / "store.db")]) == 0


def test_a_nodes_catch_up_adds_another_nodes_lost_calls_once(store_db: Connection) -> None:
    a = world_on(store_db, node="node-a")
    b = world_on(another(store_db), batch=10_000, node="node-b")
    rng = random.Random(20)
    late = MARCH + timedelta(days=25)
    play(a, rng, 5, start=late, days=5)
    play(b, rng, 7, start=late, days=5)  # node B dies with its batch: never written
    b.conn.close()
    restarted = Collector(store_db, a.registry, clock=lambda: MARCH + timedelta(days=31))
    assert restarted.catch_up() == 7  # node A starting again adds B's calls
    assert restarted.catch_up() == 0
    assert not differences(read_rows(store_db), recompute(store_db, a.registry))
    assert offered(store_db) == 12
