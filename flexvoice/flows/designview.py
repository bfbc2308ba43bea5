"""What the designer's page shows for a flow, computed in one go off the event loop: the
document as plain values, each step with its verb, the validator's problems put on their step
and field, and what publishing would change (a text diff and the steps added, removed and
changed). No I/O; cached by text, so an edit's "before" is the last answer's "after"."""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexvoice.errors import ProblemList
from flexvoice.flows import revisions, yamledit
from flexvoice.flows.recheck import recheck
from flexvoice.flows.steprefs import plain, steps_view
from flexvoice.flows.validate import MAX_FLOW_BYTES, Validation, validate_text
from flexvoice.flows.yamllines import field_on, step_lines_of
from flexvoice.yamlsrc import parse_yaml


def plain_load(text: str) -> dict[str, Any]:
    """A published or old text as plain values, read as the validator reads a draft (so that
    the two compare), for diffs ({} when it is not a YAML mapping)."""
    try:
        doc = plain(parse_yaml(text, "flow", max_bytes=MAX_FLOW_BYTES).data)
    except ProblemList:
        return {}
    return doc if isinstance(doc, dict) else {}


def _steps_of(doc: Any) -> dict[str, Any]:
    steps = doc.get("steps") if isinstance(doc, dict) else None
    return steps if isinstance(steps, dict) else {}


Checked = tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]

# The last checks, by (text, source, prompts folder, stamp): an edit's "before" is the last
# answer's "after", and the check of its result starts from it (flows/recheck.py).
_CHECKS: OrderedDict[tuple[str, str, Path, tuple[int, ...]], tuple[Validation, Checked]] = (
    OrderedDict()
)
_CHECKS_KEPT = 32
_CHECKS_LOCK = threading.Lock()  # two checking threads: an edit and a flow being opened


def checked(
    text: str, source: str, prompts_dir: Path, stamp: tuple[int, ...], before: str | None = None
) -> Checked:
    """(document or None, steps, problems); `stamp` tells when prompt files changed. With
    `before` (a text checked here lately) only what the change from it can affect is checked
    again, and the steps it did not change keep their views."""
    key = (text, source, prompts_dir, stamp)
    with _CHECKS_LOCK:
        hit = _CHECKS.get(key)
        last = None if before is None else _CHECKS.get((before, source, prompts_dir, stamp))
    if hit is not None:
        return hit[1]
    res = None if last is None else recheck(last[0], str(before), text, prompts_dir)
    out = _view(text, res, last) if res is not None and last is not None else None
    if res is None or out is None:
        res = validate_text(text, source, prompts_dir)
        doc = plain(res.data) if isinstance(res.data, dict) else None  # dates as text
        lines = step_lines_of(text) if doc is not None else []
        out = (doc, steps_view(doc), _placed(text, res, lines))
    with _CHECKS_LOCK:
        _CHECKS[key] = (res, out)
        while len(_CHECKS) > _CHECKS_KEPT:
            _CHECKS.popitem(last=False)
    return out


def recalled(etag: str) -> str | None:
    """A text checked here lately, by its ETag (the text an edit that came too late was made
    on: the node can redo that edit on it without the page sending the whole text)."""
    with _CHECKS_LOCK:
        texts = {key[0] for key in _CHECKS}
    return next((t for t in texts if revisions.etag(t) == etag), None)


def _view(text: str, res: Validation, last: tuple[Validation, Checked]) -> Checked | None:
    """The page's view of a rechecked text: the steps whose values did not change keep
    their plain values and views from the last check."""
    old, (old_doc, old_steps, _) = last
    if res.parts is None or old.parts is None or not isinstance(old_doc, dict):
        return None
    same = {p.name for p in old.parts.steps}
    bodies = {p.name: p.body for p in old.parts.steps}
    plain_steps: dict[str, Any] = old_doc.get("steps") or {}
    views = {v["name"]: v for v in old_steps}
    steps: dict[str, Any] = {}
    for part in res.parts.steps:
        kept = part.name in same and bodies[part.name] is part.body
        steps[part.name] = plain_steps[part.name] if kept else plain(part.body)
        if not kept:
            views.pop(part.name, None)
    doc = {k: (steps if k == "steps" else v) for k, v in old_doc.items()}
    shown = [views.get(n) or steps_view({"steps": {n: steps[n]}})[0] for n in steps]
    lines = [(p.key[0], p.name) for p in res.parts.steps]  # each step's first line (recheck)
    return doc, shown, _placed(text, res, lines)


def _placed(text: str, res: Validation, lines: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """The problems, each put on its step and field."""
    first_line = {name: line for line, name in lines}
    problems = []
    for p in res.problems:
        step = None
        for first, name in lines:
            if first <= p.line:
                step = name
        field = field_on(text, first_line[step], p.line, p.column) if step else None
        problems.append(
            {
                "line": p.line,
                "column": p.column,
                "severity": p.severity,
                "message": p.message,
                "text": str(p),  # exactly what `flexvoice flows validate` prints
                "step": step,
                "field": field,
            }
        )
    return problems


@functools.lru_cache(maxsize=16)
def _published(text: str) -> dict[str, Any]:
    return plain_load(text)


def flow_view(
    text: str,
    published: str,
    file: str,
    prompts_dir: Path,
    stamp: tuple[int, ...],
    before: str | None = None,
) -> dict[str, Any]:
    doc, steps, problems = checked(text, f"flows/{file}", prompts_dir, stamp, before)
    return {
        # The flow's fields but its steps (flow, description, start, ...): the steps follow.
        "header": None if doc is None else {k: v for k, v in doc.items() if k != "steps"},
        "steps": steps,
        "problems": problems,
        "errors": sum(1 for p in problems if p["severity"] == "error"),
        "diff": revisions.text_diff(published, text, f"flows/{file} (published)", "draft"),
        "step_changes": revisions.step_diff(_steps_of(_published(published)), _steps_of(doc)),
    }


@dataclass
class Edited:
    text: str
    view: dict[str, Any]  # with only the changed steps when asked for changes
    steps: list[dict[str, Any]]  # every step after the edit
    before: list[dict[str, Any]] | None  # every step before it, when changes were asked


def edited(
    text: str,
    ops: list[dict[str, Any]],
    published: str,
    file: str,
    prompts_dir: Path,
    stamp: tuple[int, ...],
    changes: bool = False,
) -> Edited:
    """The page's edit applied to `text`, and the view of the result (a bad op: UserError).
    With `changes`, only what changed from `text`'s view: its steps come from the check of
    `text`, cached when the last answer was for it."""
    new = yamledit.apply(text, ops)
    view = flow_view(new, published, file, prompts_dir, stamp, before=text)
    steps, before = view["steps"], None
    if changes:
        before = checked(text, f"flows/{file}", prompts_dir, stamp)[1]
        view = {k: v for k, v in view.items() if k != "steps"}
        view.update(step_changes_only(before, steps))
        view["text_patch"] = text_patch(text, new)
    return Edited(new, view, steps, before)


_LINES = re.compile(r"[^\n]*\n|[^\n]+$")


def text_patch(old: str, new: str) -> dict[str, Any]:
    """`new` as the lines of `old` it replaces: {from, to, lines}, old lines [from, to) (each
    with its newline) giving way to `lines`. Only \\n ends a line, as in the page's split."""
    a, b = _LINES.findall(old), _LINES.findall(new)
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    return {"from": start, "to": len(a) - end, "lines": b[start : len(b) - end]}


def step_changes_only(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """An edit's answer for a page that holds `before`: the steps new or changed
    (`steps_changed`), and the names in order (`step_names`) only when they changed."""
    old = {s["name"]: s for s in before}
    out: dict[str, Any] = {"steps_changed": [s for s in after if old.get(s["name"]) != s]}
    names = [s["name"] for s in after]
    if names != [s["name"] for s in before]:
        out["step_names"] = names
    return out


def revision_view(old: str, published: str, rev_id: int) -> dict[str, Any]:
    return {
        "diff": revisions.text_diff(old, published, f"revision {rev_id}", "published now"),
        "step_changes": revisions.step_diff(
            _steps_of(plain_load(old)), _steps_of(_published(published))
        ),
    }
