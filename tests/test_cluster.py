"""Two nodes as one service (issue 18): one PostgreSQL, one Redis, one shared edge, two nodes
on their own ports, real sipp callers. One test, its phases in order on one start-up: calls
spread over both nodes' workers; a call up on node A is listed, traced and hung up through
node B's API; callers of both nodes wait in one queue, only its head rings the agent; then A
is killed with calls up: its callers get a BYE from the edge, its calls are billed to its
last heartbeat by B (node_lost), its queued callers leave the shared line, and new calls all
go to B."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from tests.clusterkit import (
    LONG_LINE,
    QUEUE_LINE,
    RINGING_AGENT,
    SALES_LINE,
    Cluster,
    make_cluster,
    running_redis,
)
from tests.nodekit import api, wait_for
from tests.pgkit import PgServer
from tests.rtp_ears import Ear, speak
from tests.sipptool import Uas, counts, uac_args

pytestmark = [
    pytest.mark.sip,
    pytest.mark.edge,
    pytest.mark.process,
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("cluster")
    with running_redis(folder) as redis:
        c = make_cluster(folder, redis, pg_server.new_database())
        try:
            c.start_edge()
            # Each node's workers on their own address, as on machines of their own.
            for name, host in (("a", "127.0.0.2"), ("b", "127.0.0.3")):
                c.add_node(name, host=host).start()
            c.new_key()
            wait_for(lambda: len(c.dispatcher()) == 4, timeout=20)
            yield c
        finally:
            c.stop()


def callers(
    c: Cluster,
    count: int,
    timeout: int = 330,
    number: str = LONG_LINE,
    keys: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """`count` callers to the long line, each staying until it gets a BYE (5 min at most)."""
    return subprocess.Popen(
        uac_args("uac_until_bye_long.xml", c.edge_address, number, calls=count, rate=20,
                 limit=count, timeout=timeout, keys=keys),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _rows(c: Cluster, sql: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(c.database) as conn:
        return list(conn.execute(sql, args).fetchall())  # type: ignore[call-overload]


def live(c: Cluster, node: str) -> list[str]:
    """The calls `node` carries now (the calls table is in the shared store)."""
    rows = _rows(c, "SELECT id FROM calls WHERE node = %s AND status = 'in-progress'"
                 " ORDER BY id", node)  # fmt: skip
    return [str(r[0]) for r in rows]


def table(c: Cluster, node: str) -> list[tuple[object, ...]]:
    """Every call of a node, for a failure's message."""
    return _rows(c, "SELECT id, status, ended_by, cause FROM calls WHERE node = %s", node)


def ringing(c: Cluster, node: str) -> list[tuple[object, ...]]:
    return _rows(c, "SELECT id FROM calls WHERE node = %s AND status IN ('queued', 'ringing')",
                 node)  # fmt: skip


def row(c: Cluster, call_id: str) -> tuple[object, ...]:
    return _rows(c, "SELECT status, ended_by FROM calls WHERE id = %s", call_id)[0]


FIRST = 8  # callers up from the first phase on: two per worker
ONE: list[subprocess.Popen[str]] = []  # the first callers, up across the phases
QUEUED: list[subprocess.Popen[str] | Uas] = []  # the agents, the queue's callers
LINE = "fv:q:bakery:support"


def test_two_nodes_behind_one_edge_act_as_one_service(cluster: Cluster) -> None:
    """One test in three phases, in order, on one start-up (xdist cannot split them)."""
    try:
        only_the_workers_addresses_may_send_through_the_edge(cluster)
        calls_spread_over_both_nodes_workers(cluster)
        a_call_on_a_is_listed_traced_and_hung_up_through_b(cluster)
        a_caller_on_a_is_answered_by_an_agent_b_dialled(cluster)
        callers_of_both_nodes_wait_in_one_queue_and_only_its_head_rings_the_agent(cluster)
        kill_9_of_a_ends_its_calls_node_lost_and_b_takes_every_new_call(cluster)
    finally:
        for proc in ONE + QUEUED:
            if isinstance(proc, Uas):
                proc.stop()
            else:
                proc.kill()
                proc.communicate()
        ONE.clear()
        QUEUED.clear()


def edge_answer(c: Cluster, source: str) -> str:
    """The edge's status line for an INVITE from `source` (port 5060 there is not a worker's)
    toward the trunk's proxy: what a worker sends to place a call to the carrier."""
    target = f"+3225559999@127.0.0.1:{c.trunk_port}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(5)
        here = f"{source}:{s.getsockname()[1]}"
        s.sendto(
            (f"INVITE sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {here};branch=z9hG4bK{source}\r\n"
             f"Max-Forwards: 70\r\nFrom: <sip:{LONG_LINE}@{here}>;tag=t1\r\nTo: <sip:{target}>"
             f"\r\nCall-ID: relay-{source}\r\nCSeq: 1 INVITE\r\nContact: <sip:x@{here}>\r\n"
             "Content-Length: 0\r\n\r\n").encode(),
            ("127.0.0.1", c.edge_port),
        )  # fmt: skip
        while True:  # past a 100 Trying, should the edge relay it
            line = s.recv(65535).decode().split("\r\n", 1)[0]
            if not line.startswith("SIP/2.0 1"):
                return line


def only_the_workers_addresses_may_send_through_the_edge(cluster: Cluster) -> None:
    """Trust is the dispatcher's list (a workers' host's address), not a loopback source:
    neither the edge's own host (127.0.0.1, here also the trunk's source) nor another address
    may place a call to the carrier through it."""
    for source in ("127.0.0.1", "127.0.0.4"):
        assert edge_answer(cluster, source).startswith("SIP/2.0 403"), source


def calls_spread_over_both_nodes_workers(cluster: Cluster) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    assert sorted(cluster.dispatcher()) == sorted(a.worker_uris() + b.worker_uris())
    ONE.append(callers(cluster, FIRST))
    wait_for(lambda: len(live(cluster, "a")) + len(live(cluster, "b")) == FIRST, timeout=30)
    # Round robin over the four workers: each node carries its share.
    assert len(live(cluster, "a")) >= 2 and len(live(cluster, "b")) >= 2, (
        live(cluster, "a"),
        live(cluster, "b"),
    )
    status, health = api(b.port, cluster.key, "GET", "/healthz")
    assert status == 200, health
    assert health["cluster"]["nodes"] == {"a": "up", "b": "up"}
    assert health["cluster"]["redis"] is True and health["edge"]["up"] is True
    assert health["storage"] == {"shared": "postgresql", "reachable": True}


def a_call_on_a_is_listed_traced_and_hung_up_through_b(cluster: Cluster) -> None:
    b = cluster.nodes["b"]
    on_a = live(cluster, "a")
    assert on_a, f"node A holds no call: {table(cluster, 'a')}"
    status, doc = api(b.port, cluster.key, "GET", "/v1/calls?status=in-progress")
    assert status == 200, doc
    listed = {c["id"] for c in doc["calls"]}
    assert set(on_a) <= listed and set(live(cluster, "b")) <= listed
    target = on_a[0]
    status, trace = api(b.port, cluster.key, "GET", f"/v1/calls/{target}/events")
    assert status == 200, trace
    assert "answered" in [e["kind"] for e in trace["events"]]
    status, doc = api(b.port, cluster.key, "POST", f"/v1/calls/{target}", {"status": "completed"})
    assert status == 200, doc
    assert wait_for(lambda: row(cluster, target) == ("completed", "api"), timeout=10)
    status, doc = api(b.port, cluster.key, "GET", f"/v1/calls/{target}")
    assert status == 200 and doc["status"] == "completed", doc
    status, doc = api(b.port, cluster.key, "GET", "/v1/calls/CA" + "0" * 32)
    assert status == 404, doc


def usage_of(c: Cluster, call_ids: list[str]) -> list[str]:
    """The usage events written for these calls' legs (one per leg, whatever node)."""
    ids = [f"{call_id}:leg" for call_id in call_ids]
    return [str(r[0]) for r in _rows(c, "SELECT id FROM usage_events WHERE id = ANY(%s)", ids)]


SALES_SQL = (
    "SELECT id, node FROM calls WHERE to_number = %s AND parent_call_id IS NULL"
    " AND status = 'in-progress'"
)


def sales_caller_on_a(c: Cluster, seen: set[str]) -> tuple[subprocess.Popen[str], Ear, str]:
    """A caller of the sales line that the edge sent to node A (one sent to B is hung up
    during its greeting, before it queues, and the next one tried)."""
    for _ in range(8):
        ear = Ear()
        proc = callers(c, 1, timeout=120, number=SALES_LINE, keys={"rtp_port": str(ear.port)})
        found = wait_for(
            lambda: [r for r in _rows(c, SALES_SQL, SALES_LINE) if str(r[0]) not in seen], 20
        )
        call_id, node = str(found[0][0]), str(found[0][1])
        seen.add(call_id)
        if node == "a":
            return proc, ear, call_id
        api(c.nodes["a"].port, c.key, "POST", f"/v1/calls/{call_id}", {"status": "completed"})
        proc.kill()
        proc.communicate()
        ear.close()
    raise AssertionError("the edge sent no sales caller to node A in 8 tries")


def agent_leg(c: Cluster, parent: str) -> tuple[str, str, str, object] | None:
    """(call id, node, status, ended_by) of the agent's leg dialled for `parent`."""
    rows = _rows(c, "SELECT id, node, status, ended_by FROM calls WHERE parent_call_id = %s",
                 parent)  # fmt: skip
    return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2]), rows[0][3]) if rows else None


def a_caller_on_a_is_answered_by_an_agent_b_dialled(c: Cluster) -> None:
    a = c.nodes["a"]
    # An agent is dialled by the node with the most free call slots: B's first callers but
    # two are hung up (through A's API), so B has room to spare.
    for call_id in live(c, "b")[2:]:
        status, doc = api(a.port, c.key, "POST", f"/v1/calls/{call_id}", {"status": "completed"})
        assert status == 200, doc
    wait_for(lambda: len(live(c, "b")) == 2, timeout=15)
    agent_ear = Ear()
    QUEUED.append(Uas("uas_agents_ear.xml", c.trunk_port, calls=40, timeout=300,
                      keys={"rtp_port": str(agent_ear.port)}))  # fmt: skip
    seen: set[str] = set()
    try:
        # The agent answers on B, B links its leg to the caller's worker on A through the
        # edge: the caller's voice reaches the agent; the agent hangs up, the caller gets BYE.
        proc, ear, caller = sales_caller_on_a(c, seen)
        leg = wait_for(lambda: (found := agent_leg(c, caller)) and found[2] == "in-progress"
                       and found, timeout=30)  # fmt: skip
        assert leg[1] == "b", (leg, table(c, "a"))
        started = asyncio.run(speak(ear, 2.5, [agent_ear]))
        heard = agent_ear.rms(started + 0.5, started + 2.5)
        assert heard > 300, (heard, len(agent_ear.packets))
        out, _ = proc.communicate(timeout=30)  # the agent's BYE (8 s after its answer)
        assert counts(out) == (1, 0), out[-2000:]
        assert wait_for(lambda: row(c, caller)[0] == "completed", timeout=10)
        # The links between the nodes' workers are no calls of their own.
        assert len(_rows(c, "SELECT id FROM calls WHERE parent_call_id = %s", caller)) == 1
        assert agent_leg(c, leg[0]) is None
        assert agent_leg(c, caller)[2:] == ("completed", "callee"), agent_leg(c, caller)
        # One usage event per leg: the caller's (A), the agent's (B); the link none.
        billed = wait_for(lambda: len(u := usage_of(c, [caller, leg[0]])) == 2 and u, 15)
        assert sorted(billed) == sorted([f"{caller}:leg", f"{leg[0]}:leg"]), billed
        ear.close()
        # The caller's side hangs up (through B's API): the agent's leg ends at once.
        proc, ear, caller = sales_caller_on_a(c, seen)
        leg = wait_for(lambda: (found := agent_leg(c, caller)) and found[2] == "in-progress"
                       and found, timeout=30)  # fmt: skip
        assert leg[1] == "b", leg
        status, doc = api(c.nodes["b"].port, c.key, "POST", f"/v1/calls/{caller}",
                          {"status": "completed"})  # fmt: skip
        assert status == 200, doc
        ended = wait_for(lambda: (found := agent_leg(c, caller)) and found[2] == "completed"
                         and found, timeout=6)  # fmt: skip
        assert ended[3] == "caller", ended
        proc.kill()
        proc.communicate()
        ear.close()
    finally:
        agent_ear.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def callers_of_both_nodes_wait_in_one_queue_and_only_its_head_rings_the_agent(c: Cluster) -> None:
    r = redis.Redis.from_url(c.redis)
    QUEUED.append(callers(c, 3, number=QUEUE_LINE))

    def settled() -> tuple[list[Any], dict[str, set[str]]] | None:
        # The line and each node's own list of its waiting callers are written one after the
        # other: read until they agree (read once, they named different callers at times).
        found = r.zrange(LINE, 0, -1)
        waiting = {n: {_text(k) for k in r.hkeys(f"fv:qin:{n}")} for n in ("a", "b")}
        same = {_text(k) for k in found} == waiting["a"] | waiting["b"]
        return (found, waiting) if len(found) == 3 and same else None

    line, waiting = wait_for(settled, timeout=30)
    assert waiting["a"] and waiting["b"], f"the edge sent every queue caller to one node: {waiting}"
    # One agent, one line over both nodes: the head rings it, nobody else does.
    head = _text(line[0])
    holder = wait_for(lambda: r.get(f"fv:qagent:bakery:{RINGING_AGENT}"), timeout=15)
    assert _text(holder).endswith(f"/{head}"), (holder, line)
    time.sleep(2.0)  # the others retry every second: none may ring the agent meanwhile
    ringing = _rows(c, "SELECT parent_call_id FROM calls WHERE parent_call_id = ANY(%s)",
                    [_text(k) for k in line])  # fmt: skip
    assert {p[0] for p in ringing} == {head}, ringing
    # The head is hung up through the API while its agent rings: the agent's leg is cancelled
    # (and its worker slot freed: a carrier's 487 once left it taken), the next caller rings.
    status, doc = api(
        c.nodes["b"].port, c.key, "POST", f"/v1/calls/{head}", {"status": "completed"}
    )
    assert status == 200, doc
    agent_leg = wait_for(lambda: (found := _rows(
        c, "SELECT status, cause FROM calls WHERE parent_call_id = %s AND status <> 'ringing'",
        head)) and found[0], timeout=15)  # fmt: skip
    assert agent_leg == ("canceled", "caller_left") or agent_leg[0] == "canceled", agent_leg
    second = _text(line[1])
    holder = wait_for(lambda: _text(r.get(f"fv:qagent:bakery:{RINGING_AGENT}") or b"")
                      .endswith(f"/{second}"), timeout=15)  # fmt: skip
    assert holder


def a_lost_nodes_callers_leave_the_shared_queue(c: Cluster) -> None:
    r = redis.Redis.from_url(c.redis)
    # B closed A's calls (the phase before waited for it): A's callers left the line, B's
    # wait on in it (none when the edge gave B only the head, which was hung up).
    assert r.exists("fv:qin:a") == 0
    on_b = {_text(k) for k in r.hkeys("fv:qin:b")}
    assert {_text(k) for k in r.zrange(LINE, 0, -1)} == on_b


def kill_9_of_a_ends_its_calls_node_lost_and_b_takes_every_new_call(cluster: Cluster) -> None:
    a, b = cluster.nodes["a"], cluster.nodes["b"]
    lost = live(cluster, "a")
    assert lost, f"node A holds no call to lose: {table(cluster, 'a')}"
    a.kill()
    killed = time.monotonic()
    # The edge stops sending to A's workers as soon as their Redis connection is gone.
    wait_for(lambda: sorted(cluster.dispatcher()) == sorted(b.worker_uris()), timeout=5)
    took = time.monotonic() - killed
    assert took < 1.0, f"the edge still listed A's workers {took:.2f} s after the kill"
    # Its calls are read through B (their records are in the shared store); a hang-up must
    # reach the node holding the call, which is gone: a clear 503.
    status, doc = api(b.port, cluster.key, "GET", f"/v1/calls/{lost[0]}")
    assert status == 200, doc
    status, doc = api(b.port, cluster.key, "POST", f"/v1/calls/{lost[0]}", {"status": "completed"})
    assert status in (503, 409), doc  # 409 once B has closed it (node_lost)
    if status == 503:
        assert doc["type"].endswith("owner-node-unavailable"), doc
    # New calls all go to B: as many as B has room for (8 slots; the first calls and the
    # queue's took some, and B's head of the queue may start ringing the agent meanwhile).
    before = set(live(cluster, "b"))
    room = 8 - len(before) - len(ringing(cluster, "b")) - 1
    assert room >= 1, before

    more = callers(cluster, room)
    got: set[str] = set()
    try:
        deadline = time.monotonic() + 20
        while len(got := set(live(cluster, "b")) - before) < room:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        more.kill()
        out, _ = more.communicate()
    assert len(got) >= room, (room, got, table(cluster, "b"), out[-2500:])
    # B closes A's calls once A's heartbeat expired and it holds no Redis connection.
    ids = [f"{call_id}:leg" for call_id in lost]

    def billed() -> list[tuple[str, str]]:
        with psycopg.connect(cluster.database) as conn:
            rows = conn.execute(
                "SELECT id, payload FROM usage_events WHERE id = ANY(%s)", (ids,)
            ).fetchall()
        return [(str(r[0]), r[1] if isinstance(r[1], str) else json.dumps(r[1])) for r in rows]

    rows = wait_for(lambda: (found := billed()) and len(found) == len(lost) and found, 40)
    for _id, payload in rows:
        event = json.loads(payload)
        # Billed from the answer to A's last heartbeat (0 s for a call answered after it).
        assert event["account"] == "bakery" and event["answered_at"] <= event["ended_at"]
    for call_id in lost:
        assert row(cluster, call_id) == ("completed", "node_lost"), table(cluster, "a")
    a_lost_nodes_callers_leave_the_shared_queue(cluster)
    log = b.stop()  # its drain hangs up its own callers
    out, _ = ONE.pop().communicate(timeout=60)
    # Every first caller got a BYE: through B's API, from the edge (A's), from B's drain.
    assert counts(out) == (FIRST, 0), out[-3000:]
    # A's calls: the answered ones above and the agent's ringing leg (a child of A's head).
    closed = re.search(r"event=cluster\.node_lost node=a calls=(\d+)", log)
    assert closed and int(closed.group(1)) >= len(lost), log[-3000:]
