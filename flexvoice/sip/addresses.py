"""Where the media workers listen, and how many there are: what the pool starts and what the
edge's dispatcher list names. One layout for both, so they always agree.

Worker n (from 0) takes SIP port `base_port + n` and the RTP ports
`rtp_base + RTP_PORTS_PER_WORKER * n` up to the next worker's. `sip.workers.count: auto`
sizes the pool from the machine (CPU cores and memory, container limits included) and from
the room the port ranges leave; the same machine always gives the same count.
"""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass
from pathlib import Path

from flexvoice.config import Config
from flexvoice.errors import UserError

# A worker holds at most 4 calls, each an RTP + RTCP pair: 8 ports, doubled so that a call
# slot reused at once still finds a free pair while the last call's sockets close.
RTP_PORTS_PER_WORKER = 16
# `auto` sizing (README, "Sizing a node"). Measured here: a worker with 4 calls playing a
# prompt costs 0.8 % of a core, 0.2 % per call; 400 calls per core spend 0.8 of it on the
# workers and leave the rest to the edge, the control plane and carriers' incoming RTP.
CALLS_PER_CORE = 400
# Memory a worker may take with 4 calls up (PSS, measured about 8.5 MB), with headroom; only
# half of the machine's memory goes to workers.
WORKER_MEMORY = 24 * 2**20
MEMORY_SHARE = 0.5
CALLS_PER_WORKER = 4


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


@dataclass(frozen=True)
class Machine:
    cores: float  # CPUs this process may use (affinity, cgroup quota)
    memory: int  # bytes (MemTotal, or the cgroup's limit when lower)


def rtp_ports(rtp_base: int, index: int) -> range:
    """The RTP/RTCP ports worker `index` binds its calls' media to."""
    first = rtp_base + RTP_PORTS_PER_WORKER * index
    return range(first, first + RTP_PORTS_PER_WORKER)


def worker_addresses(cfg: Config, machine: Machine | None = None) -> list[WorkerAddress]:
    """Worker n listens on `sip.workers.host`:(`base_port` + n), n from 0."""
    w = cfg.sip.workers
    return [WorkerAddress(n, w.host, w.base_port + n) for n in range(worker_count(cfg, machine))]


def relay_addresses(cfg: Config, machine: Machine | None = None) -> list[WorkerAddress]:
    """`sip.workers.relays` workers after the call workers (the pool's last ones): their
    numbers and SIP ports go on from the last call worker's."""
    w = cfg.sip.workers
    first = worker_count(cfg, machine)
    return [WorkerAddress(n, w.host, w.base_port + n) for n in range(first, first + w.relays)]


def worker_count(cfg: Config, machine: Machine | None = None) -> int:
    """`sip.workers.count`, with `auto` resolved; a layout that does not fit is refused with
    the keys to change."""
    w = cfg.sip.workers
    room = port_room(w.base_port, w.rtp_base)
    if w.count == "auto":
        count = min(auto_worker_count(machine or this_machine()), room - w.relays)
        if count < 1:
            raise UserError(
                f"sip.workers.count: auto finds no room for a worker between base_port "
                f"{w.base_port} and rtp_base {w.rtp_base}; move sip.workers.rtp_base up"
            )
    else:
        count = int(w.count)
    check_layout(count + w.relays, w.base_port, w.rtp_base, cfg.sip.edge.port)
    return count


def auto_worker_count(machine: Machine) -> int:
    """Workers this machine carries: the lower of what its cores and its memory allow."""
    by_cpu = math.floor(machine.cores * CALLS_PER_CORE / CALLS_PER_WORKER)
    by_memory = math.floor(machine.memory * MEMORY_SHARE / WORKER_MEMORY)
    return max(1, min(by_cpu, by_memory))


def port_room(base_port: int, rtp_base: int) -> int:
    """How many workers fit: SIP ports up to 65535 (and below rtp_base when under it), RTP
    ranges up to 65535 (and below base_port when under it)."""
    sip_room = 65536 - base_port
    if base_port < rtp_base:
        sip_room = min(sip_room, rtp_base - base_port)
    rtp_room = (65536 - rtp_base) // RTP_PORTS_PER_WORKER
    if rtp_base < base_port:
        rtp_room = min(rtp_room, (base_port - rtp_base) // RTP_PORTS_PER_WORKER)
    return max(0, min(sip_room, rtp_room))


def check_layout(count: int, base_port: int, rtp_base: int, edge_port: int) -> None:
    sip_last = base_port + count - 1
    rtp_last = rtp_base + RTP_PORTS_PER_WORKER * count - 1
    if sip_last > 65535:
        raise UserError(
            f"sip.workers: {count} workers need SIP ports {base_port}-{sip_last}, past 65535; "
            "lower sip.workers.count or sip.workers.base_port"
        )
    if rtp_last > 65535:
        raise UserError(
            f"sip.workers: {count} workers need RTP ports {rtp_base}-{rtp_last} "
            f"({RTP_PORTS_PER_WORKER} each), past 65535; lower sip.workers.count or "
            "sip.workers.rtp_base"
        )
    if base_port <= rtp_last and rtp_base <= sip_last:
        raise UserError(
            f"sip.workers: the workers' SIP ports {base_port}-{sip_last} overlap their RTP "
            f"ports {rtp_base}-{rtp_last}; move sip.workers.rtp_base above {sip_last} "
            f"or sip.workers.base_port above {rtp_last}"
        )
    if base_port <= edge_port <= sip_last or rtp_base <= edge_port <= rtp_last:
        raise UserError(
            f"sip.workers: the edge's port {edge_port} (sip.edge.port) lies in the workers' "
            f"ports (SIP {base_port}-{sip_last}, RTP {rtp_base}-{rtp_last}); move "
            "sip.workers.base_port or sip.workers.rtp_base"
        )


def this_machine() -> Machine:
    """Cores and memory available here, container (cgroup v2) limits included."""
    cores = float(len(os.sched_getaffinity(0)))
    memory = _meminfo_total()
    cgroup = _cgroup_dir()
    if cgroup is not None:
        quota = _read(cgroup / "cpu.max").split()
        if len(quota) == 2 and quota[0] != "max":
            cores = min(cores, int(quota[0]) / int(quota[1]))
        limit = _read(cgroup / "memory.max")
        if limit.isdigit():
            memory = min(memory, int(limit))
    return Machine(cores=cores, memory=memory)


def _meminfo_total() -> int:
    for line in _read(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 2**31  # unknown: assume a small machine


def _cgroup_dir() -> Path | None:
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def edge_proxy_uri(cfg: Config) -> str:
    """The outbound proxy workers use. A node's own edge: on loopback, whatever address faces
    carriers (it always listens on 127.0.0.1 too, flexvoice/sip/edge_config.py). A shared
    edge (cluster.edge: shared): at sip.edge.host, which may be another machine's address.
    """
    e = cfg.sip.edge
    if not (cfg.cluster.enabled and cfg.cluster.edge == "shared"):
        return f"sip:127.0.0.1:{e.port};lr"
    try:
        ip = ipaddress.ip_address(e.host)
    except ValueError:
        ip = None
    if ip is None or ip.is_unspecified:
        raise UserError(
            f"sip.edge.host: with cluster.edge: shared it is the address this node's workers "
            f"reach the shared edge at, so an IP address such as 10.0.0.1 (got {e.host!r})"
        )
    host = f"[{e.host}]" if ip.version == 6 else e.host
    return f"sip:{host}:{e.port};lr"


def edge_source(proxy: str | None) -> str | None:
    """'127.0.0.1:5060' from the edge's proxy URI 'sip:127.0.0.1:5060;lr': the address the
    edge's requests come from (it relays to workers over UDP from its own port)."""
    if not proxy:
        return None
    return proxy.removeprefix("sip:").split(";", 1)[0]
