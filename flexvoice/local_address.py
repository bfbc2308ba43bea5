"""Is an address one this machine holds? (sip.workers.host: the workers bind to it.)"""

from __future__ import annotations

import ipaddress
import socket


def local_address(value: str) -> str:
    """An IP address one of this machine's interfaces holds (a worker binds to it and the
    edge sends to it, so neither a name nor 0.0.0.0 will do)."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address; give an address of this machine, e.g. "
            "127.0.0.1 (edge on this machine) or its private address (edge on another)"
        ) from None
    if ip.is_unspecified:
        raise ValueError(
            f"{value} names no one address: the edge must know where to reach the workers; "
            "give an address of this machine, e.g. 127.0.0.1 or its private address"
        )
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((value, 0))
        except OSError:
            raise ValueError(
                f"{value} is not an address of this machine (no interface holds it); give "
                "one it has (`ip -brief address` lists them), e.g. 127.0.0.1"
            ) from None
    return value
