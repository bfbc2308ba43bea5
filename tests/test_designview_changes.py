"""An edit's changes-only answer: the text as a patch of lines, the steps changed."""

from __future__ import annotations

import re

import pytest

from flexvoice.flows.designview import step_changes_only, text_patch

pytestmark = pytest.mark.unit


def patched(old: str, patch: dict[str, object]) -> str:
    """As the page applies it (web/src/canvasgraph.js mergeAnswer)."""
    lines = re.findall(r"[^\n]*\n|[^\n]+$", old)
    start, end, new = patch["from"], patch["to"], patch["lines"]
    assert isinstance(start, int) and isinstance(end, int) and isinstance(new, list)
    return "".join(lines[:start] + new + lines[end:])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("a\nb\nc\n", "a\nB\nc\n"),
        ("a\nb", "a\nb\nc"),  # no newline at the end, before or after
        ("", "flow: x\n"),
        ("flow: x\n", ""),
        ("a\na\na\n", "a\na\n"),  # repeated lines: prefix and suffix must not overlap
        ("same\n", "same\n"),
        ("a\r\nb\n", "a\r\nc\n"),  # only \n ends a line: \r stays in it
        ("x\u2028y\n", "x\u2028z\n"),  # nor does a Unicode line separator
    ],
)
def test_the_patch_makes_the_new_text_from_the_old(old: str, new: str) -> None:
    patch = text_patch(old, new)
    assert patched(old, patch) == new
    assert len(patch["lines"]) <= max(1, new.count("\n"))


def test_only_changed_steps_and_names_only_when_they_change() -> None:
    a, b = {"name": "a", "verb": "hangup", "body": {}}, {"name": "b", "verb": "hangup", "body": {}}
    b2 = {**b, "verb": "play", "body": {"say": "hi"}}
    assert step_changes_only([a, b], [a, b2]) == {"steps_changed": [b2]}
    assert step_changes_only([a, b], [b, a]) == {"steps_changed": [], "step_names": ["b", "a"]}
    c = {"name": "c", "verb": "hangup", "body": {}}
    assert step_changes_only([a, b], [a, c]) == {"steps_changed": [c], "step_names": ["a", "c"]}
