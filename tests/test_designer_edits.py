"""The designer's edits on the text: a one-value change is spliced where libyaml says the value
is (nothing else in the file moves), and anything else goes through ruamel's round trip."""

from __future__ import annotations

import difflib

import pytest
import yaml

from flexvoice.flows import yamledit, yamlsplice
from flexvoice.flows.validate import validate_text
from flexvoice.yamlsrc import parse_yaml
from tests.conftest import REPO

BAKERY = (REPO / "flows" / "bakery.yaml").read_text()


def _changed_lines(old: str, new: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def _step_with(verb: str, field: str) -> str:
    doc = yaml.safe_load(BAKERY)
    return next(
        name
        for name, step in doc["steps"].items()
        if isinstance(step.get(verb), dict) and field in step[verb]
    )


def test_a_value_is_spliced_and_nothing_else_moves() -> None:
    step = _step_with("dial", "ring_timeout")
    op = {"op": "set", "step": step, "path": ["ring_timeout"], "value": "33s"}
    out = yamlsplice.set_scalars(BAKERY, [op])
    assert out is not None
    changed = _changed_lines(BAKERY, out)
    assert len(changed) == 2 and "ring_timeout: 33s" in changed[1], changed
    # Comments anywhere survive; the result is what ruamel's round trip would mean.
    assert out.count("#") == BAKERY.count("#")
    assert yaml.safe_load(out) == yaml.safe_load(yamledit.dump(yamledit.load(out)))
    assert yamledit.apply(BAKERY, [op]) == out


@pytest.mark.parametrize(
    ("old", "value", "expected"),
    [
        ('say: "Hello there"', "Bye, now", 'say: "Bye, now"'),
        ("say: 'Hello'", "It's", "say: 'It''s'"),
        ("say: Hello", "yes", "say: 'yes'"),  # YAML would read a bare yes as a boolean
        ("say: Hello", "a: b", "say: 'a: b'"),
        ("say: Hello", 12, "say: 12"),
    ],
)
def test_the_new_value_keeps_the_quoting_and_reads_back(
    old: str, value: object, expected: str
) -> None:
    text = (
        f"flow: x\nstart: a\nsteps:\n  a:\n    play: {{{old}, then: b}}\n  b:\n    hangup: {{}}\n"
    )
    op = {"op": "set", "step": "a", "path": ["say"], "value": value}
    out = yamlsplice.set_scalars(text, [op])
    assert out is not None and f"{{{expected}, then: b}}" in out, out
    assert yaml.safe_load(out)["steps"]["a"]["play"]["say"] == value


@pytest.mark.parametrize(
    "op",
    [
        {"op": "set", "step": "a", "path": ["on_error"], "value": "b"},  # a new key
        {"op": "set", "step": "a", "path": ["say"], "value": None},  # a removal
        {"op": "set", "step": "a", "path": ["say"], "value": ["x", "y"]},  # a list
        {"op": "set", "step": "c", "path": ["step"], "value": "a"},  # goto shorthand
        {"op": "rename_step", "step": "a", "to": "z"},
    ],
)
def test_other_edits_are_left_to_ruamel(op: dict[str, object]) -> None:
    text = "flow: x\nstart: a\nsteps:\n  a:\n    play: {say: Hi, then: c}\n  c:\n    goto: a\n"
    assert yamlsplice.set_scalars(text, [op]) is None
    yamledit.apply(text, [op])  # and ruamel does them


def test_libyaml_reads_what_pyyaml_read_and_refusals_keep_their_words() -> None:
    for path in sorted((REPO / "flows").glob("*.yaml")):
        text = path.read_text()
        assert parse_yaml(text, path.name).data == yaml.load(text, Loader=yaml.SafeLoader)
    tab = validate_text("flow: x\nsteps:\n\ta: 1\n", "flows/x.yaml", None)
    assert "tab character" in tab.problems[0].message and tab.problems[0].line == 3
    deep = "a: " + "[" * 70 + "]" * 70 + "\n"
    bad = validate_text(deep, "flows/x.yaml", None)
    assert "nested more than 64 levels" in bad.problems[0].message
    twice = validate_text("flow: x\nflow: y\n", "flows/x.yaml", None)
    assert "appears twice" in twice.problems[0].message and twice.problems[0].line == 2
