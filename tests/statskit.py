"""Calls played into a real call registry (SQLite) as the SIP layer and the flow runtime report
them, on a virtual clock: for the statistics' unit tests and random recomputation checks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flexvoice.calls import CallRegistry
from flexvoice.statistics.collector import Collector
from flexvoice.storage.engine import Connection
from flexvoice.storage.sqlite import connect


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))

    def iso(self) -> str:
        return self.now.isoformat(timespec="milliseconds")

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    conn: Connection
    clock: Clock
    registry: CallRegistry
    collector: Collector

    def call(
        self,
        script: list[tuple[float, str, dict[str, Any]]],
        *,
        account: str = "acme",
        number: str = "+3226001000",
        flow: str | None = "main",
        direction: str = "inbound",
        at: datetime | None = None,
    ) -> str:
        """One call: created now (or `at`), then each (seconds later, kind, data) event."""
        if at is not None:
            self.clock.now = at
        call = self.registry.create(
            account=account,
            direction=direction,
            from_number="+3225550100" if direction == "inbound" else number,
            to_number=number if direction == "inbound" else "+3225550100",
            flow=flow,
        )
        for delay, kind, data in script:
            self.clock.advance(delay)
            if kind in ("answered", "ended"):
                data = {"at": self.clock.iso(), **data}
            self.registry.call_event(call.id, kind, data)
        return call.id


def world(path: str = ":memory:") -> World:
    return world_on(connect(path))


def world_on(conn: Connection, batch: int = 1, node: str | None = None) -> World:
    """A node's registry and collector on `conn` (either engine); `batch` as the collector's."""
    clock = Clock()
    registry = CallRegistry(conn, clock=clock.iso, node=node)
    # A batch is written when full or when the test says: never because a slow machine took
    # a second between two calls.
    collector = Collector(
        conn, registry, clock=lambda: clock.now, batch=batch, max_delay=float("inf")
    )
    registry.listeners.append(collector.listener)
    return World(conn, clock, registry, collector)


def step(name: str, verb: str) -> tuple[float, str, dict[str, Any]]:
    return (0.2, "step", {"step": name, "verb": verb, "why": "", "from": None})


def caller_hangs_up(after: float, answered: bool = True) -> tuple[float, str, dict[str, Any]]:
    outcome = "completed" if answered else "canceled"
    return (after, "ended", {"sip_status": 200 if answered else 487, "cause": "normal",
                             "outcome": outcome})  # fmt: skip


def flow_hangs_up(after: float, step_name: str) -> list[tuple[float, str, dict[str, Any]]]:
    return [
        (after, "hangup", {"step": step_name, "by": "flow", "sip_status": None}),
        (0.1, "ended", {"sip_status": 200, "cause": "normal", "outcome": "completed"}),
    ]


ANSWER = (0.1, "answered", {"sip_status": 200})


# Scripted inbound calls of the demo scenario; what each implies is in the tests.
def answered_by_agent(talk: float = 30) -> list[tuple[float, str, dict[str, Any]]]:
    return [
        ANSWER,
        step("menu", "menu"),
        (2.0, "menu", {"step": "menu", "option": "1"}),
        step("desk", "dial"),
        (0.1, "dial_start", {"step": "desk", "targets": ["+3225559001"]}),
        (
            4.0,
            "dial_end",
            {"step": "desk", "outcome": "completed", "answered_target": "+3225559001"},
        ),
        caller_hangs_up(talk),
    ]


def abandoned_in_menu() -> list[tuple[float, str, dict[str, Any]]]:
    return [ANSWER, step("menu", "menu"), caller_hangs_up(3.0)]


def abandoned_in_queue(wait: float = 7.0) -> list[tuple[float, str, dict[str, Any]]]:
    return [
        ANSWER,
        step("menu", "menu"),
        (1.0, "menu", {"step": "menu", "option": "2"}),
        step("line", "queue"),
        (0.0, "queue_enter", {"queue": "support", "step": "line", "sl": 20.0}),
        (0.0, "dial_start", {"step": "line", "targets": ["+3225559002"]}),
        caller_hangs_up(wait),
    ]


def answered_in_queue(wait: float, talk: float) -> list[tuple[float, str, dict[str, Any]]]:
    return [
        ANSWER,
        step("line", "queue"),
        (0.0, "queue_enter", {"queue": "support", "step": "line", "sl": 20.0}),
        (0.0, "dial_start", {"step": "line", "targets": ["+3225559002"]}),
        (
            wait,
            "dial_end",
            {"step": "line", "outcome": "completed", "answered_target": "+3225559002"},
        ),
        (0.0, "queue_leave", {"queue": "support", "result": "answered"}),
        caller_hangs_up(talk),
    ]


def busy_no_branch(outcome: str = "busy") -> list[tuple[float, str, dict[str, Any]]]:
    return [
        ANSWER,
        step("menu", "menu"),
        (1.0, "menu", {"step": "menu", "option": "3"}),
        step("desk", "dial"),
        (0.0, "dial_start", {"step": "desk", "targets": ["+3225559001"]}),
        (1.0, "dial_end", {"step": "desk", "outcome": outcome, "answered_target": None}),
        *flow_hangs_up(0.1, "desk"),
    ]


def rerouted_then_answered() -> list[tuple[float, str, dict[str, Any]]]:
    return [
        ANSWER,
        step("desk", "dial"),
        (0.0, "dial_start", {"step": "desk", "targets": ["+3225559001"]}),
        (1.0, "dial_end", {"step": "desk", "outcome": "busy", "answered_target": None}),
        (0.0, "reroute", {"step": "desk", "why": "dial busy"}),
        step("backup", "dial"),
        (0.0, "dial_start", {"step": "backup", "targets": ["+3225559003"]}),
        (
            2.0,
            "dial_end",
            {"step": "backup", "outcome": "completed", "answered_target": "+3225559003"},
        ),
        caller_hangs_up(10.0),
    ]


def continuity() -> list[tuple[float, str, dict[str, Any]]]:
    return [
        (0.1, "step", {"step": "continuity", "verb": "redirect", "why": "", "from": None}),
        (0.1, "ended", {"sip_status": 302, "cause": "redirected", "outcome": "failed"}),
        (0.0, "reroute", {"step": "continuity", "why": "continuity"}),
    ]


def random_script(rng: random.Random) -> list[tuple[float, str, dict[str, Any]]]:
    kind = rng.randrange(7)
    if kind == 0:
        return answered_by_agent(rng.uniform(1, 300))
    if kind == 1:
        return abandoned_in_menu()
    if kind == 2:
        return abandoned_in_queue(rng.uniform(0, 400))
    if kind == 3:
        return answered_in_queue(rng.uniform(0, 90), rng.uniform(1, 200))
    if kind == 4:
        return busy_no_branch(rng.choice(["busy", "no-answer", "failed"]))
    if kind == 5:
        return rerouted_then_answered()
    return continuity()


# The node of the SIP statistics tests (and the statistics page's): its lines, the agents
# behind tests/sipp/uas_agents.xml, and its flow.
LINE, MOVED, OTHER = "+3225551001", "+3225551002", "+3225552001"
BROKEN = "+3225551003"  # its flow does not exist
AGENT, BUSY, RINGS = "+3225559001", "+3225559002", "+3225559003"  # tests/sipp/uas_agents.xml

STATS_FLOW = f"""\
flow: stats
description: A menu whose keys lead to every way a call can end
start: menu
steps:
  menu:
    menu:
      say: Press 1 for the desk, 2 to wait for an agent.
      options: {{"1": desk, "2": line, "3": busy_desk, "4": slow_desk, "5": backup}}
      timeout: 10s
      retries: 0
  desk:
    dial: {{targets: ["{AGENT}"], ring_timeout: 10s}}
  busy_desk:
    dial: {{targets: ["{BUSY}"], ring_timeout: 10s}}
  slow_desk:
    dial: {{targets: ["{RINGS}"], ring_timeout: 3s}}
  backup:
    dial: {{targets: ["{BUSY}"], ring_timeout: 10s, on_busy: sorry}}
  line:
    queue:
      name: support
      targets: ["{RINGS}"]
      ring_timeout: 30s
      max_wait: 60s
      announce_position: false
      service_level: 15s
  sorry:
    play: {{say: "Sorry, nobody is free.", then: bye}}
  bye:
    hangup:
"""

# trunk_node's arguments for the node these tests (and the statistics page's) run.
STATS_NODE: dict[str, Any] = {
    "flows": {"stats": STATS_FLOW},
    "numbers": {
        LINE: {"account": "shop", "flow": "stats"},
        MOVED: {"account": "shop", "flow": "stats"},
        BROKEN: {"account": "shop", "flow": "missing"},
        OTHER: {"account": "other", "flow": "stats"},
    },
    "caller_id": {"default": LINE},
}
