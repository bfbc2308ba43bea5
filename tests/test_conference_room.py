"""The conference room's rules without SIP (flexvoice.conference.room), and the REST API's
conference resources on a node without a pool (dial-in placed through the stand-in)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flexvoice.api.webhooks import SIGNATURE_HEADER, WebhookQueue, verify_signature
from flexvoice.conference.room import Action, Member, Room, RoomFull
from flexvoice.conference.service import ConferenceService
from flexvoice.flows.simulate import ScriptedLeg
from flexvoice.storage.sqlite import connect
from tests.apikit import ACME_NUMBER, running_api

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def kinds(actions: list[Action]) -> list[tuple[str, str | None]]:
    return [(a.kind, a.call_id) for a in actions]


def test_the_first_participant_who_does_not_wait_sets_the_room_up_once() -> None:
    room = Room("acme", "team")
    assert kinds(room.join(Member("a"), T0)) == [("started", None), ("admit", "a"), ("joined", "a")]
    assert kinds(room.join(Member("b"), T0)) == [("admit", "b"), ("joined", "b")]
    assert room.started_at == T0
    assert kinds(room.leave("a", T0)) == [("left", "a")]
    assert kinds(room.leave("b", T0 + timedelta(seconds=5))) == [("left", "b"), ("ended", None)]
    assert room.ended and room.leave("b", T0) == []
    with pytest.raises(RoomFull, match="ended"):
        room.join(Member("c"), T0)


def test_waiting_participants_are_let_in_by_the_moderator() -> None:
    room = Room("acme", "board")
    assert kinds(room.join(Member("a", wait_for_moderator=True), T0)) == [("wait", "a")]
    assert room.started_at is None and room.resource()["status"] == "waiting"
    actions = kinds(room.join(Member("boss", moderator=True, end_on_leave=True), T0))
    assert actions == [
        ("started", None),
        ("admit", "boss"),
        ("joined", "boss"),
        ("admit", "a"),
        ("joined", "a"),
    ]
    # Someone who waits for a moderator walks straight in once one is there.
    assert kinds(room.join(Member("c", wait_for_moderator=True), T0)) == [
        ("admit", "c"),
        ("joined", "c"),
    ]
    # The moderator leaves: everyone is taken out, the room ends once.
    assert kinds(room.leave("boss", T0)) == [
        ("left", "boss"),
        ("kick", "a"),
        ("kick", "c"),
        ("ended", None),
    ]
    assert kinds(room.leave("a", T0)) == [("left", "a")]
    assert kinds(room.leave("c", T0)) == [("left", "c")]


def test_a_full_room_refuses_and_mute_is_kept_per_member() -> None:
    room = Room("acme", "small", max_participants=2)
    room.join(Member("a"), T0)
    room.join(Member("b", muted=True), T0)
    with pytest.raises(RoomFull, match="2 participants at most"):
        room.join(Member("c"), T0)
    assert [p["muted"] for p in room.resource()["participants"]] == [False, True]
    room.mute("b", False)
    assert room.members["b"].muted is False


async def test_conference_resources_over_rest(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        dev = api.auth("acme:developer")
        r = await api.client.get("/v1/conferences", headers=dev)
        assert r.status == 200 and (await r.json()) == {"conferences": []}
        r = await api.client.get("/v1/conferences/team", headers=dev)
        assert r.status == 404 and "no conference room 'team'" in (await r.json())["detail"]
        r = await api.client.post(
            "/v1/conferences/team/participants",
            json={"to": "+32475123450", "from": ACME_NUMBER, "muted": True},
            headers=dev,
        )
        assert r.status == 201, await r.text()
        call = await r.json()
        assert call["flow"] == "conference-dial-in" and call["to"] == "+32475123450"
        r = await api.client.post(
            "/v1/conferences/bad room!/participants",
            json={"to": "+32475123450", "from": ACME_NUMBER},
            headers=dev,
        )
        assert r.status == 422 and (await r.json())["field"] == "room"
        r = await api.client.post(
            "/v1/conferences/team/participants/CA1", json={"action": "mute"}, headers=dev
        )
        assert r.status == 404


async def test_conference_webhooks_reach_a_real_receiver_signed(tmp_path: Path) -> None:
    """The service's events go through the node's webhook queue (SQLite, retried) over HTTP
    to a local aiohttp receiver, signed with the account's secret."""
    received: list[tuple[bytes, str]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers[SIGNATURE_HEADER]))
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    server = TestServer(receiver, host="127.0.0.1")
    await server.start_server()
    secret = "whsec_test_acme"
    queue = WebhookQueue(connect(tmp_path / "hooks.db"), lambda account: secret)
    service = ConferenceService(webhooks=queue)
    leg = ScriptedLeg(call_id="CA1")  # stays a moment, then hangs up
    try:
        async with aiohttp.ClientSession() as session:
            reason = await service.join(
                leg, "acme", "team", Member("CA1"), beep=False,
                callback=str(server.make_url("/hook")),
            )  # fmt: skip
            assert reason == "hangup"
            await queue.deliver_due(session)
    finally:
        await server.close()
    events = [json.loads(body) for body, _ in received]
    assert [e["event"] for e in events] == [
        "conference.started", "conference.joined", "conference.left", "conference.ended"
    ]  # fmt: skip
    for body, header in received:
        assert verify_signature(secret, body, header), header
        assert not verify_signature(secret, body + b" ", header)
        assert not verify_signature("whsec_other", body, header)
    assert {e["conference"]["room"] for e in events} == {"team"}
    assert events[1]["call_id"] == events[2]["call_id"] == "CA1"
    assert len({e["id"] for e in events}) == 4  # one event id each
    assert queue.stats() == {"delivered": 4}
