"""The figures of the statistics, named and defined once (the README lists the same): from the
rollups' summed counters to what an answer shows."""

from __future__ import annotations

import math
from typing import Any

from flexvoice.statistics.rollup import HIST, WAIT_EDGES


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _avg_s(ms: int, n: int) -> float | None:
    return round(ms / n / 1000, 1) if n else None


def call_figures(f: dict[str, int]) -> dict[str, Any]:
    g = f.get
    offered, answered = g("offered", 0), g("answered", 0)
    return {
        "offered": offered,
        "answered": answered,
        "abandoned": g("abandoned", 0),
        "busy": g("busy", 0),
        "no_answer": g("no_answer", 0),
        "failed": g("failed", 0),
        "redirected": g("redirected", 0),
        "ended_in_flow": g("ended_in_flow", 0),
        "rerouted": g("rerouted", 0),
        "answer_rate": _ratio(answered, offered),
        "abandon_rate": _ratio(g("abandoned", 0), offered),
        "avg_speed_of_answer_s": _avg_s(g("answer_ms", 0), answered),
        "talk_s": round(g("talk_ms", 0) / 1000, 1),
        "avg_talk_s": _avg_s(g("talk_ms", 0), answered),
        "webhook_failures": g("webhook_failures", 0),
    }


def queue_figures(f: dict[str, int]) -> dict[str, Any]:
    g = f.get
    entered, answered = g("queue_entered", 0), g("queue_answered", 0)
    return {
        "queue_entered": entered,
        "queue_answered": answered,
        "queue_abandoned": g("queue_abandoned", 0),
        "queue_overflow": g("queue_overflow", 0),
        "avg_wait_s": _avg_s(g("queue_wait_ms", 0), entered),
        "p90_wait_s": p90([g("queue_" + h, 0) for h in HIST]),
        "avg_queue_answer_s": _avg_s(g("queue_answered_wait_ms", 0), answered),
        "service_level": _ratio(g("queue_in_sl", 0), entered),
        "queue_talk_s": round(g("queue_talk_ms", 0) / 1000, 1),
    }


def step_figures(f: dict[str, int]) -> dict[str, Any]:
    entered = f.get("entered", 0)
    return {
        "entered": entered,
        "abandoned": f.get("abandoned", 0),
        "ended": f.get("ended", 0),
        "drop_off_rate": _ratio(f.get("abandoned", 0), entered),
    }


def p90(histogram: list[int]) -> float | None:
    """The upper edge of the bin that holds the 90th percentile wait (an hour or more: 3600)."""
    n = sum(histogram)
    if not n:
        return None
    need = math.ceil(0.9 * n)
    seen = 0
    for i, count in enumerate(histogram):
        seen += count
        if seen >= need:
            return float(WAIT_EDGES[i]) if i < len(WAIT_EDGES) else float(WAIT_EDGES[-1])
    return float(WAIT_EDGES[-1])
