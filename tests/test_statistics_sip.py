"""Call statistics end to end: real calls from sipp through the Kamailio edge to a running node
(workers, flows, call registry, rollups), sipp callees behind the trunk as the agents, and the
figures read back over REST, live while a caller waits and historical after a node restart."""

from __future__ import annotations

import csv
import io
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flexvoice.calls import CallRegistry
from flexvoice.statistics.rollup import differences, read_rows, recompute
from tests.conftest import free_port_range
from tests.nodekit import StartTrunkNode, api
from tests.sipptool import SippResult, Uas, run_uac
from tests.statskit import BROKEN, LINE, MOVED, OTHER, STATS_NODE

pytestmark = [pytest.mark.sip, pytest.mark.edge, pytest.mark.xdist_group("sipnode")]


def csv_get(port: int, key_text: str, path: str) -> list[dict[str, str]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    req.add_header("Authorization", f"Bearer {key_text}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(resp.read().decode())))


def wait_offered(port: int, key_text: str, path: str, want: int, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    doc: Any = None
    while time.monotonic() < deadline:
        status, doc = api(port, key_text, "GET", path)
        assert status == 200, doc
        if doc["totals"].get("offered", doc["totals"].get("queue_entered")) >= want:
            return doc
        time.sleep(0.3)
    raise AssertionError(f"statistics stayed at {doc}")


def test_scripted_calls_give_exactly_the_figures_they_imply(trunk_node: StartTrunkNode) -> None:
    trunk_port = free_port_range(1)
    node = trunk_node(
        trunk_port,
        **STATS_NODE,
    )
    edge, port = node.edge, node.port
    today = datetime.now(UTC).date()
    # Around today: a run that crosses midnight UTC still finds all its calls.
    period = f"from={today - timedelta(days=1)}&to={today + timedelta(days=1)}"
    manager, analyst = node.new_key("shop", "manager"), node.new_key("other", "analyst")
    admin = node.new_key("shop", "admin")
    status, doc = api(
        port, admin, "PUT", f"/v1/numbers/{MOVED}/continuity",
        {"forward_to": "+3225557777", "active": True},
    )  # fmt: skip
    assert status == 200, doc

    agents = Uas("uas_agents.xml", trunk_port, calls=6)
    try:
        # Key 1: the desk answers, the caller talks 3 s and hangs up. Key 3: the desk is
        # busy, no branch (busy). Key 5: busy, on_busy plays a message (rerouted). Key 4:
        # nobody answers within 3 s (no answer).
        for scenario, hold, digit in [
            ("uac_key.xml", 3000, "1"),
            ("uac_key_until_bye.xml", 1000, "3"),
            ("uac_key_until_bye.xml", 1000, "5"),
            ("uac_key_until_bye.xml", 1000, "4"),
        ]:
            result = run_uac(scenario, edge, LINE, hold_ms=hold, keys={"digit": digit})
            assert result.successful == 1, (digit, result.output)
        # Key 2: the caller waits in the queue and gives up after 7 s, seen live meanwhile.
        queued: dict[str, SippResult] = {}
        caller = threading.Thread(
            target=lambda: queued.setdefault(
                "r", run_uac("uac_key.xml", edge, LINE, hold_ms=7000, keys={"digit": "2"})
            )
        )
        caller.start()
        live: Any = None
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            _, live = api(port, manager, "GET", "/v1/statistics/live")
            if live["queues"] and live["agents_ringing"]:
                break
            time.sleep(0.2)
        caller.join(30)
        assert queued["r"].successful == 1, queued["r"].output
    finally:
        agents.stop()
    # No agent needed: a caller leaves the menu after 3 s; the moved number redirects.
    for scenario, number, hold in [
        ("uac_call.xml", LINE, 3000),
        ("uac_expect_302.xml", MOVED, 1000),
        ("uac_call.xml", OTHER, 2000),
        # Both workers would refuse it alike: the edge passes the 503 on, one failed call.
        ("uac_expect_503.xml", BROKEN, 1000),
    ]:
        result = run_uac(scenario, edge, number, hold_ms=hold)
        assert result.successful == 1, (scenario, result.output)

    shop = wait_offered(port, manager, f"/v1/statistics/calls?{period}", 8)
    steps_doc = api(port, manager, "GET", f"/v1/statistics/calls?{period}&group_by=step")[1]
    path = f"/v1/statistics/calls?{period}&group_by=queue&queue=support"
    queue_doc = api(port, manager, "GET", path)[1]
    by_number = csv_get(port, manager, f"/v1/statistics/calls?{period}&group_by=number"
                        "&tz=Europe/Brussels&format=csv")  # fmt: skip
    other = wait_offered(port, analyst, f"/v1/statistics/calls?{period}&group_by=number", 1)
    node.stop()

    # Live, while the queued caller waited: one call up, waiting in support, the agent ringing.
    assert live["calls_up"] == 1, live
    assert live["by_number"] == [{"number": LINE, "flow": "stats", "calls": 1}], live
    assert [q["queue"] for q in live["queues"]] == ["support"]
    assert live["queues"][0]["waiting"] == 1 and live["agents_ringing"] == 1, live
    assert live["calls_last_hour"] >= 5

    t = shop["totals"]
    assert (t["offered"], t["answered"], t["abandoned"]) == (8, 1, 2), t
    assert (t["busy"], t["no_answer"], t["failed"], t["redirected"]) == (1, 1, 1, 1), t
    assert (t["rerouted"], t["ended_in_flow"]) == (1, 1), t
    # The caller held 3 s after the key, minus the ringing, plus the time our side takes to
    # see its BYE (3.7 s once on a busy machine).
    assert 1.0 <= t["talk_s"] <= 4.5, t
    assert t["queue_entered"] == 1 and t["queue_abandoned"] == 1, t
    assert 5.8 <= t["avg_wait_s"] <= 8.2, t  # "gives up after 7 s" (the key comes 1 s in)
    assert t["service_level"] == 0.0 and t["p90_wait_s"] in (10.0, 15.0), t
    q = queue_doc["rows"]
    assert [(r["queue"], r["queue_entered"], r["queue_abandoned"]) for r in q] == [
        ("support", 1, 1)
    ]
    steps = {r["step"]: r for r in steps_doc["rows"]}
    assert (steps["menu"]["entered"], steps["menu"]["abandoned"]) == (6, 1)
    assert steps["menu"]["options"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1}
    assert (steps["line"]["entered"], steps["line"]["abandoned"]) == (1, 1)
    assert steps["continuity"]["entered"] == 1
    assert {r["number"]: r["offered"] for r in by_number} == {LINE: "6", MOVED: "1", BROKEN: "1"}
    # The other account sees only its own call, abandoned in the menu.
    assert [(r["number"], r["offered"], r["abandoned"]) for r in other["rows"]] == [(OTHER, 1, 1)]

    # The rollups equal a full recomputation from the call registry, and a restarted node
    # answers the same.
    conn = node.store()
    try:
        registry = CallRegistry(conn)
        assert not differences(read_rows(conn), recompute(conn, registry))
    finally:
        conn.close()
    node.start()
    status, again = api(port, manager, "GET", f"/v1/statistics/calls?{period}")
    node.stop()
    assert status == 200 and again["totals"] == shop["totals"]
