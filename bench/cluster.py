"""Two nodes against one behind the shared edge (issue 18): the most concurrent calls and the
highest calls per second with zero failed calls, each node alone and both together, in one
run; the time the edge takes to stop sending to a node killed with kill -9; and the usage
events/s written to the shared PostgreSQL (bench/shared_store.py's import, on the same server).

    ./run bench cluster [--workers N] [--step-seconds S] [--events N]

One PostgreSQL, one redis-server, one shared edge (`flexvoice cluster edge`), nodes
(`flexvoice serve`) with N workers each (4 calls a worker), sipp callers to a number that
answers and plays a long prompt until the caller hangs up. Short steps, bounded in calls and
time, all on loopback; everything is stopped by its PID. The load average is printed beside
the figures: on a shared machine they move with it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.metering import generate
from bench.shared_store import ACCOUNTS, _import, _store
from flexvoice.storage import postgres
from tests.clusterkit import LONG_LINE, Cluster, make_cluster, running_redis
from tests.pgkit import running_postgres
from tests.sipptool import counts, uac_args


@dataclass
class Step:
    value: int  # calls at once, or calls per second
    expected: int  # calls placed
    ok: int
    failed: int

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.ok == self.expected


def sipp(c: Cluster, calls: int, rate: float, hold_ms: int, limit: int) -> tuple[int, int]:
    args = uac_args("uac_call.xml", c.edge_address, LONG_LINE, calls=calls, rate=rate,
                    limit=limit, hold_ms=hold_ms, timeout=60)  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=90).stdout
    return counts(out)


def concurrency(c: Cluster, steps: list[int], hold_s: float) -> list[Step]:
    """All `n` calls up at once (started within a second), held `hold_s`, then hung up."""
    found = []
    for n in steps:
        ok, failed = sipp(c, n, rate=n, hold_ms=int(hold_s * 1000), limit=n)
        found.append(Step(n, n, ok, failed))
        time.sleep(1.0)  # the last BYEs settle
        if not found[-1].clean:
            break
    return found


def cps(c: Cluster, rates: list[int], seconds: float) -> list[Step]:
    """`rate` new calls a second for `seconds`, each held 0.3 s (the set-up rate, not the
    slots, is what this step measures)."""
    found = []
    for rate in rates:
        n = int(rate * seconds)
        ok, failed = sipp(c, n, rate=rate, hold_ms=300, limit=rate * 3)
        found.append(Step(rate, n, ok, failed))
        time.sleep(1.0)
        if not found[-1].clean:
            break
    return found


def ceiling(steps: list[Step]) -> int:
    return max((s.value for s in steps if s.clean), default=0)


def best(steps: list[Step]) -> str:
    shown = str(ceiling(steps) or "none")
    bad = next((s for s in steps if not s.clean), None)
    if bad is not None:
        shown += f" (at {bad.value}: {bad.failed} failed of {bad.expected})"
    return shown


def edge_drop_time(c: Cluster, node: str) -> float:
    """kill -9 of `node`: seconds until none of its workers is in the edge's list."""
    gone = set(c.nodes[node].worker_uris())
    c.nodes[node].kill()
    start = time.monotonic()
    while set(c.dispatcher()) & gone:
        if time.monotonic() - start > 15:
            return float("inf")
        time.sleep(0.01)
    return time.monotonic() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench cluster")
    parser.add_argument("--workers", type=int, default=2, help="workers per node (4 calls each)")
    parser.add_argument("--step-seconds", type=float, default=3.0)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args(argv)
    slots = 4 * args.workers
    conc_steps = [slots // 2, slots, slots + slots // 2, 2 * slots, 2 * slots + slots // 2]
    rates = [5, 10, 20, 30, 40]
    work = Path(tempfile.mkdtemp(prefix="flexvoice-bench-cluster-"))
    results: dict[str, tuple[list[Step], list[Step]]] = {}
    loads: dict[str, float] = {}
    with running_postgres(durable=True) as server, running_redis(work) as redis:
        c = make_cluster(work, redis, server.new_database())
        try:
            c.start_edge()
            c.add_node("a", args.workers).start()
            while len(c.dispatcher()) < args.workers:
                time.sleep(0.1)
            loads["one"] = os.getloadavg()[0]
            results["one"] = (concurrency(c, conc_steps, args.step_seconds),
                              cps(c, rates, args.step_seconds))  # fmt: skip
            c.add_node("b", args.workers).start()
            while len(c.dispatcher()) < 2 * args.workers:
                time.sleep(0.1)
            loads["two"] = os.getloadavg()[0]
            results["two"] = (concurrency(c, conc_steps, args.step_seconds),
                              cps(c, rates, args.step_seconds))  # fmt: skip
            drop = edge_drop_time(c, "a")
        finally:
            c.stop()
        events = work / "events.jsonl"
        generate(events, args.events, ACCOUNTS)
        store = _store(postgres.connect(server.new_database()))
        import_s = _import(store, events)
    print(f"shared edge, nodes of {args.workers} workers ({slots} call slots each), "
          f"steps of {args.step_seconds:g} s:")  # fmt: skip
    for label, key in (("one node ", "one"), ("two nodes", "two")):
        conc, rate = results[key]
        print(f"  {label}: concurrent calls, zero failed: {best(conc)}; "
              f"calls/s, zero failed: {best(rate)}  (load {loads[key]:.1f})")  # fmt: skip
    (one_c, one_r), (two_c, two_r) = (
        (ceiling(results[k][0]), ceiling(results[k][1])) for k in ("one", "two")
    )
    print(f"  two / one: concurrent {two_c / max(one_c, 1):.2f}x, "
          f"calls/s {two_r / max(one_r, 1):.2f}x")  # fmt: skip
    print(f"edge stopped sending to the killed node after {drop * 1000:.0f} ms")
    print(f"usage events into the shared PostgreSQL (import+rate, one process): "
          f"{args.events / import_s:,.0f} events/s ({args.events:,} events)")  # fmt: skip
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end)")
    return 0
