"""Conference rooms behind the real Kamailio edge (`flexvoice serve`'s set-up): participants
dispatched by the edge to different pjsua2 workers are joined by links that pass the edge
(route[LINK] in sip/kamailio.cfg.tmpl), and every one hears the speaker. The edge relays a
link only from a worker's own address to another worker's."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flexvoice.conference.service import ConferenceService
from flexvoice.flows.deps import FlowDeps
from flexvoice.flows.runtime import FlowRuntime
from flexvoice.sip.leg import SipLeg
from flexvoice.sip.links import PoolLinker
from flexvoice.sip.pool import INTERNAL_PREFIX, PoolSettings, WorkerPool
from tests.conftest import REPO
from tests.edge_support import edge_config, run_uac, running_edge, start_uas
from tests.fakeleg import Observer, Sink
from tests.rtp_ears import Ear, speak, until
from tests.sipptool import run_uac_async

pytestmark = pytest.mark.sip

ROOM_FLOW = """\
flow: room
start: room
steps:
  room:
    conference: {room: team, beep: false}
"""


def outcomes(lines: list[str]) -> Counter[str]:
    return Counter(" ".join(ln.split()[:-1]) for ln in lines)


async def test_the_edge_relays_a_link_only_from_a_worker_to_a_worker(tmp_path: Path) -> None:
    cfg, workers, state = edge_config(workers=2)
    far = await start_uas(tmp_path, workers[1].port, name="w1")  # stands in for worker 1
    token = "0123456789abcdef01234567"
    try:
        async with running_edge(cfg, workers, state):
            edge = f"127.0.0.1:{cfg.sip.edge.port}"
            to_worker = f"sip:{INTERNAL_PREFIX}{token}@127.0.0.1:{workers[1].port}"
            to_other = f"sip:{INTERNAL_PREFIX}{token}@127.0.0.1:5999"
            # worker 0's own SIP address (no worker runs there: sipp binds it)
            w0 = workers[0].port
            linked = await run_uac(tmp_path, edge, to_worker, src_port=w0, name="link")
            elsewhere = await run_uac(tmp_path, edge, to_other, src_port=w0, name="elsewhere")
            bad_token = f"sip:{INTERNAL_PREFIX}x@127.0.0.1:{workers[1].port}"
            guessed = await run_uac(tmp_path, edge, bad_token, src_port=w0, name="guessed")
            stranger = await run_uac(tmp_path, edge, to_worker, name="stranger")
    finally:
        far_lines = await stop_lines(far)
    assert outcomes(linked) == {"answered": 1}, linked
    assert outcomes(elsewhere) == {"refused 404": 1}, elsewhere
    assert outcomes(guessed) == {"refused 404": 1}, guessed
    assert outcomes(stranger) == {"refused 403": 1}, stranger  # a local tool, not a worker
    assert sum(1 for ln in far_lines if ln.startswith("call ")) == 1  # only the link got there


async def stop_lines(uas: Any) -> list[str]:
    await uas.stop()
    return list(uas.lines())


async def test_participants_on_different_workers_behind_the_edge_hear_the_speaker(
    tmp_path: Path,
) -> None:
    cfg, addresses, state = edge_config(workers=3)
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "3225551001.yaml").write_text(ROOM_FLOW)
    sink, observer = Sink(), Observer()
    service = ConferenceService(usage_sink=sink)
    deps = FlowDeps(usage_sink=sink, observer=observer, conferences=service)
    runtime = FlowRuntime(flows, REPO / "ivr_prompts", deps)
    legs: list[SipLeg] = []

    async def on_incoming(leg: SipLeg) -> None:
        legs.append(leg)
        leg.account = "acme"
        await runtime.start_call(leg, "room", account="acme")

    edge_port = cfg.sip.edge.port
    pool = WorkerPool(
        PoolSettings(
            count=len(addresses),
            base_port=addresses[0].port,
            proxy=f"sip:127.0.0.1:{edge_port};lr",
            rtp_base=random.randrange(30000, 48000, 2),
        ),
        on_incoming,
    )
    service.linker = PoolLinker(pool)
    ears = [Ear() for _ in range(6)]
    callers: list[asyncio.Future[Any]] = []
    async with running_edge(cfg, addresses, state):
        await pool.start()
        try:
            for i, ear in enumerate(ears):
                callers.append(
                    asyncio.ensure_future(
                        run_uac_async(
                            "uac_call.xml", f"127.0.0.1:{edge_port}", "+3225551001",
                            hold_ms=60000, timeout=90, keys={"rtp_port": str(ear.port)},
                        )
                    )
                )  # fmt: skip
                await until(lambda n=i + 1: len(members(service)) == n, 30)
            live = service.rooms[("acme", "team")]
            placements = {leg.media_worker for leg in legs}
            assert len(placements) >= 2 and set(live.parts) == placements, (placements, live)
            started = await speak(ears[0], 5.0, ears[1:])
            for leg in list(legs):
                await leg.hangup()
        finally:
            for caller in callers:
                caller.cancel()
            await asyncio.gather(*callers, return_exceptions=True)
            for ear in ears:
                ear.close()
            await pool.stop(grace=0)
    assert ears[0].rms(started + 1.5, started + 5.0) < 50  # the speaker does not hear itself
    for n, ear in enumerate(ears[1:], start=1):
        heard = ear.rms(started + 1.5, started + 5.0)
        assert heard > 300, (n, heard, len(ear.packets))
    assert len([e for e in sink.events if e["kind"] == "conference"]) == 1


def members(service: ConferenceService) -> dict[str, Any]:
    room = service.get("acme", "team")
    return dict(room.members) if room is not None else {}
