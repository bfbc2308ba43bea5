"""Starting and stopping what `bench sip_load` measures: a real node (edge, control plane,
workers) with its configuration, and the bare pjsua2 processes of the library's floor."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench import REPO
from bench.procstat import workers_by_port
from flexvoice.sip.addresses import RTP_PORTS_PER_WORKER, rtp_ports
from flexvoice.system import ports_free
from tests.conftest import free_port_range
from tests.poolkit import tone

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


def write_node(tmp: Path, workers: int, code: Path = REPO) -> tuple[Path, int, int, int]:
    """The bench node's configuration; the edge's template, trunks and tariffs from `code`
    (the checkout whose node runs), so that a before/after compares the edge too."""
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
  trunks: {code}/sip/trunks.yaml
  numbers: {tmp}/numbers.yaml
storage: {{database: {tmp}/flexvoice.db, recordings: {tmp}/recordings}}
paths: {{flows: {flows}, prompts: {prompts}, tariffs: {code}/metering/tariffs}}
logging: {{level: warning}}
"""
    )
    return cfg, http, edge, base


SIP_LOW = 6000
RTP_LOW = 10000
MAX_WORKERS = (20000 - RTP_LOW) // (2 * RTP_PORTS_PER_WORKER)


def start_node(tmp: Path, workers: int) -> tuple[subprocess.Popen[bytes], int, int, int]:
    # SIP_LOAD_NODE_CODE: another checkout's code for the node (e.g. main), to compare.
    code = Path(os.environ.get("SIP_LOAD_NODE_CODE", REPO))
    cfg, http, edge, base = write_node(tmp, workers, code)
    command = [sys.executable, "-m", "flexvoice", "--config", str(cfg), "serve"]
    # SIP_LOAD_PROFILE=FILE: the control plane sampled by py-spy (pip install py-spy; it runs
    # the node as its child, as attaching needs ptrace rights a container may not give),
    # written as collapsed stacks when the node stops.
    profile = os.environ.get("SIP_LOAD_PROFILE")
    if profile:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        command = [spy, "record", "-r", "200", "-f", "raw", "-o", profile, "--", *command]
    env = {**os.environ, "PYTHONPATH": str(code)}
    # SIP_LOAD_WORKER_PROFILE=DIR: each worker runs under cProfile and writes
    # DIR/worker-PID.prof when the node stops it (read with `python -m pstats`).
    worker_profile = os.environ.get("SIP_LOAD_WORKER_PROFILE")
    if worker_profile:
        Path(worker_profile).mkdir(parents=True, exist_ok=True)
        env["WORKER_PROFILE_DIR"] = worker_profile
    node = subprocess.Popen(
        command,
        cwd=code,
        env=env,
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


def histograms(http: int) -> dict[str, float]:
    """The control plane's event-loop lag and SQLite checkpoint histograms from /metrics
    (empty when unreadable), as `lag count`, `lag sum` (seconds), `lag 0.1` (cumulative
    bucket: wakes at most 100 ms late), `passive count`, `passive sum`, `restart count`,
    `restart sum` (the checkpoint thread's passes by mode), `group commits` and `group writes`
    (flexvoice.storage.turn: the writes of a loop turn in one commit). Two readings'
    difference says how often a step's set-ups found the loop held, and for how long."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    found: dict[str, float] = {}
    names = {
        "flexvoice_event_loop_lag_seconds_": "lag",
        'flexvoice_sqlite_checkpoint_seconds_count{mode="passive"}': "passive count",
        'flexvoice_sqlite_checkpoint_seconds_sum{mode="passive"}': "passive sum",
        'flexvoice_sqlite_checkpoint_seconds_count{mode="restart"}': "restart count",
        'flexvoice_sqlite_checkpoint_seconds_sum{mode="restart"}': "restart sum",
        "flexvoice_sqlite_group_commits_total ": "group commits",
        "flexvoice_sqlite_group_writes_total ": "group writes",
    }
    for line in text.splitlines():
        prefix = next((p for p in names if line.startswith(p)), None)
        if prefix is None:
            continue
        name, _, value = line.rpartition(" ")
        kind = names[prefix]
        if kind != "lag":
            found[kind] = float(value)
        elif name.endswith("_count"):
            found["lag count"] = float(value)
        elif name.endswith("_sum"):
            found["lag sum"] = float(value)
        elif 'le="' in name:
            bound = name.split('le="')[1].split('"')[0]
            found[f"lag {bound}"] = float(value)
    return found


def schedstat(pid: int) -> tuple[float, float, int]:
    """Seconds a thread (the control plane's event loop is its process's main thread) has
    spent on a CPU and waiting on a run queue for one, and its number of turns on a CPU
    (/proc/PID/schedstat): the loop held by its own work, or by other processes taking the
    cores (the wait per turn: how long a wake-up waits for a core)."""
    try:
        ran, waited, turns = Path(f"/proc/{pid}/schedstat").read_text().split()
    except (OSError, ValueError):
        return 0.0, 0.0, 0
    return int(ran) / 1e9, int(waited) / 1e9, int(turns)


def lag_line(before: dict[str, float], after: dict[str, float]) -> str:
    """What the loop did during a step: how many wakes were late by over 50/100/500 ms, the
    wakes' total lateness, and the checkpoints the thread ran meanwhile (off the loop)."""
    if not before or not after:
        return ""

    def d(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    wakes = d("lag count")
    late = {b: wakes - d(f"lag {b}") for b in ("0.05", "0.1", "0.5")}
    line = (
        f"loop: {wakes:.0f} wakes, {late['0.05']:.0f} > 50 ms, {late['0.1']:.0f} > 100 ms, "
        f"{late['0.5']:.0f} > 500 ms, {d('lag sum'):.2f} s late in all"
    )
    if "passive count" in after:
        line += (
            f"; checkpoints in a thread: {d('passive count'):.0f} passive, "
            f"{d('passive sum'):.2f} s, {d('restart count'):.0f} restart (writers held), "
            f"{d('restart sum'):.2f} s"
        )
    if d("group commits"):
        line += (
            f"; {d('group writes'):.0f} writes in {d('group commits'):.0f} commits "
            f"({d('group writes') / d('group commits'):.2f} a commit)"
        )
    return line


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
        if ports_free(base, count):
            return base
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
