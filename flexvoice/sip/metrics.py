"""Prometheus metrics of the SIP layer (served by /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_CALLS = Gauge("flexvoice_active_calls", "Calls currently held by the media workers")
CALLS = Counter(
    "flexvoice_calls_total",
    "Calls ended, by direction and outcome",
    ["direction", "outcome"],
)
SETUP_SECONDS = Histogram(
    "flexvoice_call_setup_seconds",
    "INVITE received (or sent) to 200 OK",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 5, 10, 30),
)
SLOTS_USED = Gauge("flexvoice_worker_slots_used", "Call slots in use across the pool")
SLOTS_TOTAL = Gauge("flexvoice_worker_slots_total", "Call slots in the pool (workers x 4)")
WORKERS_UP = Gauge("flexvoice_workers_up", "Media workers running")
WORKER_RESTARTS = Counter("flexvoice_worker_restarts_total", "Media workers restarted")
