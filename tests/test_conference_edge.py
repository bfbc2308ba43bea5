"""Conference rooms behind the real Kamailio edge (`flexvoice serve`'s set-up): participants
dispatched by the edge to different pjsua2 workers are joined by links that pass the edge
(route[LINK] in sip/kamailio.cfg.tmpl), and every one hears the speaker. The edge relays a
link only from a worker's own address to another worker's."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from flexvoice.sip.leg import SipLeg
from flexvoice.sip.pool import PoolSettings
from flexvoice.sip.protocol import INTERNAL_PREFIX
from tests.confkit import Rooms, room_flow
from tests.edge_support import edge_config, outcomes, run_uac, running_edge, start_uas
from tests.rtp_ears import Ear, assert_all_heard, leave, speak, until
from tests.sipptool import run_uac_async

pytestmark = pytest.mark.sip


async def test_the_edge_relays_a_link_only_from_a_worker_to_a_worker(tmp_path: Path) -> None:
    cfg, addresses, state = edge_config(workers=3)
    workers, relay = addresses[:2], addresses[2]  # a relay worker: links only, no caller
    far = await start_uas(tmp_path, workers[1].port, name="w1")  # stands in for worker 1
    at_relay = await start_uas(tmp_path, relay.port, name="relay")
    token = "0123456789abcdef01234567"
    try:
        async with running_edge(cfg, workers, state, relays=[relay]):
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
            to_relay = f"sip:{INTERNAL_PREFIX}{token}@127.0.0.1:{relay.port}"
            relayed = await run_uac(tmp_path, edge, to_relay, src_port=w0, name="to-relay")
            # Callers for a number: dispatched to call workers only, never to the relay.
            number = f"sip:+3225551001@127.0.0.1:{cfg.sip.edge.port}"
            await run_uac(tmp_path, edge, number, calls=4, name="callers")
    finally:
        far_lines = await stop_lines(far)
        relay_lines = await stop_lines(at_relay)
    assert outcomes(linked) == {"answered": 1}, linked
    assert outcomes(elsewhere) == {"refused 404": 1}, elsewhere
    assert outcomes(guessed) == {"refused 404": 1}, guessed
    assert outcomes(stranger) == {"refused 403": 1}, stranger  # a local tool, not a worker
    assert outcomes(relayed) == {"answered": 1}, relayed
    assert sum(1 for ln in relay_lines if ln.startswith("call ")) == 1  # the link, no caller
    assert sum(1 for ln in far_lines if ln.startswith("call ")) >= 2  # the link and callers


async def stop_lines(uas: Any) -> list[str]:
    await uas.stop()
    return list(uas.lines())


async def test_participants_on_different_workers_behind_the_edge_hear_the_speaker(
    tmp_path: Path,
) -> None:
    cfg, addresses, state = edge_config(workers=3)
    rooms = Rooms(tmp_path, {"+3225551001": room_flow()})
    service = rooms.service
    legs: list[SipLeg] = []

    async def on_incoming(leg: SipLeg) -> None:
        if leg.callee.endswith("3225551002"):  # callers who only fill slots
            await leg.answer()
            await leg.wait_ended()
            return
        legs.append(leg)
        await rooms.on_incoming(leg)

    edge_port = cfg.sip.edge.port
    pool = rooms.pool(
        PoolSettings(
            count=len(addresses),
            base_port=addresses[0].port,
            proxy=f"sip:127.0.0.1:{edge_port};lr",
            rtp_base=random.randrange(30000, 48000, 2),
        ),
        on_incoming,
    )
    ears = [Ear() for _ in range(6)]
    callers: list[asyncio.Future[Any]] = []
    async with running_edge(cfg, addresses, state) as edge:
        pool.on_worker_lost.append(edge.worker_lost)  # as `flexvoice serve` wires them
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
                try:
                    await until(lambda n=i + 1: len(rooms.members()) == n, 30)
                except AssertionError:
                    failed = [d for _, k, d in rooms.observer.events if k == "step_failed"]
                    raise AssertionError(f"participant {i + 1} not in: {failed}") from None
            live = service.rooms[("acme", "team")]
            placements = {leg.media_worker for leg in legs}
            assert len(placements) >= 2 and set(live.parts) == placements, (placements, live)
            started = await speak(ears[0], 5.0, ears[1:])
            # A link holds a slot on both its workers and the edge counts it (route[LINK]):
            # callers go only to the slots left, the one too many gets the edge's 503 (it
            # got a worker's 486 when the edge did not count links).
            assert {t.index: t.load for t in await edge.targets()} == {
                w.index: w.used for w in pool.workers
            }
            free = sum(w.free for w in pool.workers)
            more = await run_uac(
                tmp_path, f"127.0.0.1:{edge_port}", f"sip:+3225551002@127.0.0.1:{edge_port}",
                calls=free + 1, hold_ms=2000, name="more",
            )  # fmt: skip
            assert outcomes(more) == {"answered": free, "refused 503": 1}, more
            # A worker holding a leaf part dies: the edge ends its dialogs (the link's too, a
            # BYE to its live end), and the participants left on the other workers still hear
            # the speaker (the room went silent on the parent's worker when a link ended).
            speaker_at = legs[0].media_worker
            parents = {p.parent for p in live.parts.values()}
            dead = next(
                p for p in live.parts.values()
                if p.placement != speaker_at and p.placement not in parents
            )  # fmt: skip
            victim = next(w for w in pool.workers if f"worker {w.index}" == dead.placement)
            assert victim.proc is not None
            victim.proc.kill()
            await until(
                lambda: all(leg.ended for leg in legs if leg.media_worker == dead.placement), 15
            )
            await asyncio.sleep(1.0)
            alive = [
                ear
                for leg, ear in zip(legs, ears, strict=True)
                if leg.media_worker != dead.placement
            ]
            again = await speak(ears[0], 4.0, alive[1:])
            for leg in list(legs):
                await leg.hangup()
        finally:
            await leave(callers, ears)
            await pool.stop(grace=0)
    assert_all_heard(ears, started + 1.5, started + 5.0)
    assert_all_heard(alive, again + 1.0, again + 4.0, "after the worker died")
    assert len(rooms.conference_events()) == 1
