"""The live board of one node: calls up per number and flow, callers waiting per queue, agents
(dialled targets) ringing or talking, and calls started per minute over the last hour.

It is fed by the call registry's listener with the same events the rollups read (no I/O,
an injected clock) and answers per account. When nodes share Redis each node publishes its
board (flexvoice.statistics.component), and the API adds the boards up, node by node.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flexvoice.clock import utc_now
from flexvoice.statistics.facts import is_own_call

MAX_CALL_AGE = timedelta(hours=12)  # a call never reported as ended leaves the board then


@dataclass
class LiveCall:
    account: str
    number: str
    flow: str
    direction: str
    started: datetime
    waiting: dict[str, datetime] = field(default_factory=dict)  # queue -> since
    agents: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # target -> state


class LiveBoard:
    def __init__(self, clock: Callable[[], datetime] = utc_now):
        self.clock = clock
        self.calls: dict[str, LiveCall] = {}
        self.started: dict[str, deque[datetime]] = {}  # account -> starts in the last hour
        self.changes = 0  # bumps on every change: the stream pushes only when it moved
        self.versions: dict[str, int] = {}  # the same per account

    def listener(self, call_id: str, call: Any, kind: str, data: dict[str, object]) -> None:
        """flexvoice.calls.CallListener."""
        now = self.clock()
        if kind == "queued":
            if call is None or not is_own_call(call):
                return
            inbound = call.direction == "inbound"
            self.calls[call_id] = LiveCall(
                call.account,
                call.to_number if inbound else call.from_number,
                call.flow or "",
                call.direction,
                now,
            )
            self.started.setdefault(call.account, deque()).append(now)
            self._changed(call.account)
            return
        live = self.calls.get(call_id)
        if live is None:
            return
        self._changed(live.account)
        if kind == "ended":
            del self.calls[call_id]
        elif kind == "queue_enter":
            live.waiting[str(data.get("queue"))] = now
        elif kind == "queue_leave":
            live.waiting.pop(str(data.get("queue")), None)
        elif kind == "dial_start":
            for target in _targets(data):
                live.agents[target] = ("ringing", now)
        elif kind == "dial_end":
            for target in _targets(data):
                live.agents.pop(target, None)
            answered = data.get("answered_target")
            if isinstance(answered, str) and answered:
                live.agents[answered] = ("talking", now)
        elif kind == "bridge_end":
            live.agents.clear()

    def _changed(self, account: str) -> None:
        self.changes += 1
        self.versions[account] = self.versions.get(account, 0) + 1

    def version(self, account: str) -> int:
        """Moves whenever the account's board changed (a live stream compares it)."""
        return self.versions.get(account, 0)

    def snapshot(self, account: str) -> dict[str, Any]:
        """The account's live figures now (also used as one node's part of a shared view)."""
        now = self.clock()
        for call_id, live in list(self.calls.items()):
            if now - live.started > MAX_CALL_AGE:
                del self.calls[call_id]
        mine = [c for c in self.calls.values() if c.account == account]
        by_number: dict[tuple[str, str], int] = {}
        by_flow: dict[str, int] = {}
        queues: dict[str, list[float]] = {}
        agents: list[dict[str, Any]] = []
        for c in mine:
            by_number[(c.number, c.flow)] = by_number.get((c.number, c.flow), 0) + 1
            by_flow[c.flow] = by_flow.get(c.flow, 0) + 1
            for queue, since in c.waiting.items():
                queues.setdefault(queue, []).append((now - since).total_seconds())
            for target, (state, since) in c.agents.items():
                agents.append(
                    {"target": target, "state": state, "for_s": _s((now - since).total_seconds())}
                )
        starts = self.started.get(account, deque())
        hour_ago = now - timedelta(hours=1)
        while starts and starts[0] <= hour_ago:
            starts.popleft()
        per_minute = [0] * 60
        for t in starts:
            per_minute[min(59, int((t - hour_ago).total_seconds() // 60))] += 1
        return {
            "account": account,
            "at": now.isoformat(timespec="seconds"),
            "calls_up": len(mine),
            "by_number": [
                {"number": n, "flow": f, "calls": k} for (n, f), k in sorted(by_number.items())
            ],
            "by_flow": [{"flow": f, "calls": k} for f, k in sorted(by_flow.items())],
            "queues": [
                {"queue": q, "waiting": len(w), "longest_wait_s": _s(max(w))}
                for q, w in sorted(queues.items())
            ],
            "agents_ringing": sum(1 for a in agents if a["state"] == "ringing"),
            "agents_talking": sum(1 for a in agents if a["state"] == "talking"),
            "agents": sorted(agents, key=lambda a: (a["state"], a["target"])),
            "calls_per_minute": per_minute,
            "calls_last_hour": len(starts),
        }


def _targets(data: dict[str, object]) -> list[str]:
    targets = data.get("targets")
    return [str(t) for t in targets] if isinstance(targets, list) else []


def _s(seconds: float) -> float:
    return round(max(0.0, seconds), 1)


def merge(boards: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Several nodes' snapshots of one account as one, with each node's own figures."""
    if not boards:
        raise ValueError("no boards")
    first = boards[0][1]
    by_number: dict[tuple[str, str], int] = {}
    by_flow: dict[str, int] = {}
    queues: dict[str, tuple[int, float]] = {}
    per_minute = [0] * 60
    agents: list[dict[str, Any]] = []
    nodes = []
    for node, snap in boards:
        for row in snap["by_number"]:
            key = (row["number"], row["flow"])
            by_number[key] = by_number.get(key, 0) + row["calls"]
        for row in snap["by_flow"]:
            by_flow[row["flow"]] = by_flow.get(row["flow"], 0) + row["calls"]
        for row in snap["queues"]:
            n, longest = queues.get(row["queue"], (0, 0.0))
            queues[row["queue"]] = (n + row["waiting"], max(longest, row["longest_wait_s"]))
        per_minute = [a + b for a, b in zip(per_minute, snap["calls_per_minute"], strict=True)]
        agents += snap["agents"]
        nodes.append(
            {
                "node": node,
                "calls_up": snap["calls_up"],
                "waiting": sum(r["waiting"] for r in snap["queues"]),
                "agents_ringing": snap["agents_ringing"],
                "agents_talking": snap["agents_talking"],
            }
        )
    return {
        "account": first["account"],
        "at": max(s["at"] for _, s in boards),
        "calls_up": sum(s["calls_up"] for _, s in boards),
        "by_number": [
            {"number": n, "flow": f, "calls": k} for (n, f), k in sorted(by_number.items())
        ],
        "by_flow": [{"flow": f, "calls": k} for f, k in sorted(by_flow.items())],
        "queues": [
            {"queue": q, "waiting": n, "longest_wait_s": w} for q, (n, w) in sorted(queues.items())
        ],
        "agents_ringing": sum(s["agents_ringing"] for _, s in boards),
        "agents_talking": sum(s["agents_talking"] for _, s in boards),
        "agents": sorted(agents, key=lambda a: (a["state"], a["target"])),
        "calls_per_minute": per_minute,
        "calls_last_hour": sum(s["calls_last_hour"] for _, s in boards),
        "nodes": sorted(nodes, key=lambda n: n["node"]),
    }
