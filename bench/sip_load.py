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
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench import REPO
from flexvoice.sip.addresses import RTP_PORTS_PER_WORKER, rtp_ports
from flexvoice.sip.pool import STABLE_AFTER
from tests.conftest import free_port_range
from tests.poolkit import tone
from tests.sipptool import SCENARIOS, free_udp_pair

IVR_FLOW = """\
flow: bench-ivr
description: Benchmark IVR - a long menu prompt, one digit, then a looping prompt until hang-up
start: menu
steps:
  menu:
    menu:
      prompt: bench_menu
      options: {"1": answer}
      timeout: 20s
      retries: 0
  answer:
    play: {prompt: bench_hold, loop: 100}
"""


def write_node(tmp: Path, workers: int) -> tuple[Path, int, int, int]:
    prompts = tmp / "prompts"
    (prompts / "en").mkdir(parents=True)
    for folder in (prompts, prompts / "en"):
        tone(folder / "bench_menu.wav", 20.0)
        tone(folder / "bench_hold.wav", 5.0)
    flows = tmp / "flows"
    flows.mkdir()
    (flows / "bench-ivr.yaml").write_text(IVR_FLOW)
    (tmp / "numbers.yaml").write_text(
        "accounts:\n  bench: {tariff: flexio-payu}\nnumbers:\n"
        '  "+3225550001": {account: bench, flow: bench-ivr}\n'
        '  "+3225550002": {account: bench, prompt: bench_menu}\n'
    )
    http = free_port_range(1)
    edge = free_port_range(1)
    base = low_port_range(workers)
    cfg = tmp / "flexvoice.yaml"
    cfg.write_text(
        f"""
http: {{host: 127.0.0.1, port: {http}}}
sip:
  edge: {{port: {edge}, ctl_socket: {tmp}/kamailio-ctl.sock}}
  workers: {{count: {workers}, base_port: {base}, drain_grace: 2s, rtp_base: {RTP_LOW}}}
  trunks: {REPO}/sip/trunks.yaml
  numbers: {tmp}/numbers.yaml
storage: {{database: {tmp}/flexvoice.db, recordings: {tmp}/recordings}}
paths: {{flows: {flows}, prompts: {prompts}, tariffs: {REPO}/metering/tariffs}}
logging: {{level: warning}}
"""
    )
    return cfg, http, edge, base


def tree(root_pid: int) -> list[int]:
    """A process and all its descendants."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        pid, ppid = (int(x) for x in line.split())
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pss_kb(pids: list[int]) -> int:
    """Proportional set size: each shared page counted once across the processes."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        total += int(match.group(1)) if match else 0
    return total


def workers_by_port(base: int, count: int) -> dict[int, int]:
    """index -> pid of whoever listens on UDP base + index (workers are forked from a
    template, so their command line does not tell them apart)."""
    out = subprocess.run(["ss", "-ulpnH"], capture_output=True, text=True).stdout
    found: dict[int, int] = {}
    for line in out.splitlines():
        port = int(line.split()[3].rsplit(":", 1)[1])
        match = re.search(r"pid=(\d+)", line)
        if match and base <= port < base + count:
            found[port - base] = int(match.group(1))
    return found


@dataclass
class Idle:
    cores: float  # the whole tree, in cores
    worker_pct: float  # one worker on average, in % of a core
    pss_kb: int
    parts: dict[str, float] = field(default_factory=dict)  # cores per part (engine only)


def parts_of(root_pid: int) -> dict[str, list[int]]:
    """The engine's processes by job: the control plane (the node's own process, with its
    threads), the edge (Kamailio), and the media workers with their template."""
    found: dict[str, list[int]] = {"control plane": [root_pid], "edge": [], "workers": []}
    for pid in tree(root_pid)[1:]:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        found["edge" if name.startswith("kamailio") else "workers"].append(pid)
    return found


def measure_idle(root_pid: int, workers: list[int], seconds: float) -> Idle:
    pids = tree(root_pid)
    parts = parts_of(root_pid)
    before = {p: cpu_seconds(p) for p in pids}
    time.sleep(seconds)
    after = {p: cpu_seconds(p) for p in pids}
    total = sum(after[p] - before[p] for p in pids)
    per_worker = sum(after[p] - before[p] for p in workers) / max(1, len(workers))
    cores = {
        part: sum(after.get(p, 0.0) - before.get(p, 0.0) for p in ps) / seconds
        for part, ps in parts.items()
    }
    return Idle(total / seconds, 100 * per_worker / seconds, pss_kb(pids), cores)


def load() -> str:
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


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
SIP_LOW = 6000
RTP_LOW = 10000
MAX_WORKERS = (20000 - RTP_LOW) // (2 * RTP_PORTS_PER_WORKER)


@dataclass
class Target:
    """Where sipp sends calls: the edge, or N bare processes (a line of `inf` per call)."""

    name: str
    address: str
    tmp: Path
    ports: list[int] = field(default_factory=list)  # bare: one SIP port per process

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


@dataclass
class Step:
    calls: int
    ok: bool
    peak: int  # sipp's own count of calls up at once
    pss_kb: int
    line: str


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


@dataclass
class Rate:
    cps: int
    ok: bool
    p50: float
    p99: float
    cpu_ms: float  # CPU per call above idle, all of the target's processes (nan: not measured)
    parts_ms: dict[str, float] = field(default_factory=dict)  # the same, per part of the engine


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
        started = time.monotonic()
        ok, bad, _ = sipp(
            uac(t.scenario("uac_call.xml"), t.address, "+3225550002", calls=rate * seconds,
                rate=rate, limit=rate * 2, hold_ms=500, trace_dir=tmp, inf=t.inf),
            timeout=seconds * 4 + 60,
        )  # fmt: skip
        elapsed = time.monotonic() - started
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
            f"{f' ({split})' if split else ''} ({load()})",
            flush=True,
        )
        if not good:
            break
    return done


def best(rates: list[Rate]) -> Rate | None:
    good = [r for r in rates if r.ok]
    return good[-1] if good else None


def start_node(tmp: Path, workers: int) -> tuple[subprocess.Popen[bytes], int, int, int]:
    cfg, http, edge, base = write_node(tmp, workers)
    # SIP_LOAD_NODE_CODE: another checkout's code for the node (e.g. main), to compare.
    code = Path(os.environ.get("SIP_LOAD_NODE_CODE", REPO))
    command = [sys.executable, "-m", "flexvoice", "--config", str(cfg), "serve"]
    # SIP_LOAD_PROFILE=FILE: the control plane sampled by py-spy (pip install py-spy; it runs
    # the node as its child, as attaching needs ptrace rights a container may not give),
    # written as collapsed stacks when the node stops.
    profile = os.environ.get("SIP_LOAD_PROFILE")
    if profile:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        command = [spy, "record", "-r", "200", "-f", "raw", "-o", profile, "--", *command]
    node = subprocess.Popen(
        command,
        cwd=code,
        env={**os.environ, "PYTHONPATH": str(code)},
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "node.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    return node, http, edge, base


def workers_up(http: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=2) as r:
            return int(json.loads(r.read())["workers"]["up"])
    except (OSError, ValueError, KeyError):
        return -1


def wait_up(http: int, node: subprocess.Popen[bytes], count: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if node.poll() is not None:
            raise SystemExit("bench: the node exited during start-up (see node.log)")
        if workers_up(http) == count:
            return time.monotonic() - started
        time.sleep(0.02)
    raise SystemExit(f"bench: {count} workers not up within {timeout:.0f}s")


def replace_time(http: int, node: subprocess.Popen[bytes], count: int, base: int) -> float:
    """SIGKILL worker 0 (up for a while) and time until the node has `count` workers again."""
    pid = workers_by_port(base, 1)[0]
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    while workers_up(http) == count and time.monotonic() - killed < 5:
        time.sleep(0.005)  # until the pool has seen it die
    wait_up(http, node, count, 30)
    return time.monotonic() - killed


def control_plane(node: subprocess.Popen[bytes]) -> int:
    """The node's own process (under SIP_LOAD_PROFILE, py-spy's child)."""
    if not os.environ.get("SIP_LOAD_PROFILE"):
        return node.pid
    for child in Path(f"/proc/{node.pid}/task/{node.pid}/children").read_text().split():
        if "flexvoice" in Path(f"/proc/{child}/cmdline").read_text(errors="replace"):
            return int(child)
    raise SystemExit("bench: no node under py-spy")


def stop_node(node: subprocess.Popen[bytes]) -> None:
    if node.poll() is not None:
        return
    # The node itself is told to stop: py-spy writes its profile when its child exits.
    os.kill(control_plane(node), signal.SIGTERM)
    try:
        node.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()


def low_port_range(count: int) -> int:
    """`count` consecutive UDP+TCP ports free between SIP_LOW and RTP_LOW."""
    for base in range(SIP_LOW, RTP_LOW - count, 50):
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    sock = socket.socket(socket.AF_INET, kind)
                    socks.append(sock)
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise SystemExit(f"bench: no {count} free ports between {SIP_LOW} and {RTP_LOW}")


def start_bare(tmp: Path, count: int, rtp_base: int) -> tuple[list[subprocess.Popen[bytes]], int]:
    base = low_port_range(count)
    procs: list[subprocess.Popen[bytes]] = []
    prompt = tmp / "prompts" / "bench_menu.wav"
    batch = 3 * (os.cpu_count() or 1)  # as the pool starts its workers
    for first in range(0, count, batch):
        started = []
        for i in range(first, min(count, first + batch)):
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.bare_pjsua2", "--port", str(base + i),
                 "--rtp-port", str(rtp_ports(rtp_base, i).start), "--prompt", str(prompt)],
                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=open(tmp / f"bare_{i}.log", "wb"), start_new_session=True,  # noqa: SIM115
            )  # fmt: skip
            started.append(proc)
        for proc in started:
            assert proc.stdout is not None
            # pjlib prints a few lines to standard output before its log level is set
            while (line := proc.stdout.readline()) and line.strip() != b"ready":
                pass
            if not line:
                log = tmp / f"bare_{started.index(proc) + first}.log"
                why = log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
                stop_bare(procs + started)
                raise SystemExit(f"bench: a bare pjsua2 process did not start: {why[0]}")
        procs += started
    return procs, base


def stop_bare(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.stdin:
            proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mark(ok: bool) -> str:
    return "met" if ok else "NOT met"


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
            engine_rates = cps_ceiling(Target("engine", f"127.0.0.1:{edge}", tmp), rates,
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
    shutil.rmtree(tmp, ignore_errors=True)
    return report(n, up_s, replaced, idle, bare_idle, engine_steps, bare_steps, engine_rates,
                  bare_rates, sipp_rates)  # fmt: skip


def measure_idle_pids(pids: list[int], seconds: float) -> Idle:
    before = {p: cpu_seconds(p) for p in pids}
    time.sleep(seconds)
    total = sum(cpu_seconds(p) - before[p] for p in pids)
    return Idle(total / seconds, 100 * total / seconds / max(1, len(pids)), pss_kb(pids))


def report(
    n: int,
    up_s: float,
    replaced: float,
    idle: Idle,
    bare_idle: Idle | None,
    engine_steps: list[Step],
    bare_steps: list[Step],
    engine_rates: list[Rate],
    bare_rates: list[Rate],
    sipp_rates: list[Rate],
) -> int:
    def ceiling(steps: list[Step]) -> Step | None:
        good = [s for s in steps if s.ok]
        return good[-1] if good else None

    def failed_at(steps: list[Step]) -> str:
        bad = [s for s in steps if not s.ok]
        return f"first failing step {bad[0].calls}" if bad else "no step failed"

    slots = 4 * n
    e_conc, b_conc = ceiling(engine_steps), ceiling(bare_steps)
    e_cps, b_cps, s_cps = best(engine_rates), best(bare_rates), best(sipp_rates)
    print(f"== summary ({load()} at the end)")
    print(f"idle worker CPU: {idle.worker_pct:.3f} % of a core (goal <= 0.1): "
          f"{mark(idle.worker_pct <= 0.1)}")  # fmt: skip
    print(f"idle node CPU with {n} workers: {idle.cores:.3f} cores (goal < 0.3 with 250): "
          f"{mark(idle.cores < 0.3)}")  # fmt: skip
    if bare_idle:
        print(f"  bare pjsua2 idle: {bare_idle.worker_pct:.3f} % of a core per process, "
              f"{bare_idle.cores:.3f} cores for {n}")  # fmt: skip
    print(f"{n} workers up in {up_s:.1f}s (goal < 20 s for 250): {mark(up_s < 20)}")
    print(f"killed worker replaced in {replaced:.2f}s (goal < 1 s): {mark(replaced < 1)}")
    e_calls = e_conc.calls if e_conc else 0
    print(f"concurrent IVR calls, zero failures: engine {e_calls} ({failed_at(engine_steps)}) "
          f"(goal >= 1000): {mark(e_calls >= 1000)}")  # fmt: skip
    idle_slot = idle.pss_kb / 1024 / slots
    peak_slot = e_conc.pss_kb / 1024 / slots if e_conc and e_conc.pss_kb else float("nan")
    print(f"PSS per call slot: {idle_slot:.2f} MB idle, {peak_slot:.2f} MB with {e_calls} "
          f"calls up (goal <= 3): {mark(peak_slot <= 3)}")  # fmt: skip
    e_rate = e_cps.cps if e_cps else 0
    e_p99 = e_cps.p99 if e_cps else float("nan")
    print(f"CPS ceiling with media, zero failures: engine {e_rate}, p99 set-up {e_p99:.1f} ms "
          f"(goal >= 200, p99 < 150 ms): {mark(e_rate >= 200 and e_p99 < 150)}")  # fmt: skip
    if bare_steps or bare_rates:
        b_calls = b_conc.calls if b_conc else 0
        b_rate = b_cps.cps if b_cps else 0
        b_slot = b_conc.pss_kb / 1024 / slots if b_conc and b_conc.pss_kb else float("nan")
        print(f"bare pjsua2 floor: {b_calls} concurrent ({failed_at(bare_steps)}), "
              f"CPS {b_rate} (p99 {b_cps.p99 if b_cps else float('nan'):.1f} ms), "
              f"PSS {b_slot:.2f} MB per slot")  # fmt: skip
        c_ratio = e_calls / b_calls if b_calls else float("nan")
        r_ratio = e_rate / b_rate if b_rate else float("nan")
        print(f"engine / bare pjsua2: concurrency {c_ratio:.2f}, CPS {r_ratio:.2f} "
              f"(goal >= 0.7): {mark(c_ratio >= 0.7 and r_ratio >= 0.7)}")  # fmt: skip
        print("  (the steps stop at the first failure or at the highest step: a ratio of 1.00 "
              "may mean both reached it)")  # fmt: skip
        both = [(e, b) for e in engine_rates for b in bare_rates if e.cps == b.cps and e.ok]
        if both:
            e, b = both[-1]
            print(f"CPU per call at {e.cps} CPS (above idle): engine {e.cpu_ms:.1f} ms, bare "
                  f"pjsua2 {b.cpu_ms:.1f} ms; bare / engine {b.cpu_ms / e.cpu_ms:.2f}")  # fmt: skip
            split = ", ".join(f"{k} {v:.1f} ms" for k, v in e.parts_ms.items())
            if split:
                print(f"  engine's CPU per call by part: {split}")
    s_rate = s_cps.cps if s_cps else 0
    print(f"sipp UAS alone (signalling bound): {s_rate} CPS; engine / sipp-UAS "
          f"{e_rate / s_rate if s_rate else float('nan'):.2f}")  # fmt: skip
    return 0 if e_conc and e_cps else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
