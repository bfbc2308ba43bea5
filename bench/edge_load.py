"""SIP edge throughput: sipp caller -> Kamailio edge -> sipp stand-in workers, vs sipp direct.

    python -m bench edge_load [--seconds=5] [--max-rate=3200] [--workers=4] [--maxload=100]

Calls per second in steps (each step `--seconds` long, calls answered at once and hung up at
once: INVITE, 200, ACK, BYE, 200 through the edge with Record-Route); a step counts only when
every call was answered. For each step it prints Kamailio's CPU (all its processes, % of one
core). Then the same steps with the caller talking to one sipp UAS directly: the practical
ceiling of this machine, since sipp itself is on both ends. The figure to read is the ratio.

The stand-in workers get `--maxload` calls each (default 100, where real pjsua2 workers take 4)
so that the edge's own forwarding, not the pool's size, is what runs out first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import REPO
from flexvoice.config import Config
from flexvoice.sip.addresses import WorkerAddress
from flexvoice.sip.edge import Edge, sip_ping
from flexvoice.sip.trunks import NO_TRUNKS

UAC = REPO / "tests" / "sipp" / "edge_uac.xml"
UAS = REPO / "tests" / "sipp" / "edge_uas.xml"
RATES = (50, 100, 200, 400, 800, 1600, 3200)
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    rate: int
    calls: int
    answered: int
    seconds: float
    cpu: float  # Kamailio, % of one core (0 when direct)

    @property
    def ok(self) -> bool:
        return self.answered == self.calls


def free_udp_tcp_port() -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def group_cpu_seconds(pgid: int) -> float:
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICK


async def start_sipp(*args: str, log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "sipp",
        *args,
        "-nostdin",
        "-trace_logs",
        "-log_file",
        str(log),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
        cwd=log.parent,
    )


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


async def step(target: str, ruri: str, rate: int, seconds: float, work: Path, pgid: int) -> Step:
    calls = int(rate * seconds)
    log = work / f"uac-{target.replace(':', '_')}-{rate}.log"
    cpu0, t0 = (group_cpu_seconds(pgid) if pgid else 0.0), time.monotonic()
    proc = await start_sipp(
        "-sf", str(UAC), "-key", "ruri", ruri, "-i", "127.0.0.1", target,
        "-m", str(calls), "-r", str(rate), "-l", str(max(50, rate)), "-d", "0",
        "-timeout", f"{int(seconds * 4 + 20)}s", "-recv_timeout", "5s",
        log=log,
    )  # fmt: skip
    await proc.wait()
    elapsed = time.monotonic() - t0
    cpu = (group_cpu_seconds(pgid) - cpu0) / elapsed * 100 if pgid else 0.0
    lines = log.read_text().splitlines()
    answered = sum(1 for ln in lines if ln.startswith("answered"))
    if answered < calls:
        from collections import Counter

        why = Counter(" ".join(ln.split()[:-1]) for ln in lines if not ln.startswith("answered"))
        print(f"  {rate:5d} cps: not answered: {dict(why) or 'no reply'}")
    return Step(rate, calls, answered, elapsed, cpu)


async def ramp(
    target: str, ruri: str, rates: list[int], seconds: float, work: Path, pgid: int
) -> list[Step]:
    steps: list[Step] = []
    for rate in rates:
        s = await step(target, ruri, rate, seconds, work, pgid)
        steps.append(s)
        cpu = f", kamailio CPU {s.cpu:5.1f} %" if pgid else ""
        print(f"  {rate:5d} cps: {s.answered}/{s.calls} answered in {s.seconds:5.1f} s{cpu}")
        if not s.ok:
            break
    return steps


def best(steps: list[Step]) -> int:
    return max((s.rate for s in steps if s.ok), default=0)


async def run(seconds: float, max_rate: int, workers: int, maxload: int) -> int:
    if not shutil.which("sipp") or not shutil.which("kamailio"):
        print("edge_load: needs sipp and kamailio (./run installs them)")
        return 2
    rates = [r for r in RATES if r <= max_rate]
    work = Path(tempfile.mkdtemp(prefix="fv-bench-edge-", dir="/tmp"))
    edge_port, direct_port = free_udp_tcp_port(), free_udp_tcp_port()
    ports = [free_udp_tcp_port() for _ in range(workers)]
    addrs = [WorkerAddress(i, "127.0.0.1", p) for i, p in enumerate(ports)]
    cfg = Config.model_validate(
        {
            "sip": {
                # sipp stand-ins have no PJSIP socket limit: no per-worker call rate cap.
                "edge": {
                    "port": edge_port,
                    "ctl_socket": str(work / "ctl.sock"),
                    "acl": False,
                    "worker_cps": 10000,
                },
                "workers": {"count": workers, "base_port": ports[0], "max_calls": 4},
            },
            "base_dir": work,
        }
    )
    # Past the 4-call validation on purpose: sipp stand-ins have no call limit.
    cfg = cfg.model_copy(
        update={
            "sip": cfg.sip.model_copy(
                update={"workers": cfg.sip.workers.model_copy(update={"max_calls": maxload})}
            )
        }
    )
    procs = [
        await start_sipp("-sf", str(UAS), "-aa", "-i", "127.0.0.1", "-p", str(p),
                         log=work / f"uas{p}.log")
        for p in [*ports, direct_port]
    ]  # fmt: skip
    edge = Edge(cfg, addrs, NO_TRUNKS, state_dir=work / "edge")
    try:
        for p in [*ports, direct_port]:
            while not sip_ping("127.0.0.1", p, 0.3):
                await asyncio.sleep(0.1)
        await edge.start()
        while any(t.state != "active" for t in await edge.targets()):
            await asyncio.sleep(0.2)
        assert edge.pid is not None
        print(
            f"edge_load: {workers} sipp stand-in workers (maxload {maxload} each), "
            f"{seconds:g} s steps"
        )
        print("through the edge (sipp UAC -> Kamailio -> sipp UAS):")
        via_edge = await ramp(
            f"127.0.0.1:{edge_port}", f"sip:+3225550100@127.0.0.1:{edge_port}", rates, seconds,
            work, edge.pid,
        )  # fmt: skip
        await asyncio.sleep(2)
        left = [t.load for t in await edge.targets()]
        print(f"  calls the dispatcher still counts afterwards (leaked load): {left}")
        print("direct (sipp UAC -> sipp UAS):")
        direct = await ramp(
            f"127.0.0.1:{direct_port}", f"sip:+3225550100@127.0.0.1:{direct_port}", rates,
            seconds, work, 0,
        )  # fmt: skip
    finally:
        await edge.stop()
        for proc in procs:
            await stop(proc)
        if not os.environ.get("FV_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    e, d = best(via_edge), best(direct)
    cpu_at_best = next((s.cpu for s in via_edge if s.rate == e), 0.0)
    ratio = f"{e / d:.2f}" if d else "n/a"
    print(
        f"edge_load: max CPS with zero failures: edge {e} (kamailio {cpu_at_best:.1f} % of a "
        f"core), direct {d}; ratio edge/direct {ratio}"
    )
    return 0 if e else 1


def main(argv: list[str]) -> int:
    opts = dict(a.lstrip("-").split("=", 1) for a in argv if "=" in a)
    seconds = float(opts.get("seconds", 5))
    max_rate = int(opts.get("max-rate", 3200))
    workers = int(opts.get("workers", 4))
    maxload = int(opts.get("maxload", 100))
    return asyncio.run(run(seconds, max_rate, workers, maxload))
