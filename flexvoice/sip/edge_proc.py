"""Helpers around the Kamailio process: parent-death signal, log rotation, its start-up
complaint in one line, and a SIP OPTIONS ping to see it answer."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
from pathlib import Path

from flexvoice.sip.edge_config import sip_host

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec (Linux): SIGTERM when the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


LOG_KEEP_BYTES = 10 * 1024 * 1024


def rotate_log(path: Path, limit: int = LOG_KEEP_BYTES) -> None:
    """At each (re)start, a log over `limit` becomes <name>.1 (replacing the older one), so
    restarts and long lives do not fill the disk. (Within one run Kamailio appends.)"""
    try:
        if path.stat().st_size > limit:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def complaint(output: str) -> str:
    """Kamailio's reason for refusing to start, in one line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for pattern in (r"parse error in config file", r"bind\(", r"ERROR", r"CRITICAL", r"error"):
        for ln in lines:
            if re.search(pattern, ln):
                return _tidy(ln)
    return _tidy(lines[-1]) if lines else "no output"


def _tidy(line: str) -> str:
    # " 0(123) CRITICAL: <core> [core/cfg.y:3613]: yyerror_at(): parse error in ..." -> message
    line = re.sub(r"^\s*\d+\(\d+\)\s+", "", line)
    line = re.sub(r"^(\w+):\s+<[^>]+>\s+\[[^\]]+\]:\s+(\w+\(\):\s+)?", r"\1: ", line)
    return line


def sip_ping(host: str, port: int, timeout: float) -> bool:
    """True when something answers a SIP OPTIONS on host:port (UDP) within `timeout`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.bind(("127.0.0.1" if family == socket.AF_INET and host.startswith("127.") else "", 0))
            local_port = s.getsockname()[1]
            tag = os.urandom(4).hex()
            msg = (
                f"OPTIONS sip:{sip_host(host)}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{tag};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:ping@flexvoice.invalid>;tag={tag}\r\n"
                f"To: <sip:{sip_host(host)}:{port}>\r\n"
                f"Call-ID: ping-{tag}@flexvoice\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            s.sendto(msg.encode(), (host, port))
            data = s.recv(65535)
        except OSError:
            return False
    return data.startswith(b"SIP/2.0 ")
