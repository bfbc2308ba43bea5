"""An edited flow checked again only where the edit can change the verdict.

The designer checks every edit (badges as you type). Checking a 200-step flow whole costs
~20 ms of CPU (reading the YAML, every step's model, every link, the graph), though an edit
changes one or two steps. Here the new text is cut into the steps as written (a block of
lines each): a step whose lines did not change keeps its share of the last check (moved by
the lines inserted above it); a changed one is read and checked alone (its lines, placed at
their line numbers); then what depends on more than one step: outcomes to steps that were
added or removed, the start step, the languages (texts and prompts missing for one), and
reachability and loops when the changed steps' outcomes (the flow's shape) changed.

Whenever the cut is not safe (the flow's own fields changed, anchors and aliases that tie
steps together, unusual line breaks, steps not written one per block), `recheck` answers
None and the caller checks the whole text: tests/test_flows_recheck.py holds the two to the
same problems over many generated edits.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from flexvoice.errors import Problem, ProblemList
from flexvoice.flows.base import Verb
from flexvoice.flows.validate import (
    MAX_FLOW_VALUES,
    Parts,
    StepPart,
    Validation,
    assemble,
    can_end,
    finish,
    graph_open,
    graph_warnings,
    languages,
    step_links,
    step_part,
)
from flexvoice.flows.yamllines import step_blocks
from flexvoice.yamlsrc import MAX_YAML_DEPTH, YamlDoc, parse_yaml

# Anchors, aliases and merge keys let one step's lines change another's value; line breaks
# other than \n would number lines differently from the cut. Either: the whole check.
_TIED = re.compile(r"[&*][^\s,\]}]|<<|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029\0]")


def recheck(
    old: Validation, old_text: str, new_text: str, prompts_dir: Path | None
) -> Validation | None:
    """`new_text`'s check, from `old` (the check of `old_text`), or None: check it whole."""
    parts = old.parts
    # Without aliases every value takes at least one character: a text this short is under
    # the bound on values that the whole check counts.
    if parts is None or not isinstance(old.data, dict) or len(new_text) > MAX_FLOW_VALUES:
        return None
    if len(new_text.encode("utf-8", "surrogatepass")) > MAX_FLOW_VALUES:
        return None
    if _TIED.search(new_text) or _TIED.search(old_text):
        return None
    cut_old, cut_new = step_blocks(old_text), step_blocks(new_text)
    if cut_old is None or cut_new is None:
        return None
    (old_blocks, old_after), (new_blocks, new_after) = cut_old, cut_new
    if [name for _, _, name in old_blocks] != [p.name for p in parts.steps]:
        return None
    old_lines, new_lines = old_text.splitlines(True), new_text.splitlines(True)
    head_end = old_blocks[0][0] - 1
    if new_blocks[0][0] - 1 != head_end or old_lines[:head_end] != new_lines[:head_end]:
        return None  # the flow's own fields changed: check it whole
    if old_lines[old_after - 1 :] != new_lines[new_after - 1 :]:
        return None
    names = [name for _, _, name in new_blocks]
    if len(set(names)) != len(names):
        return None
    before = {p.name: (p, first, "".join(old_lines[first - 1 : end - 1]))
              for p, (first, end, _) in zip(parts.steps, old_blocks, strict=True)}  # fmt: skip
    source = old.source
    steps: list[StepPart] = []
    docs: dict[str, YamlDoc] = {}
    for first, end, name in new_blocks:
        lines = "".join(new_lines[first - 1 : end - 1])
        was = before.get(name)
        if was is not None and was[2] == lines:
            steps.append(_moved(was[0], first - was[1]))
            continue
        doc = _block_doc(lines, first, source)
        if doc is None or list(doc.data) != [name]:
            return None
        docs[name] = doc
        steps.append(step_part(doc, name, doc.data[name]))
    shift = _after(old_after, new_after - old_after)
    return _links(old, parts, steps, docs, names, prompts_dir, new_text, shift)


def _links(
    old: Validation,
    parts: Parts,
    steps: list[StepPart],
    docs: dict[str, YamlDoc],
    names: list[str],
    prompts_dir: Path | None,
    new_text: str,
    head_at: Any,
) -> Validation | None:
    """What depends on more than one step, for the new steps (None: check it whole)."""
    old_names = [p.name for p in parts.steps]
    header = parts.header
    valid = {p.name: p.verb for p in steps if p.verb is not None}
    langs = languages(header, valid)
    if langs != parts.langs:
        return None  # every step's texts and prompts are asked for in other languages
    if not steps:
        return None
    if set(names) != set(old_names):
        # A step came or went: an unchanged step's outcome may now find (or lose) its step,
        # and "did you mean" hints choose among the names.
        came_or_went = set(names) ^ set(old_names)
        if parts.start or any(p.links for p in steps if p.name not in docs):
            return None
        for p in steps:
            kept = p.name not in docs and p.verb is not None
            if kept and any(b.target in came_or_went for b in p.verb.branches()):  # type: ignore[union-attr]
                return None
        if header is not None and header.start not in names:
            return None
    new = Parts(
        header,
        [head_at(p) for p in parts.head],
        steps,
        langs,
        [head_at(p) for p in parts.start],
    )
    known = set(names)
    for p in steps:
        if p.name in docs:
            step_links(docs[p.name], p, known, prompts_dir, langs)
    base = parts.graph_from
    if not graph_open(new):
        new.graph, new.graph_from = parts.graph, base  # for when the other problems go
    elif base is not None and [p.name for p in base] == names and _same_shape(base, steps):
        moved = {p.name: p.key[0] - q.key[0] for p, q in zip(steps, base, strict=True)}
        new.graph = [(n, replace(w, line=w.line + moved[n])) for n, w in parts.graph]
        new.graph_from = steps
    else:
        new.graph, new.graph_from = graph_warnings(old.source, header, steps), steps
    data = {**old.data, "steps": {p.name: p.body for p in steps}}
    return finish(new_text, old.source, header, assemble(new), valid, data, new)


def _same_shape(base: list[StepPart], steps: list[StepPart]) -> bool:
    """Reachability and loops read of each step where its outcomes go, whether it can end
    the call, wait for the caller, or be sent anywhere by a webhook: the same as in the steps
    the warnings were found in (a step the edits left alone kept its verb), at the same
    columns."""
    return all(
        old.key[1] == new.key[1] and (old.verb is new.verb or _edges(old.verb) == _edges(new.verb))
        for old, new in zip(base, steps, strict=True)
    )


def _edges(verb: Verb | None) -> tuple[Any, ...]:
    if verb is None:
        return ()
    targets = tuple(b.target for b in verb.branches())
    return (targets, can_end(verb), verb.waits, verb.verb == "webhook")


def _after(after: int, shift: int) -> Any:
    """A problem of the flow's own fields, moved when it is written after the steps (from
    line `after` of the old text on)."""

    def moved(p: Problem) -> Problem:
        return replace(p, line=p.line + shift) if shift and p.line >= after else p

    return moved


def _moved(part: StepPart, shift: int) -> StepPart:
    if not shift:
        return part

    def at(found: list[Problem]) -> list[Problem]:
        return [replace(p, line=p.line + shift) for p in found]

    return StepPart(
        part.name,
        (part.key[0] + shift, part.key[1]),
        part.body,
        part.verb,
        at(part.own),
        at(part.links),
        at(part.prompts),
        at(part.says),
    )


def _block_doc(lines: str, first: int, source: str) -> YamlDoc | None:
    """One step's lines read alone, at their line numbers, as if under `steps:`."""
    try:
        doc = parse_yaml("\n" * (first - 1) + lines, source, max_values=MAX_FLOW_VALUES)
    except ProblemList:
        return None  # said at the place the whole check says it
    if not isinstance(doc.data, dict) or _depth(doc.data) >= MAX_YAML_DEPTH - 1:
        return None
    doc.value_marks = {("steps", *k): v for k, v in doc.value_marks.items()}
    doc.key_marks = {("steps", *k): v for k, v in doc.key_marks.items()}
    return doc


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0
