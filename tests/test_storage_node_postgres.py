"""A node whose storage.database is PostgreSQL takes a real call: sipp behind the trunk
answers the call placed over REST and the leg its flow dials; the call, its leg, their traces
and both legs' usage events land in PostgreSQL (the node's own SQLite file holds none of
them), and /v1/usage reads them through the node's pool of connections."""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.conftest import free_port_range
from tests.nodekit import NOTIFY_FLOW, StartTrunkNode
from tests.sipptool import Uas, counts
from tests.test_call_tree import CONNECT_FLOW, MOBILE, ended

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.process]


def _rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args or None).fetchall()  # type: ignore[arg-type]


def test_a_node_on_postgresql_keeps_calls_legs_and_usage_there(
    trunk_node: StartTrunkNode, pg_url: str, tmp_path: Path
) -> None:
    storage = {
        "database": pg_url,
        "local": str(tmp_path / "flexvoice.db"),
        "recordings": str(tmp_path / "recordings"),
    }
    carrier = Uas("uas_answer.xml", free_port_range(1), calls=2)  # the callee and the mobile
    try:
        node = trunk_node(
            carrier.port,
            flows={"connect": CONNECT_FLOW, "notify": NOTIFY_FLOW},
            settings={"storage": storage},
        )
        status, call = node.call(
            {"to": "+32470123456", "from": "+3225551001", "flow": "connect", "ring_timeout": 10}
        )
        assert status == 201, call
        node.wait_call(call["id"], lambda c: c["legs"] and c["legs"][0]["status"] == "in-progress")
        status, hung = node.api("POST", f"/v1/calls/{call['id']}", {"status": "completed"})
        assert status == 200, hung
        parent = node.wait_call(call["id"], lambda c: ended(c) and all(map(ended, c["legs"])))
        month = parent["started_at"][:7]
        deadline = time.monotonic() + 10  # the usage spool imports within half a second
        while time.monotonic() < deadline:
            usage = _rows(pg_url, "SELECT id FROM usage_events WHERE id LIKE 'CA%' ORDER BY id")
            if len(usage) == 2:
                break
            time.sleep(0.2)
        finance = node.new_key("shop", "finance")
        status, statement = node.api("GET", f"/v1/usage?month={month}", key=finance)
        node.stop()
    finally:
        carrier_log = carrier.stop()
    assert counts(carrier_log) == (2, 0), carrier_log[-2000:]
    [leg] = parent["legs"]
    assert parent["price_eur"] == "0.7400" and leg["to"] == MOBILE

    port = int(yaml.safe_load(node.config.read_text())["http"]["port"])
    rows = _rows(
        pg_url,
        "SELECT id, parent_call_id, status, price_eur, node FROM calls ORDER BY parent_call_id",
    )
    assert rows == [
        (leg["id"], call["id"], "completed", "0.3700", f"{socket.gethostname()}-{port}"),
        (call["id"], None, "completed", "0.3700", f"{socket.gethostname()}-{port}"),
    ]
    traced = dict(_rows(pg_url, "SELECT call_id, count(*) FROM call_events GROUP BY call_id"))
    assert traced[call["id"]] >= 5 and traced[leg["id"]] >= 3, traced
    assert [u[0] for u in usage] == sorted([f"{call['id']}:leg", f"{leg['id']}:leg"])
    assert status == 200, statement
    mobile = [line for line in statement["lines"] if line["service"] == "voice_out_mobile"]
    assert mobile and mobile[0]["quantity"] == "2", statement  # both legs, one minute each
    # Nothing of it in the node's own file (messages and statistics stay there for now).
    with sqlite3.connect(node.local_db) as own:
        tables = {r[0] for r in own.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not tables & {"calls", "call_events", "usage_events", "webhook_queue"}, tables
