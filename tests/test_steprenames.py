"""Renames told from two versions of a flow's steps (the notes follow them)."""

from __future__ import annotations

from typing import Any

import pytest

from flexvoice.flows.steprenames import renamed

pytestmark = pytest.mark.unit


def step(name: str, verb: str, **body: Any) -> dict[str, Any]:
    return {"name": name, "verb": verb, "body": body}


BEFORE = [
    step("menu", "menu", prompt="welcome", options={"1": "orders"}, on_failure="menu"),
    step("orders", "dial", targets=["+3226009999"], on_busy="messages"),
    step("messages", "record", prompt="leave_message", then="bye"),
    step("bye", "play", prompt="thanks_bye"),
]


def test_a_rename_and_its_undo_are_told_from_the_steps() -> None:
    after = [
        BEFORE[0],
        step("orders", "dial", targets=["+3226009999"], on_busy="voicemail"),
        step("voicemail", "record", prompt="leave_message", then="bye"),
        BEFORE[3],
    ]
    assert renamed(BEFORE, after) == {"messages": "voicemail"}
    assert renamed(after, BEFORE) == {"voicemail": "messages"}


def test_a_step_that_loops_to_itself_is_still_the_same_step() -> None:
    after = [step("start_menu", "menu", prompt="welcome", options={"1": "orders"},
                  on_failure="start_menu"), *BEFORE[1:]]  # fmt: skip
    assert renamed(BEFORE, after) == {"menu": "start_menu"}


def test_changed_deleted_added_or_look_alike_steps_are_not_renames() -> None:
    changed = [*BEFORE[:2], step("voicemail", "record", prompt="other", then="bye"), BEFORE[3]]
    assert renamed(BEFORE, changed) == {}
    assert renamed(BEFORE, BEFORE[:3]) == {}
    assert renamed(BEFORE, [*BEFORE, step("extra", "hangup")]) == {}
    twins = [step("a", "hangup"), step("b", "hangup")]
    assert renamed(twins, [step("c", "hangup"), step("d", "hangup")]) == {}
