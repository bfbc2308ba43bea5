"""The control plane's work per call outside SIP, in one process: the number looked up (twice,
as the router and the flow runtime do), the call created, answered and ended with its usage
event (priced by the real TariffPricer), webhooks queued, the statistics listening; on one
SQLite file as a node has it. CPU per call, with the part the statistics' listener adds.

    ./run bench call_registry [--calls N] [--against DIR] [--turn-calls K]

`--against DIR`: the same measure with another checkout's code (e.g. an export of main), side
by side in one run, and the ratio. Each measure runs in a fresh interpreter, three times
alternating, and the lowest is kept (CPU time is far steadier than set-up times, yet other
processes still disturb it).

`--turn-calls K`: also the same calls inside an event loop with the node's group commit
(flexvoice.storage.turn), K calls' events per turn of the loop (a call's creation still
commits at once), beside one commit per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import REPO


def measure(calls: int, listen: bool, turn_calls: int = 0) -> float:
    """Milliseconds of CPU per call with the code on sys.path (run in a child); with
    `turn_calls`, in an event loop, that many calls a turn, grouped commits."""
    from flexvoice.accounts import create_account
    from flexvoice.api.pricing import TariffPricer
    from flexvoice.api.webhooks import WebhookQueue
    from flexvoice.callevent import call_event
    from flexvoice.calls import CallRegistry
    from flexvoice.metering.tariffs import load_tariffs
    from flexvoice.numbers import NumberRegistry
    from flexvoice.statistics.service import Statistics
    from flexvoice.storage.sqlite import connect

    tmp = Path(tempfile.mkdtemp(prefix="flexvoice-bench-registry-"))
    conn = connect(tmp / "flexvoice.db")
    create_account(conn, "bench", "flexio-payu")
    (tmp / "numbers.yaml").write_text(
        'accounts:\n  bench: {tariff: flexio-payu}\nnumbers:\n  "+3225550002": {account: bench,'
        " prompt: bench_menu}\n"
    )
    numbers = NumberRegistry(conn)
    numbers.sync_from_yaml(tmp / "numbers.yaml")
    webhooks = WebhookQueue(conn, lambda account: b"secret")
    tariffs = load_tariffs(REPO / "metering" / "tariffs")
    grouped = {"group_commit": True} if turn_calls else {}
    registry = CallRegistry(conn, webhooks=webhooks, pricer=TariffPricer(conn, tariffs), **grouped)
    if listen:
        Statistics(conn, registry, node="bench").listen(registry.listeners)

    def one(i: int) -> None:
        route = numbers.lookup("+3225550002")
        assert route is not None
        numbers.continuity_for("+3225550002")
        call_id = f"CA{i:032x}"
        registry.create(account=route.account, direction="inbound", from_number="+32470000001",
                        to_number="+3225550002", flow=route.flow, call_id=call_id,
                        status_callback="http://127.0.0.1:9/h")  # fmt: skip
        start = datetime.now(UTC)
        registry.call_event(call_id, "ringing", {"sip_status": 180})
        registry.call_event(call_id, "answered", {"sip_status": 200, "at": start.isoformat()})
        end = start + timedelta(seconds=1)
        usage = call_event(call_id=call_id, account="bench", direction="inbound",
                           caller="+32470000001", callee="+3225550002", started_at=start,
                           answered_at=start, ended_at=end)  # fmt: skip
        registry.call_event(call_id, "ended", {"sip_status": 200, "at": end.isoformat(),
                                               "ended_by": "caller", "usage": usage})  # fmt: skip

    async def in_turns(first: int, count: int) -> None:
        for i in range(first, first + count):
            one(i)
            if (i + 1) % turn_calls == 0:
                await asyncio.sleep(0)  # the next turn: the group commits
        await asyncio.sleep(0)

    def run_calls(first: int, count: int) -> None:
        if turn_calls:
            asyncio.run(in_turns(first, count))
        else:
            for i in range(first, first + count):
                one(i)

    run_calls(0, 200)  # warm: statements prepared, tables' pages cached
    started = time.process_time()
    run_calls(200, calls)
    return 1000 * (time.process_time() - started) / calls


def run(code: Path, calls: int, listen: bool, turn_calls: int = 0) -> float:
    child = ["--child", str(calls), str(int(listen)), str(turn_calls)]
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *child],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(code)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def load() -> str:
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(measure(int(argv[1]), bool(int(argv[2])), int(argv[3]))))
        return 0
    parser = argparse.ArgumentParser(prog="bench call_registry")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--against", type=Path, help="another checkout, side by side")
    parser.add_argument("--turn-calls", type=int, default=0, help="also grouped, K calls a turn")
    args = parser.parse_args(argv)
    codes = {"this": REPO} | ({"against": args.against.resolve()} if args.against else {})
    best: dict[tuple[str, bool], float] = {}
    for _ in range(3):
        for name, code in codes.items():
            for listen in (False, True):
                ms = run(code, args.calls, listen)
                best[name, listen] = min(ms, best.get((name, listen), ms))
    print(f"control plane per call outside SIP ({args.calls} calls, best of 3; {load()}):")
    for name in codes:
        alone, full = best[name, False], best[name, True]
        print(f"  {name:8s} {full:.3f} ms CPU per call; without the statistics' listener "
              f"{alone:.3f} ms (the listener {full - alone:.3f} ms)")  # fmt: skip
    if args.against:
        ratio = best["this", True] / best["against", True]
        print(f"this / against: {ratio:.2f}")
    if args.turn_calls:
        k = args.turn_calls
        per_event = grouped = float("inf")
        for _ in range(3):
            per_event = min(per_event, run(REPO, args.calls, True))
            grouped = min(grouped, run(REPO, args.calls, True, k))
        print(f"  one commit per event {per_event:.3f} ms per call; grouped by turn ({k} calls "
              f"a turn, creation at once) {grouped:.3f} ms: {grouped / per_event:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
