"""Calls whose worker or node dies (issue 12, items 4 and 6). kill -9 of the whole node with a
call up: the call is closed at the next start with `ended_by: node_lost`, billed from its
answer to the node's last heartbeat, one usage event for the leg; a second restart bills
nothing again. kill -9 of a worker: the edge sends the carrier a BYE at once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.conftest import node_db, node_store, run_cli, write_node_config
from tests.nodekit import (
    edge_loads,
    http_port,
    start_node,
    stop,
    wait_http,
    wait_workers,
    worker_pids,
)
from tests.poolkit import tone
from tests.sipptool import counts, uac_args

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.xdist_group("sipnode")]


def long_call_node(tmp_path: Path) -> tuple[Path, int]:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    tone(prompts / "long.wav", 40.0)
    numbers = tmp_path / "numbers.yaml"
    numbers.write_text(
        "accounts:\n  bakery: {tariff: flexio-payu}\nnumbers:\n"
        '  "+3225551003": {account: bakery, prompt: long}\n'
    )
    config = write_node_config(tmp_path, workers=1)
    doc = yaml.safe_load(config.read_text())
    doc["sip"]["numbers"] = str(numbers)
    doc["paths"]["prompts"] = str(prompts)
    doc["logging"] = {"level": "info"}
    config.write_text(yaml.safe_dump(doc))
    return config, int(doc["sip"]["edge"]["port"])


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    """From the node's own SQLite file (live_legs: per node, whatever the shared engine)."""
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


def shared_rows(config: Path, sql: str) -> list[tuple[object, ...]]:
    """From the node's shared store (calls), whatever the engine."""
    conn = node_store(config)
    try:
        return [tuple(row) for row in conn.execute(sql)]
    finally:
        conn.close()


def answered_caller(
    config: Path, proc: subprocess.Popen[str], sip_port: int, db: Path, timeout: int
) -> subprocess.Popen[str]:
    """Once the node is up, a sipp caller that stays until it gets a BYE; returned once its
    leg has a heartbeat row (or after 20 s, and the test's look-up fails)."""
    wait_http(http_port(config), "/healthz", proc, timeout=60)
    wait_workers(http_port(config), proc, 1)
    caller = subprocess.Popen(
        uac_args("uac_until_bye.xml", f"127.0.0.1:{sip_port}", "+3225551003", timeout=timeout),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not rows(db, "SELECT call_id FROM live_legs"):
        time.sleep(0.2)
    return caller


def test_kill_9_mid_call_bills_the_call_to_the_last_heartbeat_once(tmp_path: Path) -> None:
    """The node and its worker die together (kill -9 of both, as the OOM killer of a cgroup or
    a power cut would): nobody is left to hang up. The edge, stopped by the kernel with the
    node, wrote its dialogs down; at the next start it sends the caller a BYE, and the call is
    billed to the last heartbeat."""
    config, sip_port = long_call_node(tmp_path)
    db = tmp_path / "flexvoice.db"
    proc = start_node(config)
    caller = None
    try:
        caller = answered_caller(config, proc, sip_port, db, timeout=90)
        [(call_id, answered_at)] = rows(db, "SELECT call_id, answered_at FROM live_legs")
        time.sleep(5)  # talking: two or three heartbeats
        workers = worker_pids(proc.pid, config)
        os.killpg(proc.pid, signal.SIGSTOP)  # so the node cannot see its worker die
        for pid in workers.values():
            os.kill(pid, signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        killed_at = time.time()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if caller is not None and caller.poll() is not None:
            pytest.fail(f"the caller's call ended before the restart: {caller.communicate()[0]}")
    # Dead: the call is still in progress in the database, its leg noted live.
    assert shared_rows(config, f"SELECT status FROM calls WHERE id = '{call_id}'") == [
        ("in-progress",)
    ]

    for run in (1, 2):  # the second restart must find nothing left to close
        proc = start_node(config)
        try:
            wait_http(http_port(config), "/healthz", proc, timeout=60)
            wait_workers(http_port(config), proc, 1)
            if run == 1:  # the edge's BYE reached the caller, which answered it
                out, _ = caller.communicate(timeout=20)
                assert counts(out) == (1, 0), out[-3000:]
            time.sleep(1.5)  # the usage spool's import (every 0.5 s)
        finally:
            if caller.poll() is None:
                caller.kill()
            err = stop(proc)
        closed = err.count(f"event=call.node_lost call_id={call_id}")
        assert closed == (1 if run == 1 else 0), err[-3000:]
        assert err.count("event=edge.left_calls_ended calls=1") == (1 if run == 1 else 0)

    [(status, ended_by, cause, billed, ended_at)] = shared_rows(
        config,
        "SELECT status, ended_by, cause, billable_seconds, ended_at FROM calls"
        f" WHERE id = '{call_id}'",
    )
    assert (status, ended_by, cause) == ("completed", "node_lost", "node_lost")
    talked = datetime.fromisoformat(str(ended_at)) - datetime.fromisoformat(str(answered_at))
    # Billed to the last heartbeat: at most 2 s (one beat) before the kill, never after it.
    lived = killed_at - datetime.fromisoformat(str(answered_at)).timestamp()
    assert lived - 2.5 <= talked.total_seconds() <= lived, (talked, lived)
    assert billed == 60  # one started minute, the tariff's increment
    assert rows(db, "SELECT count(*) FROM live_legs") == [(0,)]
    month = str(answered_at)[:7]
    export = run_cli(
        "usage", "export", "--month", month, "--detail", "--format", "json", "--db", node_db(config)
    )
    assert export.returncode == 0, export.stderr
    legs = [row for row in json.loads(export.stdout) if row["event_id"] == f"{call_id}:leg"]
    assert len(legs) == 1, legs
    assert legs[0]["account"] == "bakery"
    assert not (tmp_path / "usage-spool" / "rejected.jsonl").exists()


def test_a_killed_workers_caller_gets_a_bye_from_the_edge_at_once(tmp_path: Path) -> None:
    config, sip_port = long_call_node(tmp_path)
    db = tmp_path / "flexvoice.db"
    proc = start_node(config)
    caller = None
    try:
        caller = answered_caller(config, proc, sip_port, db, timeout=60)
        [(call_id,)] = rows(db, "SELECT call_id FROM live_legs")
        os.kill(worker_pids(proc.pid, config)[0], signal.SIGKILL)
        killed = time.monotonic()
        out, _ = caller.communicate(timeout=30)
        took = time.monotonic() - killed
        # The caller got the edge's BYE (its scenario waits for one, then answers 200).
        assert counts(out) == (1, 0), out[-3000:]
        assert took < 5, f"BYE after {took:.1f} s"
        wait_workers(http_port(config), proc, 1)  # restarted
        assert edge_loads(config) == ["0/4"], "a worker slot is still taken at the edge"
    finally:
        if caller is not None and caller.poll() is None:
            caller.kill()
        err = stop(proc)
    assert f"event=call.ended call_id={call_id}" in err
    assert "event=edge.worker_calls_ended worker=0 calls=1" in err
    [(status, ended_by)] = shared_rows(
        config, f"SELECT status, ended_by FROM calls WHERE id = '{call_id}'"
    )
    assert (status, ended_by) == ("completed", "worker_lost")
