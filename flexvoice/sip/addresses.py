"""Where the media workers listen: what the pool hands to the edge's dispatcher list."""

from __future__ import annotations

from dataclasses import dataclass

from flexvoice.config import Config


@dataclass(frozen=True)
class WorkerAddress:
    index: int  # the pool's worker number (0-based); the edge names it `w<index>`
    host: str
    port: int

    @property
    def uri(self) -> str:
        """The dispatcher destination, also what `dispatcher.set_state` is given."""
        return f"sip:{self.host}:{self.port}"

    @property
    def duid(self) -> str:
        return f"w{self.index}"


def worker_addresses(cfg: Config) -> list[WorkerAddress]:
    """Worker n listens on `sip.workers.host`:(`base_port` + n), n from 0."""
    w = cfg.sip.workers
    return [WorkerAddress(n, w.host, w.base_port + n) for n in range(w.count)]


def edge_proxy_uri(cfg: Config) -> str:
    """The outbound proxy workers use: the edge on loopback, whatever address faces carriers.

    The edge always listens on 127.0.0.1 too (see sip/kamailio.cfg.tmpl), so this holds when
    sip.edge.host is a public address or 0.0.0.0.
    """
    return f"sip:127.0.0.1:{cfg.sip.edge.port};lr"
