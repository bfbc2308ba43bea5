"""Checks on the machine the node runs on: system binaries and free ports."""

from __future__ import annotations

import errno
import shutil
import socket

from flexvoice.errors import UserError


def require_binary(name: str, apt_package: str, purpose: str, setting: str = "") -> str:
    """Full path of `name`, or a UserError that says how to install it."""
    found = shutil.which(name)
    if found is None:
        where = f" (or point {setting} at it)" if setting else ""
        raise UserError(
            f"'{name}' was not found on PATH; it is needed for {purpose}. "
            f"Install it with 'apt-get install {apt_package}'{where}, or run './run' "
            "which installs everything"
        )
    return found


def port_in_use_error(host: str, port: int, setting: str, exc: OSError) -> UserError:
    if exc.errno == errno.EADDRINUSE:
        return UserError(
            f"{host}:{port} is already in use ({setting}): stop the process that holds it "
            f"(ss -lntup | grep :{port}) or choose another port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return UserError(f"{host} is not an address of this machine ({setting})")
    if exc.errno == errno.EACCES:
        return UserError(
            f"not allowed to listen on {host}:{port} ({setting}); use a port above 1023"
        )
    return UserError(f"cannot listen on {host}:{port} ({setting}): {exc.strerror}")


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (for tests and development)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ports_free(base: int, count: int, host: str = "127.0.0.1") -> bool:
    """Whether `count` consecutive ports from `base` are free now for both UDP and TCP (a
    worker pool's SIP and RTP ports; for tests and benchmarks)."""
    socks: list[socket.socket] = []
    try:
        for port in range(base, base + count):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                sock = socket.socket(socket.AF_INET, kind)
                socks.append(sock)
                sock.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        for sock in socks:
            sock.close()
