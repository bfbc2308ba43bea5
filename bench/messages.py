"""SMS and verification benchmark: `python -m bench messages [--messages N] [--quick]`.

A node (REST API, messaging, verification, usage sink) on loopback, its SMPP gateway bound to
the test SMSC (tests/smsc.py, PyPI smpp34's server) in its own process. Measures:
- messages accepted per second into the queue (POST /v1/messages over HTTP, 201 each),
- messages delivered per second to the SMSC (first POST to the SMSC's last submit_sm),
- that every message reached the SMSC exactly once (none lost, none doubled),
- verification check latency (POST /v1/verifications/{id}/check over HTTP), p50 and p99.
Baselines in the same run: a raw smpp34 client submitting to the same SMSC, and GET /healthz
latency on the same node. The CPU each process spends per message (the node, the HTTP client,
the SMSC) says what bounds the rate on this machine.

`--against DIR`: the same measure on another checkout's code (e.g. `git archive main` unpacked),
side by side in one run, alternating `--rounds` times, each in a fresh interpreter, with the
ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import smpp34

from bench import REPO
from bench.procstat import cpu_seconds
from flexvoice.appkeys import MESSAGING
from flexvoice.system import free_port
from tests.apikit import ACME_NUMBER, running_api
from tests.conftest import cli_env
from tests.smsctool import running_smsc, smpp_config

CONCURRENCY = 32
CLIENT = Path(__file__).with_name("messages_client.py")
TARGET = 500  # accepted/s on 2 cores (issue 14)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def raw_smpp(port: int, n: int) -> tuple[float, float]:
    """Baseline: submits/s of a bare smpp34 client, CONCURRENCY in flight, and the CPU
    seconds of this process per submit."""
    client = smpp34.Client(host="127.0.0.1", port=port, system_id="raw", password="")
    session = await client.connect()
    sem = asyncio.Semaphore(CONCURRENCY)

    async def drain() -> None:  # read its receipts, as any ESME must
        while not isinstance(await session.next(), smpp34.Disconnected):
            pass

    reader = asyncio.create_task(drain())

    async def one(i: int) -> None:
        async with sem:
            await session.submit_sm(
                destination_addr="32475000000",
                short_message=f"raw {i}".encode(),
                source_addr="3226001000",
            )

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    await session.unbind()
    reader.cancel()
    await client.stop()
    return n / took, cpu / n


async def run(n: int, checks: int, receipts: str) -> dict[str, float]:
    port = free_port()
    config = smpp_config(port).replace("retry_base: 200ms", "retry_base: 1s") + (
        "verify: {prefix_rate: 100000, max_sends: 50}\n"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_smsc(Path(tmp), port, "--receipt-delay", "0", "--receipts", receipts) as smsc,
    ):
        tmp_path = Path(tmp)
        raw_rate, raw_cpu = await raw_smpp(port, n)
        smsc.log.write_text("")  # the node's count starts here
        assert smsc.proc is not None
        smsc_cpu = cpu_seconds(smsc.proc.pid)
        async with running_api(tmp_path, extra_config=config, usage=True) as api:
            auth = api.auth("acme:developer")
            load_avg = os.getloadavg()[0]
            url = f"http://127.0.0.1:{api.client.server.port}"
            client = await asyncio.create_subprocess_exec(
                sys.executable,
                str(CLIENT),  # this folder's client, whichever code the node runs
                url,
                api.keys["acme:developer"],
                str(n),
                str(CONCURRENCY),
                ACME_NUMBER,
                cwd=REPO,
                env=cli_env(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 24,  # the ids come back on one line
            )
            assert client.stdin is not None and client.stdout is not None
            assert (await client.stdout.readline()).strip() == b"ready"
            cpu = time.process_time()  # the node's CPU: API, queue, SMPP client
            client.stdin.write(b"go\n")
            await client.stdin.drain()
            result = json.loads(await client.stdout.readline())
            client_cpu = cpu_seconds(client.pid) / n  # its work is done; only its exit is left
            if await client.wait() != 0:
                raise SystemExit("the load client failed")
            accepted_s = float(result["seconds"])
            started = float(result["started"])
            while smsc.count() < n and time.time() - started < 120:
                await asyncio.sleep(0.05)
            delivered_s = time.time() - started
            node_cpu = (time.process_time() - cpu) / n
            smsc_cpu = (cpu_seconds(smsc.proc.pid) - smsc_cpu) / n
            messaging = api.app[MESSAGING]
            commits = messaging.commits
            receipted = 0
            if receipts == "delivered":  # every message must reach 'delivered'
                while time.time() - started < 180:
                    receipted = messaging.store.counts().get("delivered", 0)
                    if receipted >= n:
                        break
                    await asyncio.sleep(0.1)
            receipted_s = time.time() - started
            load_avg = max(load_avg, os.getloadavg()[0])
            await asyncio.sleep(1.0)  # any double would show up now
            texts = Counter(g["text"] for g in smsc.received())
            lost = sum(1 for i in range(n) if texts[f"bench {i}"] == 0)
            doubled = sum(c - 1 for c in texts.values() if c > 1)

            # Verification checks: wrong codes (4 per verification keep it pending).
            vids: list[str] = []
            for i in range((checks + 3) // 4):
                r = await api.client.post(
                    "/v1/verifications", json={"to": f"+32476{i:06d}"}, headers=auth
                )
                assert r.status == 201, await r.text()
                vids.append((await r.json())["id"])
            latencies: list[float] = []
            for i in range(checks):
                t0 = time.perf_counter()
                r = await api.client.post(
                    f"/v1/verifications/{vids[i // 4]}/check",
                    json={"code": "0000000"},
                    headers=auth,
                )
                latencies.append(time.perf_counter() - t0)
                assert r.status == 200
            health: list[float] = []
            for _ in range(checks):
                t0 = time.perf_counter()
                await api.client.get("/healthz")
                health.append(time.perf_counter() - t0)
    return {
        "messages": n,
        "load": load_avg,
        "accepted": n / accepted_s,
        "delivered": n / delivered_s,
        "raw_rate": raw_rate,
        "raw_cpu_us": raw_cpu * 1e6,
        "node_cpu_us": node_cpu * 1e6,
        "client_cpu_us": client_cpu * 1e6,
        "smsc_cpu_us": smsc_cpu * 1e6,
        "writes_per_commit": commits.writes / max(1, commits.commits),
        "receipted": receipted,
        "receipted_rate": receipted / receipted_s,
        "lost": lost,
        "doubled": doubled,
        "check_p50_ms": pct(latencies, 0.5) * 1000,
        "check_p99_ms": pct(latencies, 0.99) * 1000,
        "check_mean_ms": statistics.mean(latencies) * 1000,
        "health_p50_ms": pct(health, 0.5) * 1000,
        "health_p99_ms": pct(health, 0.99) * 1000,
    }


def show(r: dict[str, float], receipts: str) -> None:
    accepted, delivered, raw_rate = r["accepted"], r["delivered"], r["raw_rate"]
    print(
        f"messages: {r['messages']:.0f}, {CONCURRENCY} concurrent HTTP clients in another "
        f"process, SMSC on loopback, receipts: {receipts}, load average {r['load']:.1f} (2 cores)"
    )
    print(
        f"  accepted into the queue   {accepted:8.0f} messages/s  (target {TARGET}: "
        f"ratio {accepted / TARGET:.2f}; raw smpp34 client: ratio {accepted / raw_rate:.2f})"
    )
    print(
        f"  delivered to the SMSC     {delivered:8.0f} messages/s  (target {TARGET}: "
        f"ratio {delivered / TARGET:.2f}; raw smpp34 client: ratio {delivered / raw_rate:.2f})"
    )
    print(f"  raw smpp34 client, same SMSC, same run: {raw_rate:.0f} submits/s")
    node = r["node_cpu_us"]
    print(
        f"  node CPU per message (HTTP accept, queue, SMPP submit): {node:.0f} us, "
        f"i.e. {1e6 / node:.0f} messages/s per core if the node had one to itself "
        f"(raw smpp34 client: {r['raw_cpu_us']:.0f} us per submit)"
    )
    every = node + r["client_cpu_us"] + r["smsc_cpu_us"]
    print(
        f"  CPU per message, all processes: {every:.0f} us (node {node:.0f}, HTTP client "
        f"{r['client_cpu_us']:.0f}, SMSC {r['smsc_cpu_us']:.0f}): {TARGET}/s needs "
        f"{every * TARGET / 1e6:.2f} of the 2 cores"
    )
    print(f"  group commit: {r['writes_per_commit']:.1f} writes per transaction")
    if receipts == "delivered":
        print(
            f"  delivered receipts stored {r['receipted']:.0f} of {r['messages']:.0f}, "
            f"{r['receipted_rate']:8.0f} messages/s reached 'delivered'"
        )
    print(f"  lost {r['lost']:.0f}, doubled {r['doubled']:.0f}")
    p50, p99, h99 = r["check_p50_ms"], r["check_p99_ms"], r["health_p99_ms"]
    print(
        f"verification check over HTTP: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        f"(GET /healthz p50 {r['health_p50_ms']:.1f} ms, p99 {h99:.1f} ms; ratio p99 "
        f"{p99 / h99:.1f})"
    )
    print(f"  mean {r['check_mean_ms']:.1f} ms")


def failed(r: dict[str, float], receipts: str) -> bool:
    unreceipted = receipts == "delivered" and r["receipted"] < r["messages"]
    return bool(r["lost"] or r["doubled"] or unreceipted)


def in_child(code: Path, argv: list[str]) -> dict[str, float]:
    """One measure in a fresh interpreter on `code`'s modules (this file's measure)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXVOICE_")}
    env["PYTHONPATH"] = str(code)
    # This file's code, run by path from `code`'s folder: its imports are `code`'s (as a
    # script its own folder would come first, and bench/statistics.py hide the stdlib's).
    run_this = (
        f"import runpy, sys; sys.argv = {[__file__, '--json', *argv]!r}; "
        f"runpy.run_path({__file__!r}, run_name='__main__')"
    )
    out = subprocess.run(
        [sys.executable, "-c", run_this],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


FIGURES = (
    ("accepted/s", "accepted", "{:.0f}"),
    ("delivered/s", "delivered", "{:.0f}"),
    ("node CPU us/message", "node_cpu_us", "{:.0f}"),
    ("client CPU us/message", "client_cpu_us", "{:.0f}"),
    ("SMSC CPU us/message", "smsc_cpu_us", "{:.0f}"),
    ("writes per commit", "writes_per_commit", "{:.1f}"),
    ("check p99 ms", "check_p99_ms", "{:.1f}"),
    ("lost + doubled", "lost", "{:.0f}"),
    ("load average", "load", "{:.1f}"),
)


def side_by_side(args: argparse.Namespace, child_argv: list[str]) -> int:
    codes = {"this": REPO, "against": args.against.resolve()}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in codes}
    for _ in range(args.rounds):
        for name, code in codes.items():
            r = in_child(code, child_argv)
            r["lost"] += r["doubled"]
            runs[name].append(r)
    print(
        f"bench messages: {args.messages} messages, receipts {args.receipts}, "
        f"{args.rounds} rounds alternating (each: this | against), against {codes['against']}"
    )
    for label, key, form in FIGURES:
        cells = [
            " / ".join(form.format(r[key]) for r in runs[name]) for name in ("this", "against")
        ]
        line = f"  {label:22s} {cells[0]:>24s} | {cells[1]:<24s}"
        if key in ("accepted", "delivered", "node_cpu_us"):
            mine = statistics.median(r[key] for r in runs["this"])
            theirs = statistics.median(r[key] for r in runs["against"])
            line += f" ratio of medians {mine / theirs:.2f}"
        print(line)
    return 1 if any(r["lost"] for r in runs["this"]) else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench messages")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--checks", type=int, default=400)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--receipts",
        choices=("delivered", "none"),
        default="none",
        help="the SMSC sends a delivery receipt per message (default: none)",
    )
    parser.add_argument("--against", type=Path, help="another checkout, side by side")
    parser.add_argument("--rounds", type=int, default=2, help="with --against")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    if args.quick:
        args.messages, args.checks = 300, 80
    if args.against:
        child = ["--messages", str(args.messages), "--checks", str(args.checks)]
        return side_by_side(args, [*child, "--receipts", args.receipts])
    result = asyncio.run(run(args.messages, args.checks, args.receipts))
    if args.json:
        print(json.dumps(result))
    else:
        show(result, args.receipts)
    return 1 if failed(result, args.receipts) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
