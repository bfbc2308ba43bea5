"""The live usage sink: durable spool, batched import, nothing lost or doubled on a crash."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import web

from flexvoice.accounts import create_account
from flexvoice.appkeys import USAGE_SINK
from flexvoice.config import Config, PathsConfig, StorageConfig
from flexvoice.metering.store import UsageStore
from flexvoice.metering.tariffs import load_tariffs
from flexvoice.node.assembly import build_app
from flexvoice.node.shared import tariffs_component
from flexvoice.node.usage import usage_component
from flexvoice.storage.sqlite import connect
from tests.conftest import REPO, cli_env
from tests.metering_helpers import TARIFFS, amount, call, make_sink, make_store


def _count(tmp_path: Path) -> int:
    with connect(tmp_path / "usage.db") as conn:
        return int(conn.execute("SELECT count(*) FROM usage_events").fetchone()[0])


async def test_record_then_flush_imports_in_a_batch(tmp_path: Path) -> None:
    make_store(tmp_path)  # creates the accounts
    sink = make_sink(tmp_path)
    await sink.start()
    for i in range(50):
        sink.record(call(f"c{i}", 61))
    assert _count(tmp_path) == 0  # nothing on the caller's path touches the database
    report = await sink.flush()
    assert (report.imported, report.duplicates) == (50, 0)
    sink.record({**call("ghost", 5), "account": "nobody"})
    await sink.stop()
    store = UsageStore(connect(tmp_path / "usage.db"), load_tariffs(TARIFFS))
    assert amount(store.statement("2024-03"), "acme", "voice_out_mobile") == Decimal("37.00")
    spool = tmp_path / "spool"
    [kept] = [json.loads(x) for x in (spool / "rejected.jsonl").read_text().splitlines()]
    assert kept["id"] == "ghost:leg"
    assert "ghost:leg: account: unknown account 'nobody'" in (spool / "rejected.log").read_text()
    # Once the account exists, the kept events import as they are.
    create_account(connect(tmp_path / "usage.db"), "nobody", "flexio-payu")
    again = UsageStore(connect(tmp_path / "usage.db"), load_tariffs(TARIFFS))
    with (spool / "rejected.jsonl").open("rb") as lines:
        assert again.ingest_jsonl(lines).imported == 1


async def test_malformed_event_is_kept_aside_without_failing_the_caller(tmp_path: Path) -> None:
    make_store(tmp_path)
    sink = make_sink(tmp_path)
    await sink.start()
    sink.record({k: v for k, v in call("x", 5).items() if k != "ended_at"})
    sink.record({**call("y", 5), "to": "+15550000000"})
    sink.record({**call("z", 5), "extra": object()})  # not JSON data
    await sink.stop()
    assert _count(tmp_path) == 0
    kept = (tmp_path / "spool" / "rejected.jsonl").read_text().splitlines()
    assert [json.loads(k)["id"] for k in kept] == ["x:leg", "y:leg", "z:leg"]
    reasons = (tmp_path / "spool" / "rejected.log").read_text().splitlines()
    assert "x:leg: ended_at: required field is missing" in reasons[0]
    assert "not a valid number" in reasons[1]
    assert sink.rejected == 3


CHILD = """
import os, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.metering_helpers import call, make_sink
sink = make_sink(Path({tmp!r}))
sink.open()
for i in range(1000):
    sink.record(call(f"k{{i}}", 61))
    if i == 499:
        sink._rotate_and_import()  # half imported, and its file deleted
# Crash: no flush, no close.
os._exit(9)
"""


@pytest.mark.process
async def test_crash_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    make_store(tmp_path)
    child = subprocess.run(
        [sys.executable, "-c", CHILD.format(repo=str(REPO), tmp=str(tmp_path))],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 9, child.stderr
    assert _count(tmp_path) == 500
    # A crash between the import's commit and the file's deletion: the same file again.
    spool = tmp_path / "spool"
    (spool / "batch-00000000000000000001.jsonl").write_text(
        "".join(json.dumps(call(f"k{i}", 61)) + "\n" for i in range(490, 510))
    )
    sink = make_sink(tmp_path)
    report = await asyncio.to_thread(sink.open)
    assert (report.imported, report.duplicates, report.rejected) == (500, 20, [])
    await sink.stop()
    assert _count(tmp_path) == 1000
    assert sorted(p.name for p in spool.iterdir()) == ["current.jsonl"]


async def test_node_component_flushes_on_shutdown(tmp_path: Path) -> None:
    make_store(tmp_path)
    cfg = Config(
        storage=StorageConfig(database=str(tmp_path / "usage.db")),
        paths=PathsConfig(tariffs=str(TARIFFS)),
    )
    app = build_app(cfg, [tariffs_component, usage_component])
    runner = web.AppRunner(app)
    await runner.setup()
    app[USAGE_SINK].record(call("live", 30))
    await runner.cleanup()
    assert _count(tmp_path) == 1


async def test_events_recorded_while_closed_wait_in_the_spool(tmp_path: Path) -> None:
    make_store(tmp_path)
    sink = make_sink(tmp_path)
    sink.record(call("early", 61))  # before start: kept in the spool
    await sink.start()
    assert _count(tmp_path) == 1  # imported when the sink opened
    await sink.stop()
    sink.record(call("late", 61))  # after stop: kept for the next start
    assert _count(tmp_path) == 1
    again = make_sink(tmp_path)
    await again.start()
    await again.stop()
    assert _count(tmp_path) == 2


def test_store_sink_refuses_loudly_and_keeps_the_event(tmp_path: Path) -> None:
    from flexvoice.errors import UserError
    from flexvoice.metering.sink import StoreSink

    store = make_store(tmp_path)
    sink = StoreSink(store)
    sink.record(call("ok", 61))
    with pytest.raises(UserError, match=r"unknown account 'nobody'.*rejected\.jsonl"):
        sink.record({**call("who", 61), "account": "nobody"})
    kept = (tmp_path / "usage-spool" / "rejected.jsonl").read_text().splitlines()
    assert [json.loads(k)["id"] for k in kept] == ["who:leg"]
    assert _count(tmp_path) == 1
