"""What the benchmarks read of processes from /proc: a process tree, its CPU seconds, its
proportional set size, and the engine's processes by job (control plane, edge, workers)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def tree(root_pid: int) -> list[int]:
    """A process and all its descendants."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        pid, ppid = (int(x) for x in line.split())
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pss_kb(pids: list[int]) -> int:
    """Proportional set size: each shared page counted once across the processes."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        total += int(match.group(1)) if match else 0
    return total


def workers_by_port(base: int, count: int) -> dict[int, int]:
    """index -> pid of whoever listens on UDP base + index (workers are forked from a
    template, so their command line does not tell them apart)."""
    out = subprocess.run(["ss", "-ulpnH"], capture_output=True, text=True).stdout
    found: dict[int, int] = {}
    for line in out.splitlines():
        port = int(line.split()[3].rsplit(":", 1)[1])
        match = re.search(r"pid=(\d+)", line)
        if match and base <= port < base + count:
            found[port - base] = int(match.group(1))
    return found


@dataclass
class Idle:
    cores: float  # the whole tree, in cores
    worker_pct: float  # one worker on average, in % of a core
    pss_kb: int
    parts: dict[str, float] = field(default_factory=dict)  # cores per part (engine only)


def parts_of(root_pid: int) -> dict[str, list[int]]:
    """The engine's processes by job: the control plane (the node's own process, with its
    threads), the edge (Kamailio), and the media workers with their template."""
    found: dict[str, list[int]] = {"control plane": [root_pid], "edge": [], "workers": []}
    for pid in tree(root_pid)[1:]:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        found["edge" if name.startswith("kamailio") else "workers"].append(pid)
    return found


def measure_idle(root_pid: int, workers: list[int], seconds: float) -> Idle:
    pids = tree(root_pid)
    parts = parts_of(root_pid)
    before = {p: cpu_seconds(p) for p in pids}
    time.sleep(seconds)
    after = {p: cpu_seconds(p) for p in pids}
    total = sum(after[p] - before[p] for p in pids)
    per_worker = sum(after[p] - before[p] for p in workers) / max(1, len(workers))
    cores = {
        part: sum(after.get(p, 0.0) - before.get(p, 0.0) for p in ps) / seconds
        for part, ps in parts.items()
    }
    return Idle(total / seconds, 100 * per_worker / seconds, pss_kb(pids), cores)


def load() -> str:
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_ticks() -> tuple[int, int, int]:
    """The machine's CPU time since boot in clock ticks (/proc/stat): idle (with I/O wait),
    stolen by the host (a virtual machine's CPUs running someone else), and all of it."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return ticks[3] + ticks[4], ticks[7], sum(ticks)


def machine_line(before: tuple[int, int, int], after: tuple[int, int, int]) -> str:
    """The machine between two readings: busy, idle and stolen shares of its CPU time."""
    idle, stolen, total = (b - a for a, b in zip(before, after, strict=True))
    total = max(1, total)
    return (
        f"machine {100 * (total - idle - stolen) / total:.0f} % busy, "
        f"{100 * idle / total:.0f} % idle, {100 * stolen / total:.1f} % stolen by the host"
    )


def measure_idle_pids(pids: list[int], seconds: float) -> Idle:
    before = {p: cpu_seconds(p) for p in pids}
    time.sleep(seconds)
    total = sum(cpu_seconds(p) - before[p] for p in pids)
    return Idle(total / seconds, 100 * total / seconds / max(1, len(pids)), pss_kb(pids))
