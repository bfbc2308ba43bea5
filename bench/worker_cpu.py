"""A media worker's CPU per call, alone: worker processes driven straight by this script (no
control plane, no edge: on `incoming` it answers and plays a prompt, as the node does for a
number with a prompt), beside the same workers of another checkout (e.g. main) and the bare
pjsua2 answering machine (bench/bare_pjsua2.py), in one run, rounds alternating.

sip_load measures the whole node on a machine others share, where the control plane's and
the edge's queues swing set-up times by seconds; the worker's own CPU per call, read from
/proc less what the processes burn idle, moves far less. Two calls:
- `call`: answer, prompt, hang-up after 0.5 s (sip_load's CPS step);
- `talk`: the caller also sends RTP (sipp plays a G.711 capture) for the call's length,
  so the worker's cost per media packet shows (its loop wakes for each one).

Run: ./run bench worker_cpu [--against DIR] [--workers 8] [--rate 30] [--seconds 10]
     [--rounds 2] [--scenario call|talk]
DIR is a checkout of another version (git worktree or `git archive main | tar -x -C DIR`).
Everything stays on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from bench import REPO
from bench.procstat import cpu_seconds, load
from bench.sip_load import Target, sipp, uac
from bench.sip_load_procs import RTP_LOW, low_port_range, start_bare, stop_bare
from flexvoice.sip.addresses import rtp_ports
from tests.poolkit import tone

HOLD_MS = {"call": 500, "talk": 3000}
SCENARIO = {"call": "uac_call.xml", "talk": "uac_talk.xml"}


def drive(proc: subprocess.Popen[bytes], prompt: str, ready: threading.Event) -> None:
    """The control plane's part, as short as it gets: answer and play on each `incoming`."""
    assert proc.stdout is not None and proc.stdin is not None
    out: IO[bytes] = proc.stdin
    for line in proc.stdout:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("t") == "ready":
            ready.set()
        elif msg.get("t") == "incoming":
            call = msg["call"]
            answer = {"t": "answer", "call": call}
            play = {"t": "play", "call": call, "play": "p", "files": [prompt], "loop": False}
            try:
                out.write((json.dumps(answer) + "\n" + json.dumps(play) + "\n").encode())
                out.flush()
            except OSError:
                return


def start_workers(
    code: Path, tmp: Path, count: int, prompt: str
) -> tuple[list[subprocess.Popen[bytes]], int]:
    base = low_port_range(count)
    procs = []
    for i in range(count):
        proc = subprocess.Popen(
            [sys.executable, "-m", "flexvoice.sip.worker", "--index", str(i), "--host",
             "127.0.0.1", "--port", str(base + i), "--rtp-port",
             str(rtp_ports(RTP_LOW, i).start)],
            cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=open(tmp / f"worker_{i}.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )  # fmt: skip
        ready = threading.Event()
        threading.Thread(target=drive, args=(proc, prompt, ready), daemon=True).start()
        procs.append(proc)
        if not ready.wait(30):
            stop_workers(procs)
            raise PortTaken(f"bench: worker {i} of {code} did not start (see {tmp})")
    return procs, base


class PortTaken(RuntimeError):
    """A worker did not start (on a shared machine: a port taken since it was found free)."""


def start_retrying(
    code: Path, tmp: Path, count: int, prompt: str
) -> tuple[list[subprocess.Popen[bytes]], int]:
    try:
        return start_workers(code, tmp, count, prompt)
    except PortTaken:
        time.sleep(1)
        return start_workers(code, tmp, count, prompt)


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.stdin:
            try:
                proc.stdin.write(b'{"t":"shutdown"}\n')
                proc.stdin.close()
            except OSError:
                pass
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def step(name: str, pids: list[int], target: Target, args: argparse.Namespace) -> float:
    """CPU ms per call above idle for one sipp step; prints it with the load."""
    idle_s = 3.0
    before = sum(cpu_seconds(p) for p in pids)
    time.sleep(idle_s)
    idle = (sum(cpu_seconds(p) for p in pids) - before) / idle_s
    before = sum(cpu_seconds(p) for p in pids)
    started = time.monotonic()
    calls = args.rate * args.seconds
    ok, bad, _ = sipp(
        uac(target.scenario(SCENARIO[args.scenario]), target.address, "+3225550002",
            calls=calls, rate=args.rate, limit=4 * args.workers, hold_ms=HOLD_MS[args.scenario],
            inf=target.inf),
        timeout=args.seconds * 4 + 60,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    busy = sum(cpu_seconds(p) for p in pids) - before - idle * elapsed
    per_call = 1000 * busy / max(1, ok + bad)
    print(
        f"  {name:8s} {args.scenario} {args.rate} CPS x {args.seconds}s: {ok} ok, {bad} failed; "
        f"CPU {per_call:.2f} ms per call (idle {100 * idle / len(pids):.3f} % of a core per "
        f"process) ({load()})",
        flush=True,
    )
    return per_call


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench worker_cpu")
    parser.add_argument("--against", default="", help="another checkout to compare with")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rate", type=int, default=30, help="calls per second")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scenario", choices=sorted(SCENARIO), default="call")
    parser.add_argument("--no-bare", action="store_true")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="flexvoice-bench-worker-"))
    os.chdir(tmp)  # sipp writes its files into the working folder
    (tmp / "prompts").mkdir()
    prompt = tmp / "prompts" / "bench_menu.wav"
    tone(prompt, 20.0)
    versions = [("this", REPO)] + ([("against", Path(args.against))] if args.against else [])
    results: dict[str, list[float]] = {}
    print(f"machine: {os.cpu_count()} cores; {load()}; {args.workers} processes each")
    for _ in range(args.rounds):
        for name, code in versions:
            procs, base = start_retrying(code, tmp, args.workers, str(prompt))
            try:
                target = Target(
                    name, f"127.0.0.1:{base}", tmp, [base + i for i in range(len(procs))]
                )
                results.setdefault(name, []).append(
                    step(name, [p.pid for p in procs], target, args)
                )
            finally:
                stop_workers(procs)
        if not args.no_bare:
            bare, base = start_bare(tmp, args.workers, RTP_LOW)
            try:
                target = Target(
                    "bare", f"127.0.0.1:{base}", tmp, [base + i for i in range(len(bare))]
                )
                results.setdefault("bare", []).append(
                    step("bare", [p.pid for p in bare], target, args)
                )
            finally:
                stop_bare(bare)
    print(f"== summary ({load()}): CPU ms per call, best of {args.rounds}")
    best = {name: min(values) for name, values in results.items()}
    for name, value in best.items():
        print(f"  {name:8s} {value:.2f} ms")
    if "against" in best:
        print(f"  this / against: {best['this'] / best['against']:.2f}")
    if "bare" in best:
        print(f"  bare / this: {best['bare'] / best['this']:.2f} (goal >= 0.7 for the engine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
