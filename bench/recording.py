"""Recording load: concurrent whole-call recordings on a pool of pjsua2 workers, driven by sipp
callers that talk (g711a.pcap) on loopback.

For each step (calls at once: 4, 8, ... up to --max-calls) it runs the same calls twice, side
by side: without recording (the baseline) and with every call recorded, and prints
- calls answered, recordings completed, recordings lost (no file, failed, or not within 1 s
  of the call's length, or silent where the caller talked): the target is zero lost;
- worker CPU seconds per call, recorded and not, and their ratio;
- bytes written per recorded second.

Run: ./run bench recording [--quick] [--max-calls N] [--hold-ms MS]
Everything stays on 127.0.0.1, is bounded in calls and time, and stops by itself.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import random
import sys
import tempfile
import wave
from pathlib import Path

from flexvoice.recordings.service import RecordingService
from flexvoice.recordings.store import RecordingStore
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.pool import PoolSettings, WorkerPool
from flexvoice.storage.sqlite import connect
from tests.conftest import free_port_range
from tests.sipptool import run_uac_async

RATE = 8000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


def speech_rms(path: Path) -> float:
    with wave.open(str(path)) as audio:
        data = array.array("h")
        data.frombytes(audio.readframes(audio.getnframes()))
    window = data[int(1.8 * RATE) : int(4.0 * RATE)]  # g711a.pcap talks from 1.5 s on
    return (sum(x * x for x in window) / len(window)) ** 0.5 if window else 0.0


async def run_step(calls: int, workers: int, hold_ms: int, record: bool, tmp: Path) -> dict:
    conn = connect(tmp / f"bench-{calls}-{record}.db")
    service = RecordingService(RecordingStore(conn), tmp / "recordings")
    legs: list[SipLeg] = []

    async def on_incoming(leg: SipLeg) -> None:
        legs.append(leg)
        await leg.answer()
        if record:
            await service.start(leg, "bench")
        await leg.wait_ended()

    pool = WorkerPool(
        PoolSettings(
            count=workers,
            base_port=free_port_range(workers),
            rtp_base=random.randrange(30000, 50000, 2),
        ),
        on_incoming,
    )
    await pool.start()
    try:
        pids = [w.proc.pid for w in pool.workers if w.proc is not None]
        before = sum(cpu_seconds(pid) for pid in pids)
        # One sipp per worker (its port), each with its share of the calls at once.
        share = [calls // workers + (1 if i < calls % workers else 0) for i in range(workers)]
        runs = [
            run_uac_async(
                "uac_talk.xml",
                f"127.0.0.1:{pool.workers[i].port}",
                "+3225551001",
                calls=n,
                limit=n,
                rate=100,
                hold_ms=hold_ms,
                timeout=hold_ms / 1000 + 30,
            )
            for i, n in enumerate(share)
            if n
        ]
        results = await asyncio.gather(*runs)
        for _ in range(200):
            if not service.live and not service.tasks:
                break
            await asyncio.sleep(0.05)
        after = sum(cpu_seconds(pid) for pid in pids)
    finally:
        await pool.stop(grace=0)
    answered = sum(r.successful for r in results)
    rows = service.store.list("bench")
    lost = 0
    written = seconds = 0.0
    for row in rows:
        leg = next((leg for leg in legs if leg.call_id == row.call_id), None)
        talked = (
            (leg.ended_at - leg.answered_at).total_seconds()
            if leg is not None and leg.ended_at and leg.answered_at
            else 0.0
        )
        path = tmp / "recordings" / row.path
        ok = (
            row.status == "completed"
            and row.duration_seconds is not None
            and abs(row.duration_seconds - talked) < 1.0
            and path.is_file()
            and speech_rms(path) > 300
        )
        lost += 0 if ok else 1
        written += row.size_bytes or 0
        seconds += row.duration_seconds or 0.0
    if record:
        lost += max(0, answered - len(rows))
    conn.close()
    return {
        "answered": answered,
        "recorded": len(rows),
        "lost": lost,
        "cpu_per_call": (after - before) / max(1, answered),
        "bytes_per_s": written / seconds if seconds else 0.0,
    }


async def bench(args: argparse.Namespace) -> int:
    steps = [4] if args.quick else [n for n in (4, 8, 16, 32) if n <= args.max_calls]
    workers = max(1, -(-max(steps) // 4))
    print(f"workers {workers} (4 calls each), hold {args.hold_ms} ms, sipp talks g711a.pcap")
    print(f"{'calls':>5} {'answered':>8} {'recorded':>8} {'lost':>4} "
          f"{'cpu/call plain':>14} {'cpu/call rec':>12} {'ratio':>6} {'bytes/s':>8}")  # fmt: skip
    rc = 0
    with tempfile.TemporaryDirectory(prefix="flexvoice-bench-rec-") as tmp:
        for calls in steps:
            plain = await run_step(calls, workers, args.hold_ms, False, Path(tmp))
            rec = await run_step(calls, workers, args.hold_ms, True, Path(tmp))
            ratio = rec["cpu_per_call"] / plain["cpu_per_call"] if plain["cpu_per_call"] else 0
            print(
                f"{calls:>5} {rec['answered']:>8} {rec['recorded']:>8} {rec['lost']:>4} "
                f"{plain['cpu_per_call']:>13.3f}s {rec['cpu_per_call']:>11.3f}s "
                f"{ratio:>6.2f} {rec['bytes_per_s']:>8.0f}",
                flush=True,
            )
            if rec["lost"] or rec["answered"] < calls:
                rc = 1
    return rc


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench recording")
    parser.add_argument("--quick", action="store_true", help="one step of 4 calls")
    parser.add_argument("--max-calls", type=int, default=16)
    parser.add_argument("--hold-ms", type=int, default=6000)
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(bench(args))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
