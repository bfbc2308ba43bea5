"""Helpers for the edge tests: a real Kamailio (via `Edge`) and sipp peers on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flexvoice.config import Config
from flexvoice.sip.addresses import WorkerAddress
from flexvoice.sip.edge import Edge
from flexvoice.sip.trunks import NO_TRUNKS, Trunks, load_trunks
from tests.conftest import REPO, free_port_range

SIPP_DIR = REPO / "tests" / "sipp"
UAC = SIPP_DIR / "edge_uac.xml"
UAS = SIPP_DIR / "edge_uas.xml"


def edge_config(
    workers: int = 2, max_calls: int = 4, acl: bool = False, **edge: Any
) -> tuple[Config, list[WorkerAddress], Path]:
    """A Config on free ports with a short state dir (Unix socket paths are limited)."""
    state = Path(tempfile.mkdtemp(prefix="fv-edge-", dir="/tmp"))
    edge_port = free_port_range(1)
    base = free_port_range(workers)
    cfg = Config.model_validate(
        {
            "sip": {
                "edge": {
                    "port": edge_port,
                    "ctl_socket": str(state / "ctl.sock"),
                    "acl": acl,
                    "ping_interval": 1,
                    **edge,
                },
                "workers": {"count": workers, "base_port": base, "max_calls": max_calls},
            },
            "base_dir": state,
        }
    )
    addrs = [WorkerAddress(i, "127.0.0.1", base + i) for i in range(workers)]
    return cfg, addrs, state


def trunks_file(state: Path, text: str) -> Trunks:
    path = state / "trunks.yaml"
    path.write_text(text)
    return load_trunks(path, {})


@contextlib.asynccontextmanager
async def running_edge(
    cfg: Config,
    workers: list[WorkerAddress],
    state: Path,
    trunks: Trunks = NO_TRUNKS,
    relays: list[WorkerAddress] | None = None,
) -> AsyncIterator[Edge]:
    edge = Edge(cfg, workers, trunks, state_dir=state, relays=relays or [])
    try:
        await edge.start()
        yield edge
    finally:
        pid = edge.pid
        await edge.stop()
        if pid is not None:
            assert not group_alive(pid), "a Kamailio process survived Edge.stop()"
        shutil.rmtree(state, ignore_errors=True)


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in process group `pgid`.

    Zombies are skipped: orphans are reparented to PID 1, which in a container may never reap.
    """
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@dataclass
class Sipp:
    """One sipp process in its own process group, killed (with its group) by `stop()`."""

    proc: asyncio.subprocess.Process
    log_file: Path
    name: str
    output: bytes = b""
    _done: bool = field(default=False)

    def lines(self) -> list[str]:
        try:
            return [ln.strip() for ln in self.log_file.read_text().splitlines() if ln.strip()]
        except FileNotFoundError:
            return []

    async def wait(self, timeout: float) -> int:
        try:
            out, _ = await asyncio.wait_for(self.proc.communicate(), timeout)
            self.output = out or b""
        except TimeoutError:
            await self.stop()
            raise AssertionError(f"sipp {self.name} did not finish within {timeout}s") from None
        return self.proc.returncode or 0

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()


async def sipp(name: str, log_dir: Path, *args: str) -> Sipp:
    sipp_bin = shutil.which("sipp")
    assert sipp_bin, "sipp not found: install sip-tester (./run does)"
    log_file = log_dir / f"{name}.log"
    proc = await asyncio.create_subprocess_exec(
        sipp_bin,
        *args,
        "-nostdin",
        "-trace_logs",
        "-log_file",
        str(log_file),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        cwd=log_dir,
    )
    return Sipp(proc, log_file, name)


async def start_uas(log_dir: Path, port: int, ip: str = "127.0.0.1", name: str = "") -> Sipp:
    """A stand-in worker/carrier on ip:port; answers OPTIONS pings (-aa)."""
    uas = await sipp(
        name or f"uas{port}", log_dir, "-sf", str(UAS), "-aa", "-i", ip, "-p", str(port)
    )
    await wait_udp_answer(ip, port)
    return uas


async def run_uac(
    log_dir: Path,
    target: str,
    ruri: str,
    *,
    calls: int = 1,
    rate: int = 100,
    hold_ms: int = 0,
    src_ip: str = "127.0.0.1",
    src_port: int = 0,
    name: str = "uac",
    timeout: float = 30,
) -> list[str]:
    """Place `calls` calls (all at once when rate allows) and return the outcome lines."""
    args = ["-sf", str(UAC), "-key", "ruri", ruri, "-i", src_ip, target]
    args += ["-m", str(calls), "-l", str(calls), "-r", str(rate), "-d", str(hold_ms)]
    args += ["-timeout", f"{int(timeout)}s", "-recv_timeout", "10s"]
    if src_port:
        args += ["-p", str(src_port)]
    uac = await sipp(name, log_dir, *args)
    await uac.wait(timeout + 10)
    return uac.lines()


async def wait_udp_answer(ip: str, port: int, timeout: float = 15) -> None:
    from flexvoice.sip.edge import sip_ping

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(sip_ping, ip, port, 0.3):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing answers SIP on {ip}:{port}")


def send_raw(
    data: bytes, port: int, host: str = "127.0.0.1", src: str = "127.0.0.1", tcp: bool = False
) -> None:
    """One datagram (or one TCP write, then close) with exactly these bytes."""
    if tcp:
        with socket.create_connection((host, port), timeout=2, source_address=(src, 0)) as s:
            s.sendall(data)
            with contextlib.suppress(OSError):
                s.settimeout(0.3)
                s.recv(65535)
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src, 0))
        s.sendto(data, (host, port))


def outcomes(lines: list[str]) -> Counter[str]:
    return Counter(" ".join(ln.split()[:-1]) for ln in lines)


def calls_per_worker(uas_logs: dict[int, list[str]]) -> dict[int, int]:
    return {i: sum(1 for ln in lines if ln.startswith("call ")) for i, lines in uas_logs.items()}


async def wait_for_state(edge: Edge, index: int, state: str, timeout: float = 15) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        targets = {t.index: t for t in await edge.targets()}
        if targets[index].state == state:
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise AssertionError(f"worker {index} not {state} after {timeout}s: {await edge.targets()}")


RFC4475 = REPO / "tests" / "data" / "rfc4475"


def torture_messages() -> list[tuple[str, str]]:
    rows = []
    for line in (RFC4475 / "index.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _section, _title, kind, _expected = line.split("\t")
        rows.append((name, kind))
    return rows


def first_reply(data: bytes, port: int, src: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src, 0))
        s.settimeout(0.5)
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recv(65535).split(b"\r\n", 1)[0].decode("utf-8", "replace")
        except TimeoutError:
            return None
