"""Conference rooms through real SIP: sipp callers run a flow's `conference` step on one
pjsua2 worker. Where a test must hear what a participant hears, the participant's SDP names a
UDP socket of the test, which decodes the A-law RTP the worker sends there.

PIN refused then accepted; one speaker heard by the others until muted; a kicked participant's
leg ends; the moderator leaving ends the room for everyone; one usage event per set-up."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from flexvoice.sip.leg import SipLeg
from flexvoice.sip.pool import PoolSettings, WorkerPool
from tests.confkit import Rooms
from tests.conftest import free_port_range
from tests.rtp_ears import Ear, assert_all_heard, leave, listen_for, speak, until
from tests.sipptool import run_uac_async

pytestmark = pytest.mark.sip

FLOWS = {
    "+3225551001": """\
flow: room
start: room
steps:
  room:
    conference: {room: team, beep: false}
""",
    "+3225551002": """\
flow: pin
start: room
steps:
  room:
    conference: {room: secret, pin: "4321", pin_prompt: beep, wrong_pin_prompt: beep}
""",
    "+3225551003": """\
flow: member
start: room
steps:
  room:
    conference: {room: board, wait_for_moderator: true, wait_music: hold_music}
""",
    "+3225551004": """\
flow: boss
start: room
steps:
  room:
    conference: {room: board, moderator: true, end_when_moderator_leaves: true}
""",
}


class Node:
    def __init__(self, pool: WorkerPool, rooms: Rooms):
        self.pool = pool
        self.rooms = rooms
        self.service = rooms.service
        self.sink = rooms.sink
        self.observer = rooms.observer
        self.legs = rooms.legs
        self.reasons = rooms.reasons

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.pool.settings.base_port}"

    def leg_of(self, number: str, nth: int = 0) -> SipLeg:
        return [leg for leg in self.legs.values() if leg.callee == number][nth]


@pytest.fixture
async def conf_node(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    pools: list[WorkerPool] = []

    async def make(workers: int = 1, relays: int = 0) -> Node:
        rooms = Rooms(tmp_path, FLOWS, beep=True)
        pool = rooms.pool(
            PoolSettings(
                count=workers + relays,
                base_port=free_port_range(workers + relays),
                rtp_base=random.randrange(30000, 48000, 2),
                relays=relays,
            )
        )
        await pool.start()
        pools.append(pool)
        return Node(pool, rooms)

    yield make
    for pool in pools:
        await pool.stop(grace=0)


def conference_events(node: Node) -> list[dict[str, Any]]:
    return node.rooms.conference_events()


async def test_a_wrong_pin_is_refused_then_the_right_one_lets_the_caller_in(
    conf_node: Callable[..., Awaitable[Node]],
) -> None:
    node = await conf_node()
    result = await run_uac_async("uac_pin.xml", node.target, "+3225551002", hold_ms=2000)
    await until(lambda: node.reasons)
    assert result.successful == 1, result.output
    pins = [d["ok"] for _, kind, d in node.observer.events if kind == "pin"]
    assert pins == [False, True]
    [setup] = conference_events(node)
    assert setup["room"] == "secret" and setup["account"] == "acme"
    assert node.service.rooms_of("acme") == []  # the last one left: the room ended


async def test_everyone_hears_the_speaker_until_muted_and_a_kick_ends_that_leg(
    conf_node: Callable[..., Awaitable[Node]],
) -> None:
    node = await conf_node()
    ears = [Ear(), Ear()]
    listeners: list[asyncio.Future[Any]] = []
    try:
        # One listener after the other: the legs' order must be the scenarios' order (the one
        # kicked runs uac_until_bye.xml). Started together, either INVITE may arrive first, and
        # kicking the caller that hangs up itself failed both sipp scenarios.
        for scenario, ear in zip(("uac_call.xml", "uac_until_bye.xml"), ears, strict=True):
            listeners.append(
                asyncio.ensure_future(
                    run_uac_async(
                        scenario,
                        node.target,
                        "+3225551001",
                        hold_ms=11000,
                        timeout=60,
                        keys={"rtp_port": str(ear.port)},
                    )
                )
            )
            count = len(listeners)
            await until(
                lambda n=count: (
                    len(node.legs) == n and all(leg.answered for leg in node.legs.values())
                )
            )
        speaker = asyncio.ensure_future(
            run_uac_async("uac_talk.xml", node.target, "+3225551001", hold_ms=9000, timeout=60)
        )
        await until(lambda: len(members(node, "team")) == 3)
        first, second, talker = list(node.legs)
        joined = time.monotonic()
        # The speaker's speech runs from 1.5 s to 7 s after its answer: hear it, then mute it.
        while time.monotonic() < joined + 4.0:
            for ear in ears:
                ear.drain()
            await asyncio.sleep(0.02)
        before = talking(node, "team")
        await node.service.mute("acme", "team", talker, True)
        muted_at = time.monotonic()
        while time.monotonic() < muted_at + 2.5:
            for ear in ears:
                ear.drain()
            await asyncio.sleep(0.02)
        after = talking(node, "team")
        node.service.kick("acme", "team", second)
        await until(lambda: node.legs[second].ended)
        assert not node.legs[first].ended
        results = [await listener for listener in listeners] + [await speaker]
    finally:
        for ear in ears:
            ear.close()
    assert [r.successful for r in results] == [1, 1, 1], [r.output[-1500:] for r in results]
    for ear in ears:
        heard = ear.rms(joined + 1.8, joined + 3.8)
        silent = ear.rms(muted_at + 0.5, muted_at + 2.5)
        assert heard > 300, (heard, len(ear.packets))  # speech decodes to RMS 1,600-2,600
        assert silent < 50, silent
    assert node.reasons[second] == "left room team: kicked", node.reasons
    # Talking time, measured on the worker from the level of what each one sends: the talker
    # spoke from 1.5 s after answering until muted at 4 s; the listeners send silence. Muted,
    # its speech no longer counts (and it is no longer shown as talking).
    assert 1.0 <= before[talker][0] <= 5.0 and before[talker][1], before
    assert before[first] == (0.0, False) and before[second] == (0.0, False), before
    assert after[talker][0] - before[talker][0] < 0.8 and not after[talker][1], (before, after)
    assert len(conference_events(node)) == 1  # one set-up, however many joined


def talking(node: Node, name: str) -> dict[str, tuple[float, bool]]:
    """call id -> (talking_seconds, talking) as GET /v1/conferences/{room} shows them."""
    room = node.service.get("acme", name)
    assert room is not None
    return {
        p["call_id"]: (p["talking_seconds"], p["talking"]) for p in room.resource()["participants"]
    }


def members(node: Node, name: str) -> dict[str, Any]:
    return node.rooms.members(name)


async def test_the_moderator_leaving_ends_the_room_for_everyone(
    conf_node: Callable[..., Awaitable[Node]],
) -> None:
    node = await conf_node()
    member = asyncio.ensure_future(
        run_uac_async("uac_until_bye.xml", node.target, "+3225551003", timeout=30)
    )
    await until(lambda: node.service.get("acme", "board") is not None)
    room = node.service.get("acme", "board")
    assert room is not None and room.started_at is None  # waiting for the moderator
    assert conference_events(node) == []  # not set up yet: nothing billed
    boss = await run_uac_async("uac_call.xml", node.target, "+3225551004", hold_ms=2500)
    assert boss.successful == 1, boss.output
    result = await member  # the member got the node's BYE when the room ended
    assert result.successful == 1, result.output
    assert room.ended and node.service.get("acme", "board") is None
    [setup] = conference_events(node)
    assert setup["room"] == "board"


async def join_two_per_worker(node: Node, ears: list[Ear]) -> list[asyncio.Future[Any]]:
    """Two participants per worker, worker after worker: the room grows a tree of links.
    They hold for longer than a test lasts: a caller holding 60 s hung up by itself mid-test
    under load (the "root worker's participants disconnected" of an earlier try)."""
    callers: list[asyncio.Future[Any]] = []
    for i, ear in enumerate(ears):
        port = node.pool.workers[i // 2].port
        callers.append(
            asyncio.ensure_future(
                run_uac_async(
                    "uac_call.xml", f"127.0.0.1:{port}", "+3225551001", hold_ms=180000,
                    timeout=200, keys={"rtp_port": str(ear.port)},
                )
            )
        )  # fmt: skip
        try:
            await until(lambda n=i + 1: len(members(node, "team")) == n, 30)
        except AssertionError:
            failed = [d for _, k, d in node.observer.events if k == "step_failed"]
            raise AssertionError(f"participant {i + 1} not in: {failed}") from None
    return callers


async def test_relays_are_the_inside_of_the_tree_and_a_moved_part_hears_again(
    conf_node: Callable[..., Awaitable[Node]],
) -> None:
    """10 participants on 5 workers with 2 relays: the first relay is the hub below the root
    and takes 3 parts; the 4th part moves the shallowest leaf below the second relay (its
    uplink hung up and linked again), and then everyone hears the speaker, nobody itself."""
    node = await conf_node(workers=5, relays=2)
    ears = [Ear() for _ in range(10)]
    callers: list[asyncio.Future[Any]] = []
    try:
        callers = await join_two_per_worker(node, ears)
        live = node.service.rooms[("acme", "team")]
        parent = {p.placement: p.parent for p in live.parts.values()}
        assert parent == {
            "worker 0": None, "worker 6": "worker 0",  # the hub (relays: 5 and 6)
            "worker 2": "worker 6", "worker 3": "worker 6", "worker 5": "worker 6",
            "worker 1": "worker 5", "worker 4": "worker 5",  # worker 1 moved
        }, parent  # fmt: skip
        assert all(w.used <= 4 for w in node.pool.workers)
        started = await speak(ears[0], 6.0, ears[1:])
        await listen_for(ears, 0.5)
    finally:
        await leave(callers, ears)
    assert_all_heard(ears, started + 2.0, started + 6.0)


async def test_a_room_of_12_across_6_workers_hears_the_speaker_and_survives_a_relay_dying(
    conf_node: Callable[..., Awaitable[Node]],
) -> None:
    """Everyone hears the speaker, nobody hears itself; then a worker holding an inner part
    (one with a part below it) is killed (-9): the parts cut off hang again below the root
    and every participant left still hears the speaker; the dead worker's participants end
    with that reason and each call is billed once."""
    node = await conf_node(workers=6)
    ears = [Ear() for _ in range(12)]
    callers: list[asyncio.Future[Any]] = []
    try:
        callers = await join_two_per_worker(node, ears)
        live = node.service.rooms[("acme", "team")]
        depths = {p.placement: p.depth for p in live.parts.values()}
        assert len(depths) == 6 and max(depths.values()) <= 3, depths
        assert all(w.used <= 4 for w in node.pool.workers)
        room = node.service.get("acme", "team")
        assert room is not None and len(room.members) == 12  # links are not members
        started = await speak(ears[0], 6.0, ears[1:])
        parents = {p.parent for p in live.parts.values()}
        inner = min(p.placement for p in live.parts.values() if p.parent and p.placement in parents)
        dead = int(inner.split()[-1])
        victim = node.pool.workers[dead].proc
        assert victim is not None
        os.kill(victim.pid, signal.SIGKILL)
        cut_off = {p for p in live.parts if p != inner and live.parts[p].parent == inner}

        def rebuilt() -> bool:
            connected = live.tree.connected()
            return inner not in live.parts and cut_off <= connected == set(live.parts)

        try:
            await until(rebuilt, 30)
        except AssertionError:
            raise AssertionError(f"not rebuilt around {inner}: {live.parts}") from None
        alive = [ear for i, ear in enumerate(ears) if i // 2 != dead]
        await asyncio.sleep(1.0)
        again = await speak(ears[0], 5.0, alive[1:])
        await listen_for(ears, 0.5)
        for leg in list(node.legs.values()):
            await leg.hangup()
        await until(lambda: len(node.reasons) == 12, 15)
    finally:
        await leave(callers, ears)
    assert_all_heard(ears, started + 2.0, started + 6.0)
    assert_all_heard(alive, again + 1.5, again + 5.0, f"after the rebuild, cut off: {cut_off}")
    lost = {c: r for c, r in node.reasons.items() if node.legs[c].media_worker == inner}
    assert len(lost) == 2 and all(
        "media worker holding the call was lost" in r for r in lost.values()
    ), node.reasons
    billed = [e["call_id"] for e in node.sink.events if e["kind"] == "call"]
    assert sorted(billed) == sorted(node.legs), billed  # every call once, links never
    assert len(conference_events(node)) == 1
