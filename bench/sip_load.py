"""SIP load: a real node (Kamailio edge + pjsua2 workers) driven by sipp on loopback, beside
the floor of the library (bare pjsua2 answering machines) and sipp's own UAS, in one run.

Measures, in one run:
- start-up: all workers up (healthz) after the node starts; a killed worker replaced;
- idle cost: CPU of one idle worker and of the whole idle node, from /proc;
- memory: PSS (from /proc/PID/smaps_rollup, shared pages counted once) per call slot, idle
  and at the concurrency peak;
- the most concurrent IVR calls (prompt playing, a DTMF digit sent and answered) with zero
  failed calls, stepping up until a step fails (that step is printed);
- the CPS ceiling with media (answer, prompt, hang-up) with zero failures, and p50/p99 call
  set-up (INVITE to 200 OK, from sipp's response-time trace) at each rate;
- the same concurrency and CPS steps against N bare pjsua2 processes of the same wheel
  (bench/bare_pjsua2.py), printed as engine / bare ratios; and sipp's UAS alone as the
  signalling bound.

Run: ./run bench sip_load [--quick] [--workers N] [--max-calls N] [--step-seconds N]
Everything stays on 127.0.0.1, is bounded in calls and time, and stops by itself. The
figures depend on what else runs on the machine: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.procstat import (
    Idle,
    cpu_seconds,
    load,
    machine_line,
    machine_ticks,
    measure_idle,
    measure_idle_pids,
    parts_of,
    pss_kb,
    tree,
    workers_by_port,
)
from bench.sip_load_procs import (
    MAX_WORKERS,
    RTP_LOW,
    control_plane,
    histograms,
    lag_line,
    replace_time,
    schedstat,
    start_bare,
    start_node,
    stop_bare,
    stop_node,
    wait_up,
)
from bench.sip_load_report import Rate, Step, report
from flexvoice.sip.addresses import RTP_PORTS_PER_WORKER
from flexvoice.sip.pool import STABLE_AFTER
from tests.conftest import free_port_range
from tests.sipptool import SCENARIOS, free_udp_pair


def sipp(args: list[str], timeout: float) -> tuple[int, int, str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    out = proc.stdout + proc.stderr

    def count(label: str) -> int:
        for line in out.splitlines():
            if line.strip().startswith(label):
                return int(line.split("|")[2].split()[0])
        return 0

    return count("Successful call"), count("Failed call"), out


def uac(
    scenario: str | Path,
    target: str,
    number: str,
    *,
    calls: int,
    rate: float,
    limit: int,
    hold_ms: int,
    trace_dir: Path | None = None,
    inf: Path | None = None,
) -> list[str]:
    media = str(free_udp_pair())
    path = scenario if isinstance(scenario, Path) else SCENARIOS / scenario
    args = [
        "sipp", "-sf", str(path), "-s", number, "-m", str(calls),
        "-r", str(rate), "-l", str(limit), "-d", str(hold_ms), "-i", "127.0.0.1", "-p", "0",
        "-mp", media, "-nostdin", "-timeout", "300s", "-timeout_error",
        "-recv_timeout", "20000", "-key", "rtp_port", media, target,
    ]  # fmt: skip
    if trace_dir is not None:
        args += ["-trace_rtt", "-rtt_freq", "1"]
        if os.environ.get("SIP_LOAD_KEEP"):
            args += ["-trace_err"]  # <scenario>_<pid>_errors.log beside the node's logs
    if inf is not None:
        args += ["-inf", str(inf)]
    return args


def setup_times_ms(trace_dir: Path) -> list[float]:
    times: list[float] = []
    for csv in trace_dir.glob("*_rtt.csv"):
        for line in csv.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2:
                try:
                    times.append(float(parts[1]))
                except ValueError:
                    continue
        csv.unlink()
    return times


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# The workers' ports live below 20000, where other test runs' free_port_range never looks and
# the kernel hands out no ephemeral ports: a port taken mid-run would fail the start-up.
@dataclass
class Target:
    """Where sipp sends calls: the edge, or N bare processes (a line of `inf` per call)."""

    name: str
    address: str
    tmp: Path
    ports: list[int] = field(default_factory=list)  # bare: one SIP port per process
    http: int | None = None  # the engine's HTTP port: its event-loop lag per step

    @property
    def inf(self) -> Path | None:
        if not self.ports:
            return None
        path = self.tmp / f"{self.name}.csv"
        path.write_text("SEQUENTIAL\n" + "".join(f"{p};\n" for p in self.ports))
        return path

    def scenario(self, name: str) -> Path:
        """The same scenario; for bare processes it first sends each call to its process."""
        if not self.ports:
            return SCENARIOS / name
        text = (SCENARIOS / name).read_text()
        opening = re.search(r"<scenario[^>]*>", text)
        assert opening is not None
        setdest = (
            '\n  <nop><action><setdest host="127.0.0.1" port="[field0]" protocol="udp"/>'
            "</action></nop>"
        )
        path = self.tmp / f"bare_{name}"
        path.write_text(text[: opening.end()] + setdest + text[opening.end() :])
        return path


def concurrency_step(t: Target, calls: int, pids: list[int], ramp_cps: int) -> Step:
    """`calls` IVR calls held together: ramped at `ramp_cps`, then all up for 6 s or more."""
    ramp = calls / ramp_cps
    args = uac(
        t.scenario("uac_ivr.xml"), t.address, "+3225550001", calls=calls, rate=ramp_cps,
        limit=calls, hold_ms=int(ramp * 1000) + 6000, inf=t.inf,
    )  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(ramp + 3)  # every call up: the peak
    pss = pss_kb(pids) if proc.poll() is None else 0
    out, _ = proc.communicate(timeout=ramp * 3 + 120)
    ok = counted(out, "Successful call")
    bad = counted(out, "Failed call")
    peak_match = re.search(r"Peak was (\d+) calls", out)
    peak = int(peak_match.group(1)) if peak_match else 0
    good = ok == calls and bad == 0
    if not good:
        (t.tmp.parent / f"sip_load_{t.name}_{calls}.txt").write_text(out)
    line = (
        f"  {t.name:6s} {calls:5d} IVR calls at once: {'ok' if good else 'FAILED'} "
        f"({ok} ok, {bad} failed, peak {peak} up; {load()})"
    )
    print(line, flush=True)
    return Step(calls, good, peak, pss, line)


def counted(out: str, label: str) -> int:
    for line in out.splitlines():
        if line.strip().startswith(label):
            return int(line.split("|")[2].split()[0])
    return 0


def concurrency_ceiling(t: Target, steps: list[int], pids: list[int], ramp: int) -> list[Step]:
    done: list[Step] = []
    for calls in steps:
        done.append(concurrency_step(t, calls, pids, ramp))
        if not done[-1].ok:
            break
    return done


def cps_ceiling(
    t: Target,
    rates: list[int],
    seconds: int,
    tmp: Path,
    pids: list[int],
    idle_cores: float,
    parts: tuple[dict[str, list[int]], dict[str, float]] | None = None,
) -> list[Rate]:
    """Each rate for `seconds`, short calls with a prompt, until one has a failed call. CPU
    per call (less what the processes burn idle) depends far less on what else runs on the
    machine than set-up times do. `parts`: the engine's processes by job and their idle cores,
    to say which of them spends the CPU."""
    done: list[Rate] = []
    for rate in rates:
        before = sum(cpu_seconds(p) for p in pids)
        part_before = {
            k: sum(cpu_seconds(p) for p in ps) for k, ps in (parts or ({}, {}))[0].items()
        }
        lag_before = histograms(t.http) if t.http else {}
        sched_before = schedstat(pids[0]) if t.http else (0.0, 0.0, 0)
        ticks_before = machine_ticks()
        started = time.monotonic()
        ok, bad, _ = sipp(
            uac(t.scenario("uac_call.xml"), t.address, "+3225550002", calls=rate * seconds,
                rate=rate, limit=rate * 2, hold_ms=500, trace_dir=tmp, inf=t.inf),
            timeout=seconds * 4 + 60,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        machine = machine_line(ticks_before, machine_ticks())
        busy = sum(cpu_seconds(p) for p in pids) - before - idle_cores * elapsed
        calls = max(1, ok + bad)
        cpu_ms = 1000 * busy / calls if pids else float("nan")
        parts_ms = {}
        if parts:
            for part, ps in parts[0].items():
                spent = sum(cpu_seconds(p) for p in ps) - part_before[part]
                parts_ms[part] = 1000 * (spent - parts[1].get(part, 0.0) * elapsed) / calls
        times = setup_times_ms(tmp)
        good = bad == 0 and ok == rate * seconds
        done.append(Rate(rate, good, pct(times, 0.5), pct(times, 0.99), cpu_ms, parts_ms))
        split = ", ".join(f"{k} {v:.1f}" for k, v in parts_ms.items())
        print(
            f"  {t.name:6s} {rate:4d} CPS for {seconds}s: {ok} ok, {bad} failed; set-up p50 "
            f"{done[-1].p50:.1f} ms, p99 {done[-1].p99:.1f} ms; CPU {cpu_ms:.1f} ms per call"
            f"{f' ({split})' if split else ''} ({load()}; {machine})",
            flush=True,
        )
        if t.http:
            ran, waited, turns = (
                b - a for a, b in zip(sched_before, schedstat(pids[0]), strict=True)
            )
            print(
                f"         {lag_line(lag_before, histograms(t.http))}; the loop's thread "
                f"{ran:.2f} s on a CPU, {waited:.2f} s waiting for one ({turns:.0f} turns, "
                f"{1000 * waited / max(1, turns):.2f} ms each), in {elapsed:.1f} s",
                flush=True,
            )
        if not good:
            break
    return done


def main(argv: list[str]) -> int:
    # SIGTERM unwinds like Ctrl-C: every `finally` below stops what it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    parser = argparse.ArgumentParser(prog="bench sip_load")
    parser.add_argument("--quick", action="store_true", help="short run (smoke)")
    parser.add_argument("--workers", type=int, default=300, help="workers (4 calls each)")
    parser.add_argument("--max-calls", type=int, default=1200, help="highest concurrency step")
    parser.add_argument("--step", type=int, default=200, help="concurrency added per step")
    parser.add_argument("--ramp", type=int, default=100, help="CPS while a step ramps up")
    parser.add_argument("--step-seconds", type=int, default=10, help="length of a CPS step")
    parser.add_argument("--idle-seconds", type=int, default=10)
    parser.add_argument("--no-bare", action="store_true", help="skip the bare pjsua2 floor")
    parser.add_argument("--no-cps", action="store_true", help="skip the CPS steps")
    parser.add_argument("--rates", default="", help="CPS steps: 50,100,200")
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.max_calls, args.step, args.step_seconds = 10, 40, 20, 3
        args.idle_seconds = 5
    if args.workers > MAX_WORKERS:
        print(f"bench sip_load: --workers at most {MAX_WORKERS}")
        return 2
    rates = [50, 100, 150, 200, 250, 300, 400] if not args.quick else [20, 40]
    if args.rates:
        rates = [int(r) for r in args.rates.split(",")]
    steps = list(range(args.step, args.max_calls + 1, args.step))
    if shutil.which("sipp") is None or shutil.which("kamailio") is None:
        print("bench sip_load: needs sipp and kamailio (./run installs them)")
        return 1
    n = args.workers
    tmp = Path(tempfile.mkdtemp(prefix="flexvoice-bench-"))
    os.chdir(tmp)  # sipp writes its traces into the working folder
    print(f"machine: {os.cpu_count()} cores; {load()} at the start; {n} workers / processes")
    # 1. The engine: edge, control plane, n workers.
    node, http, edge, sip_base = start_node(tmp, n)
    try:
        up_s = wait_up(http, node, n, 180)
        print(f"engine: {n} workers up in {up_s:.1f}s ({load()})", flush=True)
        time.sleep(3)
        workers = list(workers_by_port(sip_base, n).values())
        root = control_plane(node)
        idle = measure_idle(root, workers, args.idle_seconds)
        print(
            f"engine idle: node {idle.cores:.3f} cores, one worker {idle.worker_pct:.3f} % of "
            f"a core, PSS {idle.pss_kb / 1024:.0f} MB ({load()})",
            flush=True,
        )
        # Worker 0 up longer than STABLE_AFTER: its death is not a crash loop (no back-off).
        time.sleep(max(0.0, STABLE_AFTER + 1 - 3 - args.idle_seconds))
        replaced = replace_time(http, node, n, sip_base)
        print(f"engine: a killed worker replaced in {replaced:.2f}s", flush=True)
        print("concurrent IVR calls (prompt, DTMF), stepping up:", flush=True)
        pids = tree(root)
        engine_steps = concurrency_ceiling(Target("engine", f"127.0.0.1:{edge}", tmp), steps,
                                           pids, args.ramp)  # fmt: skip
        print("CPS with media (answer, prompt, hang-up after 0.5 s), stepping up:", flush=True)
        engine_rates: list[Rate] = []
        if not args.no_cps:
            engine_rates = cps_ceiling(Target("engine", f"127.0.0.1:{edge}", tmp, http=http), rates,
                                       args.step_seconds, tmp, tree(root), idle.cores,
                                       (parts_of(root), idle.parts))  # fmt: skip
    finally:
        stop_node(node)
    # 2. The floor: n bare pjsua2 processes of the same wheel, same scenarios.
    bare_steps: list[Step] = []
    bare_rates: list[Rate] = []
    bare_idle: Idle | None = None
    if not args.no_bare:
        started = time.monotonic()
        bare, base = start_bare(tmp, n, RTP_LOW + RTP_PORTS_PER_WORKER * n)
        try:
            print(f"bare: {n} processes up in {time.monotonic() - started:.1f}s", flush=True)
            time.sleep(3)
            pids = [p.pid for p in bare]
            bare_idle = measure_idle_pids(pids, args.idle_seconds)
            print(
                f"bare idle: {bare_idle.cores:.3f} cores, one process "
                f"{bare_idle.worker_pct:.3f} % of a core, PSS {bare_idle.pss_kb / 1024:.0f} MB",
                flush=True,
            )
            target = Target("bare", f"127.0.0.1:{base}", tmp, [base + i for i in range(n)])
            bare_steps = concurrency_ceiling(target, steps, pids, args.ramp)
            if not args.no_cps:
                bare_rates = cps_ceiling(
                    target, rates, args.step_seconds, tmp, pids, bare_idle.cores
                )
        finally:
            stop_bare(bare)
    # 3. The signalling bound: sipp's own UAS.
    uas_port = free_port_range(1)
    sipp_rates: list[Rate] = []
    uas = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "uas_answer_bye.xml"), "-i", "127.0.0.1", "-p",
         str(uas_port), "-mp", str(free_udp_pair()), "-nostdin", "-timeout", "600s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        if not args.no_cps:
            sipp_rates = cps_ceiling(Target("sipp", f"127.0.0.1:{uas_port}", tmp),
                                     [r * 2 for r in rates], args.step_seconds, tmp, [],
                                     0.0)  # fmt: skip
    finally:
        uas.kill()
        uas.wait()
    if os.environ.get("SIP_LOAD_KEEP"):  # the node's logs and sipp's traces, to read failures
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(n, up_s, replaced, idle, bare_idle, engine_steps, bare_steps, engine_rates,
                  bare_rates, sipp_rates)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
