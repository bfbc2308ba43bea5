"""The conference room's rules without SIP (flexvoice.conference.room), and the REST API's
conference resources on a node without a pool (dial-in placed through the stand-in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flexvoice.conference.room import Action, Member, Room, RoomFull
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
