"""The designer's check of an edit (only the steps it changed, flows/recheck.py) finds exactly
what the whole check finds, over many generated edits of several flows."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest

from bench.designer_flow import generated_flow
from flexvoice.errors import UserError
from flexvoice.flows import designview, yamledit, yamlsplice
from flexvoice.flows.recheck import recheck
from flexvoice.flows.validate import Validation, validate_text
from flexvoice.flows.yamllines import step_lines_of
from tests.conftest import REPO

pytestmark = pytest.mark.unit

PROMPTS = REPO / "ivr_prompts"
VERBS_BODIES = [  # '@' is a step
    ("play", '{say: "Hello", then: @}'),
    ("hangup", "{}"),
    ("play", "{prompt: no-such-prompt, then: @}"),
    ("goto", "{}"),  # an error: goto needs its step
    ("menu", '{say: {en: "Press 1", fr: "Tapez 1"}, options: {"1": @}}'),
    ("goto", "@"),
    ("set", "{language: fr, then: @}"),  # a language: every text must say it now
]


def _names(text: str) -> list[str]:
    return [name for _, name in step_lines_of(text)]


def _an_edit(rnd: random.Random, text: str) -> str | None:
    """The text after an edit such as the page makes (a field set on the text itself,
    yamlsplice, or by ruamel now and then), or a person in the YAML tab (lines added,
    removed, renamed, broken); None when that edit does not apply here."""
    names = _names(text) or ["s0"]
    step = rnd.choice(names)
    other = rnd.choice([*names, "nowhere", step[:-1] + "x"])
    lines = text.splitlines(True)
    firsts = [first for first, _ in step_lines_of(text)] or [len(lines)]
    kind = rnd.randrange(11)
    ops: list[dict[str, Any]] = []
    if kind == 0:
        ops = [{"op": "set", "step": step, "path": [rnd.choice(FIELDS)], "value": other}]
    elif kind == 1:
        value = rnd.choice(["25s", "bogus", "3s", "1h"])
        ops = [{"op": "set", "step": step, "path": ["ring_timeout"], "value": value}]
    elif kind == 2:
        ops = [{"op": "set", "step": step, "path": ["say"], "value": f"Text {rnd.random()}"}]
    elif kind == 3:  # two fields of two steps in one edit
        ops = [
            {"op": "set", "step": step, "path": ["then"], "value": other},
            {"op": "set", "step": rnd.choice(names), "path": ["say"], "value": "Again"},
        ]
    elif kind == 4:  # a line of a step removed (a field, or a verb)
        at = rnd.randrange(firsts[0], len(lines))
        return "".join(lines[:at] + lines[at + 1 :])
    elif kind == 5:  # a step added between two others, going to one of them or nowhere
        verb, body = rnd.choice(VERBS_BODIES)
        at = rnd.choice(firsts) - 1
        block = f"  n{rnd.randrange(1000)}:\n    {verb}: {body.replace('@', other)}\n"
        return "".join([*lines[:at], block, *lines[at:]])
    elif kind == 6:  # a step renamed, and what goes to it (or not, sometimes)
        to = f"r{rnd.randrange(1000)}"
        if rnd.random() < 0.7:
            return re.sub(rf"\b{re.escape(step)}\b", to, text)
        return text.replace(f"  {step}:\n", f"  {to}:\n", 1)
    elif kind == 7:  # a comment or a blank line inside the steps (lines below move)
        at = rnd.randrange(firsts[0], len(lines) + 1)
        return "".join([*lines[:at], rnd.choice(["    # a note\n", "\n"]), *lines[at:]])
    elif kind == 8:  # the flow's own fields: checked whole
        return text.replace("start:", "description: changed\nstart:", 1)
    elif kind == 9:  # a line broken by hand: YAML that does not read
        at = rnd.randrange(firsts[0], len(lines))
        return "".join([*lines[:at], "  broken: [\n", *lines[at:]])
    else:  # an edit ruamel makes (a field that was not there)
        ops = [{"op": "set", "step": step, "path": ["on_error"], "value": other}]
        try:
            return yamledit.apply(text, ops) if rnd.random() < 0.3 else None
        except UserError:
            return None
    return yamlsplice.set_scalars(text, ops)


FIELDS = ["then", "on_busy", "on_failure", "on_no_answer"]


def _seen(res: Validation) -> list[tuple[int, int, str, str]]:
    return [(p.line, p.column, p.severity, p.message) for p in res.problems]


@pytest.mark.parametrize(
    "start",
    [
        generated_flow(30),
        (REPO / "flows" / "bakery.yaml").read_text(),
        (REPO / "flows" / "bilingual.yaml").read_text(),
        (REPO / "flows" / "support.yaml").read_text(),
    ],
    ids=["generated", "bakery", "bilingual", "support"],
)
def test_the_check_of_an_edit_is_the_whole_check(start: str) -> None:
    rnd = random.Random(start[:200])
    text, res = start, validate_text(start, "flows/f.yaml", PROMPTS)
    partial = 0
    for _ in range(120):
        new = _an_edit(rnd, text)
        if new is None:
            continue
        whole = validate_text(new, "flows/f.yaml", PROMPTS)
        quick = recheck(res, text, new, PROMPTS)
        if quick is not None:
            partial += 1
            assert _seen(quick) == _seen(whole), new
            assert (quick.flow is None) == (whole.flow is None)
            assert quick.data == whole.data
            if quick.flow is not None and whole.flow is not None:
                assert quick.flow.steps == whole.flow.steps
                assert quick.flow.digest == whole.flow.digest
        text, res = new, quick or whole
        if res.parts is None:  # back to a flow that reads
            text, res = start, validate_text(start, "flows/f.yaml", PROMPTS)
    assert partial >= 40  # most edits are checked in part: the comparison above means something


def test_an_edit_elsewhere_keeps_the_unreached_warning_in_its_new_place() -> None:
    text = generated_flow(12).replace("  s5:\n", "  lonely:\n    hangup: {}\n  s5:\n")
    res = validate_text(text, "f", PROMPTS)
    assert any("'lonely' is never reached" in p.message for p in res.problems)
    new = text.replace("  s1:\n", "  # first\n  s1:\n")
    quick = recheck(res, text, new, PROMPTS)
    assert quick is not None
    assert _seen(quick) == _seen(validate_text(new, "f", PROMPTS))
    assert [p.line for p in quick.problems] == [p.line + 1 for p in res.problems]


def test_a_flow_tied_by_aliases_is_checked_whole() -> None:
    text = "flow: a\nstart: s0\nsteps:\n  s0: &x {hangup: {}}\n  s1: *x\n"
    res = validate_text(text, "f", Path("."))
    assert recheck(res, text, text.replace("s1: *x", "s1: {hangup: {}}"), None) is None


BASE = generated_flow(12).replace('say: "Step 0"', "say: {en: Step 0}")


@pytest.mark.parametrize(
    ("text", "new"),
    [
        # a step that comes changes the hint on an outcome that goes nowhere
        (
            BASE.replace("then: s5}", "then: nowher}"),
            BASE.replace("then: s5}", "then: nowher}").replace(
                "  s3:\n", "  nowhere:\n    hangup: {}\n  s3:\n"
            ),
        ),
        # a new language: every text must say it now
        (BASE, BASE.replace('play: {say: "Step 8",', "set: {language: fr,")),
    ],
    ids=["hint", "language"],
)
def test_what_one_step_changes_in_others_is_found(text: str, new: str) -> None:
    res = validate_text(text, "f", PROMPTS)
    assert new != text
    whole = validate_text(new, "f", PROMPTS)
    assert _seen(whole) != _seen(res)
    quick = recheck(res, text, new, PROMPTS)
    assert quick is None or _seen(quick) == _seen(whole)


def test_the_pages_view_of_an_edit_is_the_view_of_the_whole_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """designview.checked from the last text: plain values, step views and problems put on
    their steps and fields as a fresh check gives them."""
    rnd = random.Random(7)
    start = generated_flow(20)
    text, stamp = start, (0,)
    designview.checked(text, "flows/f.yaml", PROMPTS, stamp)
    rechecked: list[Validation] = []

    def counted(*args: Any) -> Validation | None:
        res = recheck(*args)
        rechecked.extend([res] if res is not None else [])
        return res

    monkeypatch.setattr(designview, "recheck", counted)
    for _ in range(60):
        new = _an_edit(rnd, text)
        if new is None:
            continue
        quick = designview.checked(new, "flows/f.yaml", PROMPTS, stamp, before=text)
        designview._CHECKS.clear()
        whole = designview.checked(new, "flows/f.yaml", PROMPTS, stamp)
        assert quick == whole, new
        text = new if whole[0] is not None else start
        designview.checked(text, "flows/f.yaml", PROMPTS, stamp)
    assert len(rechecked) >= 20


def test_an_outcome_moved_finds_the_step_no_longer_reached() -> None:
    text = generated_flow(12)
    res = validate_text(text, "f", PROMPTS)
    assert res.problems == []
    new = text.replace("then: s1}", "then: s2}", 1)
    quick = recheck(res, text, new, PROMPTS)
    assert quick is not None
    assert [p.message for p in quick.problems] == [
        "step 's1' is never reached from start 's0'; link it from another step or remove it"
    ]
    assert _seen(quick) == _seen(validate_text(new, "f", PROMPTS))


def test_warnings_hidden_by_an_error_come_back_for_the_shape_of_the_flow_then() -> None:
    """While an error hides reachability, an outcome moves; when the error goes the warnings
    are those of the new shape, not the ones kept from before the error."""
    text = generated_flow(12)
    res = validate_text(text, "f", PROMPTS)
    steps = [
        text.replace("ring_timeout: 20s", "ring_timeout: soon", 1),  # an error: no graph
        text.replace("ring_timeout: 20s", "ring_timeout: soon", 1).replace(
            "then: s1}", "then: s2}", 1
        ),
        text.replace("then: s1}", "then: s2}", 1),  # mended: s1 is no longer reached
        text,  # and back: reached again
    ]
    for new in steps:
        quick = recheck(res, text, new, PROMPTS)
        assert quick is not None
        assert _seen(quick) == _seen(validate_text(new, "f", PROMPTS))
        text, res = new, quick
    assert res.problems == []
