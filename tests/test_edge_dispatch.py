"""The edge's dispatching against real Kamailio and sipp stand-in workers (the worker that
took the last call while it has room, else round robin to a worker with room; counted by
its dialogs; max_calls each)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.edge_support import (
    calls_per_worker,
    edge_config,
    outcomes,
    run_uac,
    running_edge,
    start_uas,
    wait_for_state,
)

pytestmark = [pytest.mark.edge, pytest.mark.xdist_group("edge")]


@contextlib.asynccontextmanager
async def two_workers_behind_edge(
    tmp_path: Path, **settings: Any
) -> AsyncIterator[tuple[Any, list[Any], str, str]]:
    """Two sipp stand-in workers behind a running edge, both active: (the edge, their
    UASes, the edge's address for sipp, the request URI of a call to a number)."""
    cfg, workers, state = edge_config(workers=2, **settings)
    uas = [await start_uas(tmp_path, w.port, name=f"w{w.index}") for w in workers]
    try:
        async with running_edge(cfg, workers, state) as edge:
            for w in workers:
                await wait_for_state(edge, w.index, "active")
            port = cfg.sip.edge.port
            yield edge, uas, f"127.0.0.1:{port}", f"sip:+3225550100@127.0.0.1:{port}"
    finally:
        for u in uas:
            await u.stop()


async def test_calls_spread_up_to_maxload_then_503(tmp_path: Path) -> None:
    async with two_workers_behind_edge(tmp_path, max_calls=4) as (edge, uas, target, ruri):
        # Ten calls at once, held 3 s: 2 workers x maxload 4 = 8 answered, 2 refused.
        lines = await run_uac(tmp_path, target, ruri, calls=10, hold_ms=3000)
        assert outcomes(lines) == {"answered": 8, "refused 503": 2}, lines
        per_worker = calls_per_worker({i: u.lines() for i, u in enumerate(uas)})
        assert per_worker == {0: 4, 1: 4}
        # Their BYEs passed the edge, so the load is free again: 8 more all answered.
        assert all(t.load == 0 for t in await edge.targets())
        lines = await run_uac(tmp_path, target, ruri, calls=8, hold_ms=500, name="uac2")
        assert outcomes(lines) == {"answered": 8}, lines
        assert calls_per_worker({i: u.lines() for i, u in enumerate(uas)}) == {0: 8, 1: 8}


async def test_calls_fill_one_worker_before_the_next(tmp_path: Path) -> None:
    async with two_workers_behind_edge(tmp_path, max_calls=4) as (_, uas, target, ruri):
        # Three calls at once: all on one worker (one media clock awake, not two).
        lines = await run_uac(tmp_path, target, ruri, calls=3, hold_ms=1000)
        assert outcomes(lines) == {"answered": 3}, lines
        assert sorted(calls_per_worker({i: u.lines() for i, u in enumerate(uas)}).values()) == [
            0,
            3,
        ]
        # Five more at once, the first three ended: that worker takes three again (its fourth
        # slot is kept for a conference room's link while another worker has room), the
        # other one two.
        lines = await run_uac(tmp_path, target, ruri, calls=5, hold_ms=1000, name="uac2")
        assert outcomes(lines) == {"answered": 5}, lines
        per_worker = calls_per_worker({i: u.lines() for i, u in enumerate(uas)})
        assert sorted(per_worker.values()) == [2, 6], per_worker


async def test_a_worker_gets_at_most_worker_cps_new_calls_a_second(tmp_path: Path) -> None:
    # Room for 4 calls each, but 1 new call a second: 8 calls at once get 1 per worker in that
    # second (2; 4 if the burst straddles the turn of a second), the rest 503.
    settings = {"max_calls": 4, "worker_cps": 1}
    async with two_workers_behind_edge(tmp_path, **settings) as (_, _uas, target, ruri):
        lines = await run_uac(tmp_path, target, ruri, calls=8, rate=1000, hold_ms=1000)
        got = outcomes(lines)
        assert set(got) == {"answered", "refused 503"}, lines
        assert 2 <= got["answered"] <= 4 and got["answered"] + got["refused 503"] == 8, got
