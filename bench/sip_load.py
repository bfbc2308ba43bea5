"""SIP load: a real node (Kamailio edge + pjsua2 workers) driven by sipp on loopback.

Measures, in one run:
- the most concurrent IVR calls (prompt looping, a DTMF digit sent and answered) with zero
  failed calls, stepping up until a step fails or the ceiling is reached;
- sustained calls per second for `--seconds` (default 60) with zero failures;
- p50/p99 call set-up time (INVITE to 200 OK, from sipp's own response-time trace);
- RSS per active call (all node processes at the peak, minus idle, per call);
- sipp UAC against sipp's own UAS alone at the same rate: the practical upper bound here,
  printed as the ratio engine / sipp-UAS.

Run: ./run bench sip_load [--quick] [--seconds N] [--max-calls N]
Everything stays on 127.0.0.1, is bounded in calls and time, and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import free_port_range  # noqa: E402
from tests.sipptool import SCENARIOS, free_udp_pair  # noqa: E402
from tests.test_sip_pool import tone  # noqa: E402

IVR_FLOW = """\
flow: bench-ivr
description: Benchmark IVR - a looping menu prompt, one digit, a short answer prompt
start: menu
steps:
  menu:
    gather:
      prompt: bench_menu
      max_digits: 1
      timeout: 20s
      into: choice
      then: answer
  answer:
    play: {prompt: bench_ok, then: wait}
  wait:
    pause: {length: 60s, then: bye}
  bye:
    hangup: {}
"""


def write_node(tmp: Path, workers: int) -> tuple[Path, int, int]:
    prompts = tmp / "prompts"
    (prompts / "en").mkdir(parents=True)
    tone(prompts / "en" / "bench_menu.wav", 20.0)
    tone(prompts / "en" / "bench_ok.wav", 0.5)
    tone(prompts / "bench_menu.wav", 20.0)
    tone(prompts / "bench_ok.wav", 0.5)
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
    base = free_port_range(workers)
    cfg = tmp / "flexvoice.yaml"
    cfg.write_text(
        f"""
http: {{host: 127.0.0.1, port: {http}}}
sip:
  edge: {{port: {edge}, ctl_socket: {tmp}/kamailio-ctl.sock}}
  workers: {{count: {workers}, base_port: {base}, drain_grace: 2s, rtp_base: 30000}}
  trunks: {REPO}/sip/trunks.yaml
  numbers: {tmp}/numbers.yaml
storage: {{database: {tmp}/flexvoice.db, recordings: {tmp}/recordings}}
paths: {{flows: {flows}, prompts: {prompts}, tariffs: {REPO}/metering/tariffs}}
logging: {{level: warning}}
"""
    )
    return cfg, http, edge


def wait_healthy(
    http: int, proc: subprocess.Popen[bytes], timeout: float = 120
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("bench: the node exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=2) as r:
                body: dict[str, object] = json.loads(r.read())
                return body
        except OSError:
            time.sleep(0.3)
    raise SystemExit("bench: the node did not become healthy")


def rss_kb(root_pid: int) -> int:
    """RSS of a process and all its descendants, in kB."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,rss="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for line in out.splitlines():
        pid, ppid, kb = (int(x) for x in line.split())
        children.setdefault(ppid, []).append(pid)
        rss[pid] = kb
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


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
    scenario: str,
    target: str,
    number: str,
    *,
    calls: int,
    rate: float,
    limit: int,
    hold_ms: int,
    trace_dir: Path | None = None,
) -> list[str]:
    args = [
        "sipp", "-sf", str(SCENARIOS / scenario), "-s", number, "-m", str(calls),
        "-r", str(rate), "-l", str(limit), "-d", str(hold_ms), "-i", "127.0.0.1", "-p", "0",
        "-mp", str(free_udp_pair()), "-nostdin", "-timeout", "300s", "-timeout_error",
        "-recv_timeout", "20000", "-key", "rtp_port", "0", target,
    ]  # fmt: skip
    if trace_dir is not None:
        args += ["-trace_rtt", "-rtt_freq", "1"]
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


def concurrent_step(target: str, calls: int, node_pid: int, hold_ms: int) -> tuple[bool, int]:
    """`calls` IVR calls up at once (each sends its digit and holds); peak RSS in kB."""
    args = uac(
        "uac_ivr.xml", target, "+3225550001",
        calls=calls, rate=max(10, calls // 4), limit=calls, hold_ms=hold_ms,
    )  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, rss_kb(node_pid))
        time.sleep(0.5)
    out = proc.stdout.read() if proc.stdout else ""
    ok = bad = 0
    for line in out.splitlines():
        if line.strip().startswith("Successful call"):
            ok = int(line.split("|")[2].split()[0])
        if line.strip().startswith("Failed call"):
            bad = int(line.split("|")[2].split()[0])
    return ok == calls and bad == 0, peak


def cps_run(target: str, number: str, rate: int, seconds: int, trace: Path) -> tuple[int, int]:
    calls = rate * seconds
    ok, bad, _ = sipp(
        uac("uac_call.xml", target, number, calls=calls, rate=rate, limit=rate * 3,
            hold_ms=1000, trace_dir=trace),
        timeout=seconds * 3 + 60,
    )  # fmt: skip
    return ok, bad


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench sip_load")
    parser.add_argument("--quick", action="store_true", help="short run (smoke)")
    parser.add_argument("--seconds", type=int, default=60, help="length of the CPS run")
    parser.add_argument("--max-calls", type=int, default=240, help="concurrency ceiling")
    parser.add_argument("--cps", type=int, default=50, help="rate of the sustained run")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.max_calls, args.cps = 10, 40, 20
    if shutil.which("sipp") is None or shutil.which("kamailio") is None:
        print("bench sip_load: needs sipp and kamailio (./run installs them)")
        return 1
    workers = (args.max_calls + 3) // 4
    tmp = Path(tempfile.mkdtemp(prefix="flexvoice-bench-"))
    cfg, http, edge = write_node(tmp, workers)
    os.chdir(tmp)  # sipp writes its traces into the working folder
    node = subprocess.Popen(
        [sys.executable, "-m", "flexvoice", "--config", str(cfg), "serve"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "node.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    target = f"127.0.0.1:{edge}"
    try:
        started = time.monotonic()
        health = wait_healthy(http, node)
        print(f"node: {health.get('workers')} workers up in {time.monotonic() - started:.1f}s")
        time.sleep(1)
        idle = rss_kb(node.pid)
        # 1. Concurrent IVR calls, stepping up.
        best, best_peak = 0, idle
        step = max(20, args.max_calls // 6)
        n = step
        while n <= args.max_calls:
            ok, peak = concurrent_step(target, n, node.pid, hold_ms=8000)
            verdict = "ok" if ok else "FAILED"
            print(f"concurrent IVR calls {n:4d}: {verdict} (RSS {peak / 1024:.0f} MB)")
            if not ok:
                break
            best, best_peak = n, peak
            n += step
        per_call = (best_peak - idle) / best / 1024 if best else float("nan")
        # 2. Sustained CPS, with set-up times from sipp's trace.
        ok, bad = cps_run(target, "+3225550002", args.cps, args.seconds, tmp)
        times = setup_times_ms(tmp)
        print(
            f"sustained {args.cps} CPS for {args.seconds}s: {ok} ok, {bad} failed; set-up p50 "
            f"{pct(times, 0.5):.1f} ms, p99 {pct(times, 0.99):.1f} ms ({len(times)} calls)"
        )
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
    # 3. The bound: sipp UAC against sipp's own UAS, same rate and length.
    uas_port = free_port_range(1)
    uas = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "uas_answer_bye.xml"), "-i", "127.0.0.1", "-p",
         str(uas_port), "-mp", str(free_udp_pair()), "-nostdin", "-timeout", "600s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        ref_ok, ref_bad = cps_run(f"127.0.0.1:{uas_port}", "+3225550002", args.cps,
                                  args.seconds, tmp)  # fmt: skip
        ref_times = setup_times_ms(tmp)
    finally:
        uas.kill()
        uas.wait()
    print(
        f"sipp UAS alone at {args.cps} CPS: {ref_ok} ok, {ref_bad} failed; set-up p50 "
        f"{pct(ref_times, 0.5):.1f} ms, p99 {pct(ref_times, 0.99):.1f} ms"
    )
    ratio = (ok / args.seconds) / (ref_ok / args.seconds) if ref_ok else float("nan")
    print(f"RSS per active call: {per_call:.1f} MB (idle {idle / 1024:.0f} MB, {workers} workers)")
    print(f"max concurrent IVR calls with zero failures: {best}")
    print(f"CPS ratio engine / sipp-UAS: {ratio:.2f}")
    print(f"p99 set-up: engine {pct(times, 0.99):.1f} ms vs sipp-UAS {pct(ref_times, 0.99):.1f} ms")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if bad == 0 and best > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
