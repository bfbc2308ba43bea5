"""SMS and verification benchmark: `python -m bench messages [--messages N] [--quick]`.

A node (REST API, messaging, verification, usage sink) on loopback, its SMPP gateway bound to
the test SMSC (tests/smsc.py, PyPI smpp34's server) in its own process. Measures:
- messages accepted per second into the queue (POST /v1/messages over HTTP, 201 each),
- messages delivered per second to the SMSC (first POST to the SMSC's last submit_sm),
- that every message reached the SMSC exactly once (none lost, none doubled),
- verification check latency (POST /v1/verifications/{id}/check over HTTP), p50 and p99.
Baselines in the same run: a raw smpp34 client submitting to the same SMSC, and GET /healthz
latency on the same node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import smpp34

from bench import REPO
from flexvoice.appkeys import MESSAGING
from flexvoice.system import free_port
from tests.apikit import running_api
from tests.conftest import cli_env
from tests.smsctool import running_smsc, smpp_config

CONCURRENCY = 32
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


async def run(n: int, checks: int, receipts: str) -> int:
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
        async with running_api(tmp_path, extra_config=config, usage=True) as api:
            auth = api.auth("acme:developer")
            load_avg = os.getloadavg()[0]
            url = f"http://127.0.0.1:{api.client.server.port}"
            client = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.messages_client",
                url,
                api.keys["acme:developer"],
                str(n),
                str(CONCURRENCY),
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
            if await client.wait() != 0:
                raise SystemExit("the load client failed")
            accepted_s = float(result["seconds"])
            started = float(result["started"])
            while smsc.count() < n and time.time() - started < 120:
                await asyncio.sleep(0.05)
            delivered_s = time.time() - started
            node_cpu = (time.process_time() - cpu) / n
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
    accepted = n / accepted_s
    delivered = n / delivered_s
    print(
        f"messages: {n}, {CONCURRENCY} concurrent HTTP clients in another process, SMSC on "
        f"loopback, receipts: {receipts}, load average {load_avg:.1f} (2 cores)"
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
    print(
        f"  node CPU per message (HTTP accept, queue, SMPP submit): {node_cpu * 1e6:.0f} us, "
        f"i.e. {1 / node_cpu:.0f} messages/s per core if the node had one to itself "
        f"(raw smpp34 client: {raw_cpu * 1e6:.0f} us per submit)"
    )
    print(
        f"  group commit: {commits.writes} writes in {commits.commits} transactions "
        f"({commits.writes / max(1, commits.commits):.1f} per commit)"
    )
    if receipts == "delivered":
        print(
            f"  delivered receipts stored {receipted} of {n}, "
            f"{receipted / receipted_s:8.0f} messages/s reached 'delivered'"
        )
    print(f"  lost {lost}, doubled {doubled}")
    p50, p99 = pct(latencies, 0.5) * 1000, pct(latencies, 0.99) * 1000
    h50, h99 = pct(health, 0.5) * 1000, pct(health, 0.99) * 1000
    print(
        f"verification check over HTTP ({checks}): p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        f"(GET /healthz p50 {h50:.1f} ms, p99 {h99:.1f} ms; ratio p99 {p99 / h99:.1f})"
    )
    print(f"  mean {statistics.mean(latencies) * 1000:.1f} ms")
    return 1 if lost or doubled or (receipts == "delivered" and receipted < n) else 0


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
    args, _ = parser.parse_known_args(argv)
    if args.quick:
        args.messages, args.checks = 300, 80
    return asyncio.run(run(args.messages, args.checks, args.receipts))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
