"""sipp as the independent SIP peer of the tests: callers (UAC) and callees (UAS).

Every run is bounded: a call count (-m), a global timeout, and a kill at teardown, and sends
only to loopback addresses."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "sipp"


@dataclass
class SippResult:
    rc: int
    successful: int
    failed: int
    output: str


def counts(output: str) -> tuple[int, int]:
    ok = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", output)
    bad = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", output)
    return int(ok.group(1)) if ok else 0, int(bad.group(1)) if bad else 0


def uac_args(
    scenario: str,
    target: str,
    number: str,
    *,
    calls: int = 1,
    rate: float = 10,
    limit: int | None = None,
    hold_ms: int = 1000,
    source_ip: str = "127.0.0.1",
    timeout: float = 30,
    keys: dict[str, str] | None = None,
) -> list[str]:
    media_port = free_udp_pair(source_ip, span=4)
    keys = {"rtp_port": str(media_port), **(keys or {})}  # sipp's own media port by default
    args = [
        "sipp", "-sf", str(SCENARIOS / scenario), "-s", number, "-m", str(calls),
        "-r", str(rate), "-d", str(hold_ms), "-i", source_ip, "-p", "0", "-mp",
        str(media_port), "-nostdin", "-timeout", f"{int(timeout)}s",
        "-timeout_error", "-recv_timeout", "15000", target,
    ]  # fmt: skip
    if limit is not None:
        args += ["-l", str(limit)]
    for key, value in keys.items():
        args += ["-key", key, value]
    return args


def free_udp_pair(host: str = "127.0.0.1", span: int = 2) -> int:
    """An even UDP port with the next `span - 1` free too (RTP and RTCP; sipp's -mp also
    binds its video pair two above: span 4). Checked by binding them all, then released."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port % 2 or port + span > 65000:
            continue
        held: list[socket.socket] = []
        try:
            for n in range(1, span):
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(probe)
                probe.bind((host, port + n))
        except OSError:
            continue
        finally:
            for probe in held:
                probe.close()
        return port
    raise RuntimeError("no free UDP port pair")


def run_uac(*args: str, **kwargs: object) -> SippResult:
    cmd = uac_args(*args, **kwargs)  # type: ignore[arg-type]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    ok, bad = counts(proc.stdout)
    return SippResult(proc.returncode, ok, bad, proc.stdout[-3000:] + proc.stderr[-2000:])


async def run_uac_async(*args: str, **kwargs: object) -> SippResult:
    cmd = uac_args(*args, **kwargs)  # type: ignore[arg-type]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
    text = out.decode(errors="replace")
    ok, bad = counts(text)
    return SippResult(proc.returncode or 0, ok, bad, text[-3000:] + err.decode()[-2000:])


class Uas:
    """A sipp callee listening on 127.0.0.1:port until stopped (or `calls` are done)."""

    def __init__(
        self,
        scenario: str,
        port: int,
        calls: int = 10,
        host: str = "127.0.0.1",
        timeout: int = 120,  # seconds; it then prints its statistics and exits by itself
        keys: dict[str, str] | None = None,  # -key NAME VALUE: the scenario's [NAME]
    ):
        self.port = port
        self.host = host
        self.proc = subprocess.Popen(
            [
                "sipp",
                "-sf",
                str(SCENARIOS / scenario),
                "-i",
                host,
                "-p",
                str(port),
                "-mp",
                str(free_udp_pair(host, span=4)),
                "-m",
                str(calls),
                "-nostdin",
                "-timeout",
                f"{timeout}s",
                *(arg for key, value in (keys or {}).items() for arg in ("-key", key, value)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_udp_bound(host, port, self.proc)

    @property
    def uri_host(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> str:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        out, _ = self.proc.communicate(timeout=10)
        return out or ""

    def finish(self, timeout: float = 10) -> str:
        """Wait for the callee to end by itself (after its `calls`), else stop it. Its counts
        are final only then: killed at once, sipp's last screen (printed each second) may not
        show yet the call whose BYE it answered a moment ago."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.stop()
        return out or ""


def wait_udp_bound(host: str, port: int, proc: subprocess.Popen[str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return  # sipp holds it
        if proc.poll() is not None:
            raise RuntimeError(f"sipp exited at start: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.05)
    raise RuntimeError(f"sipp did not bind {host}:{port}")
