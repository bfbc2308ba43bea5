"""Flow validation: every problem with file:line:col, a fix, and warnings for steps that are
never reached and loops a call could never leave.

The same function serves `flexvoice flows validate`, the runtime's loader and reload, and
`flows simulate`, so what the CLI accepts is exactly what the runtime runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flexvoice.errors import Problem, ProblemList
from flexvoice.flows.base import BRANCH_NAMES, BRANCH_PREFIXES, STEP_NAME_RE, Verb
from flexvoice.flows.model import Flow, FlowHeader
from flexvoice.flows.verbs import VERBS
from flexvoice.yamlsrc import YamlDoc, parse_yaml
from flexvoice.yamlwords import did_you_mean, explain_validation_error

# A flow is what anyone with a developer key may upload (PUT /v1/flows, flow_inline,
# flow_url), so its bounds are tight: the demo flows are 1-4 KiB and under 300 values; a flow
# at these bounds (about 2,000 short steps) costs about 2 CPU-seconds to parse and check.
MAX_FLOW_BYTES = 256 * 1024
MAX_FLOW_VALUES = 50_000


@dataclass
class StepPart:
    """One step's share of a check, kept so that an edit checks again only the steps it
    changed (flows/recheck.py). Every problem here is written inside the step's lines."""

    name: str
    key: tuple[int, int]  # line and column of the step's name
    body: Any
    verb: Verb | None  # None when the step itself is wrong (see `own`)
    own: list[Problem] = field(default_factory=list)  # its name, verb and fields
    links: list[Problem] = field(default_factory=list)  # outcomes to steps that do not exist
    prompts: list[Problem] = field(default_factory=list)  # prompt files missing
    says: list[Problem] = field(default_factory=list)  # texts missing for a language


@dataclass
class Parts:
    """A checked flow in the pieces an edit can change one by one (flows/recheck.py)."""

    header: FlowHeader | None
    head: list[Problem]  # the flow's own fields (flow, start, language, ...)
    steps: list[StepPart]
    langs: list[str]
    start: list[Problem] = field(default_factory=list)  # start: names no step
    graph: list[tuple[str, Problem]] = field(default_factory=list)  # (step it is on, warning)
    # The steps `graph` was found in (kept while other problems hide it, for when they go).
    graph_from: list[StepPart] | None = None


@dataclass
class Validation:
    source: str
    flow: Flow | None
    problems: list[Problem] = field(default_factory=list)
    data: Any = None  # the document as plain values, when it is YAML (for the designer)
    parts: Parts | None = None  # when the document has a steps: mapping

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]


def validate_file(path: Path, prompts_dir: Path | None, source: str | None = None) -> Validation:
    label = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Validation(label, None, [Problem(label, 0, 0, "file not found")])
    except UnicodeDecodeError as exc:
        msg = f"not UTF-8 text (byte {exc.start}); save it as UTF-8"
        return Validation(label, None, [Problem(label, 0, 0, msg)])
    except OSError as exc:
        return Validation(label, None, [Problem(label, 0, 0, f"cannot read: {exc.strerror}")])
    return validate_text(text, label, prompts_dir)


def validate_text(text: str, source: str, prompts_dir: Path | None) -> Validation:
    try:
        doc = parse_yaml(text, source, max_bytes=MAX_FLOW_BYTES, max_values=MAX_FLOW_VALUES)
    except ProblemList as exc:
        return Validation(source, None, exc.problems)
    problems: list[Problem] = []
    if not isinstance(doc.data, dict) or not doc.data:
        msg = "a flow file is a mapping with flow:, start: and steps:"
        return Validation(source, None, [doc.problem((), msg)], doc.data)
    header: FlowHeader | None = None
    try:
        header = FlowHeader.model_validate(doc.data)
    except ValidationError as exc:
        problems += [_hint_missing(p) for p in explain_validation_error(exc, doc, FlowHeader)]
    raw_steps = doc.data.get("steps")
    if not isinstance(raw_steps, dict):
        return finish(text, source, header, problems, {}, doc.data, None)
    steps = [step_part(doc, str(name), body) for name, body in raw_steps.items()]
    valid = {p.name: p.verb for p in steps if p.verb is not None}
    parts = Parts(header, problems, steps, languages(header, valid))
    if valid:
        # Links are checked even when other steps are broken: one run shows every mistake.
        names = [p.name for p in steps]
        if header is not None and header.start not in names:
            hint = did_you_mean(header.start, names)
            msg = f"start: no step named '{header.start}'{hint}"
            parts.start = [doc.problem(("start",), msg)]
        known = set(names)
        for part in steps:
            step_links(doc, part, known, prompts_dir, parts.langs)
        if graph_open(parts):
            parts.graph, parts.graph_from = graph_warnings(source, header, steps), steps
    return finish(text, source, header, assemble(parts), valid, doc.data, parts)


def finish(
    text: str,
    source: str,
    header: FlowHeader | None,
    problems: list[Problem],
    steps: dict[str, Verb],
    data: Any,
    parts: Parts | None,
) -> Validation:
    flow = None
    if header is not None and not any(p.severity == "error" for p in problems):
        flow = Flow(
            name=header.flow,
            description=header.description,
            start=header.start,
            language=header.language,
            timezone=header.timezone,
            variables={k: _text(v) for k, v in header.variables.items()},
            steps=steps,
            source=source,
            digest=hashlib.sha256(text.encode()).hexdigest(),
            problems=problems,
        )
    problems.sort(key=lambda p: (p.line, p.column))
    return Validation(source, flow, problems, data, parts)


def _before_links(parts: Parts) -> list[Problem]:
    return parts.head + [p for s in parts.steps for p in s.own]


def _links_found(parts: Parts) -> list[Problem]:
    out = list(parts.start)
    for phase in ("links", "prompts", "says"):
        out += [p for s in parts.steps for p in getattr(s, phase)]
    return out


def graph_open(parts: Parts) -> bool:
    """Reachability and loops are looked at only in a flow with nothing else to say."""
    complete = all(s.verb is not None for s in parts.steps)
    if parts.header is None or not complete or _before_links(parts):
        return False
    return not _links_found(parts)


def assemble(parts: Parts) -> list[Problem]:
    """Every problem, in the order the checks find them (a stable sort by place follows)."""
    problems = _before_links(parts)
    if any(s.verb is not None for s in parts.steps):
        problems += _links_found(parts)
        if graph_open(parts):
            problems += [p for _, p in parts.graph]
    return problems


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _hint_missing(p: Problem) -> Problem:
    if p.message == "start: required key is missing":
        msg = "start: required key is missing; add 'start: <name of the first step>'"
        return Problem(p.source, p.line, p.column, msg, p.severity)
    return p


def step_part(doc: YamlDoc, name: str, body: Any) -> StepPart:
    """One step checked on its own: its name, its one verb, the verb's fields."""
    at = ("steps", name)
    mark = doc.mark(at, key=True)
    part = StepPart(name, (mark.line, mark.column), body, None)
    verbs = list(VERBS)
    if not STEP_NAME_RE.match(name):
        msg = f"'{name}' is not a step name; use letters, digits, _ - ."
        part.own.append(doc.problem(at, msg, key=True))
        return part
    if not isinstance(body, dict) or not body:
        msg = (
            f"step '{name}' needs one verb, e.g. '{name}: {{play: {{prompt: hello}}}}' "
            f"(verbs: {', '.join(verbs)})"
        )
        part.own.append(doc.problem(at, msg, key=body is None or body == {}))
        return part
    keys = list(body)
    bad = False
    for key in keys:
        if key in VERBS:
            continue
        bad = True
        if key in BRANCH_NAMES or key.startswith(BRANCH_PREFIXES):
            verb = next((k for k in keys if k in VERBS), "the verb")
            msg = f"'{key}' belongs inside {verb}: write it under '{verb}:', not beside it"
        else:
            msg = f"unknown verb '{key}'{did_you_mean(key, verbs)}"
            if not did_you_mean(key, verbs):
                msg += f" (verbs: {', '.join(verbs)})"
        part.own.append(doc.problem((*at, key), msg, key=True))
    found = [k for k in keys if k in VERBS]
    if len(found) > 1:
        msg = (
            f"step '{name}' has {len(found)} verbs ({', '.join(found)}); a step has "
            "exactly one: split it into steps linked with 'then'"
        )
        part.own.append(doc.problem((*at, found[1]), msg, key=True))
        return part
    if bad or not found:
        return part
    verb_name = found[0]
    cls = VERBS[verb_name]
    try:
        verb = cls.model_validate(cls.coerce(body[verb_name]))
    except ValidationError as exc:
        part.own += explain_validation_error(exc, doc, cls, prefix=(*at, verb_name))
        return part
    findings = verb.check()
    for f in findings:
        path = (*at, verb_name, *f.path)
        part.own.append(doc.problem(path, f.message, key=f.key, severity=f.severity))
    if not any(f.severity == "error" for f in findings):
        part.verb = verb
    return part


def step_links(
    doc: YamlDoc, part: StepPart, names: set[str], prompts_dir: Path | None, langs: list[str]
) -> None:
    """The step's outcomes to steps that do not exist, its missing prompt files and texts."""
    verb = part.verb
    if verb is None:
        return
    base = ("steps", part.name, verb.verb)
    part.links, part.prompts, part.says = [], [], []
    for br in verb.branches():
        if br.target not in names:
            hint = did_you_mean(br.target, sorted(names))
            msg = f"{'.'.join(map(str, br.path))}: no step named '{br.target}'{hint}"
            part.links.append(doc.problem((*base, *br.path), msg))
    if prompts_dir is not None:
        for path, prompt in verb.prompt_refs():
            missing = prompt_problem(prompts_dir, prompt, langs)
            if missing:
                part.prompts.append(doc.problem((*base, *path), missing))
    for path, message in _say_gaps(verb, langs):
        part.says.append(doc.problem((*base, *path), message, severity="warning"))


def languages(header: FlowHeader | None, steps: dict[str, Verb]) -> list[str]:
    langs = [header.language if header is not None else "en"]
    for verb in steps.values():
        langs += [lang for lang in verb.languages() if lang not in langs]
    return langs


def prompt_file(prompts_dir: Path, name: str, language: str) -> Path | None:
    """ivr_prompts/<language>/<name>.wav, else the language-neutral ivr_prompts/<name>.wav."""
    stem = name.removesuffix(".wav")
    for candidate in (prompts_dir / language / f"{stem}.wav", prompts_dir / f"{stem}.wav"):
        if candidate.is_file():
            return candidate
    return None


def prompt_problem(prompts_dir: Path, name: str, languages: Iterable[str]) -> str | None:
    if "/" in name or "\\" in name or name.startswith("."):
        return f"prompt '{name}': give a file name from {prompts_dir}/<language>/, no folders"
    missing = [lang for lang in languages if prompt_file(prompts_dir, name, lang) is None]
    if not missing:
        return None
    stem = name.removesuffix(".wav")
    where = ", ".join(f"{prompts_dir}/{lang}/{stem}.wav" for lang in missing)
    return (
        f"prompt '{name}' not found: no {where} (nor {prompts_dir}/{stem}.wav); "
        "add it to ivr_prompts/prompts.yaml and run 'flexvoice prompts build'"
    )


def _say_gaps(verb: Verb, langs: list[str]) -> list[tuple[tuple[str, ...], str]]:
    out: list[tuple[tuple[str, ...], str]] = []
    for fname in type(verb).model_fields:
        if fname == "say" or fname.endswith("_say"):
            value = getattr(verb, fname)
            if isinstance(value, dict):
                missing = [lang for lang in langs if lang not in value]
                if missing:
                    out.append(
                        (
                            (fname,),
                            f"{fname} has no text for {', '.join(missing)}; "
                            "the first text given is spoken instead",
                        )
                    )
    return out


def graph_warnings(
    source: str, header: FlowHeader | None, parts: list[StepPart]
) -> list[tuple[str, Problem]]:
    """Steps never reached and loops a call cannot leave, each on the step it names first
    (all steps valid)."""
    problems: list[tuple[str, Problem]] = []
    if header is None:
        return problems
    start = header.start
    steps = {p.name: p.verb for p in parts if p.verb is not None}
    keys = {p.name: p.key for p in parts}

    def warn(name: str, message: str) -> None:
        line, column = keys[name]
        problems.append((name, Problem(source, line, column, message, severity="warning")))

    edges = {name: [b.target for b in verb.branches()] for name, verb in steps.items()}
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    dynamic = any(steps[s].verb == "webhook" for s in seen)
    for name in steps:
        if name not in seen:
            extra = " (unless a webhook answers next: " + name + ")" if dynamic else ""
            warn(
                name,
                f"step '{name}' is never reached from start '{start}'{extra}; "
                "link it from another step or remove it",
            )
    for comp in strongly_connected(edges):
        first = comp[0]
        if len(comp) == 1 and first not in edges[first]:
            continue
        ring = " -> ".join([*comp, comp[0]])
        leaves = any(t not in comp for s in comp for t in edges[s])
        ends = any(can_end(steps[s]) for s in comp)
        if not leaves and not ends:
            warn(
                first,
                f"loop with no way out: {ring}; no branch leaves it and no step in it "
                "ends the call",
            )
        elif not any(steps[s].waits for s in comp):
            warn(
                first,
                f"loop with no input: {ring} never waits for the caller, so it repeats "
                "at once; put a menu or gather in it",
            )
    return problems


def can_end(verb: Verb) -> bool:
    """The step ends the call by itself or by an outcome that has no branch."""
    if verb.ends_call or verb.verb == "webhook":
        return True
    for fname in type(verb).model_fields:
        if fname == "on_error":
            continue
        is_branch = fname in BRANCH_NAMES or fname.startswith(BRANCH_PREFIXES)
        if is_branch and getattr(verb, fname) is None:
            return True
    return False


def strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (flows can be long); components in file order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = [t for t in edges[node] if t in edges]
            if i < len(targets):
                work.append((node, i + 1))
                t = targets[i]
                if t not in index:
                    work.append((t, 0))
                elif t in on_stack:
                    low[node] = min(low[node], index[t])
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                order = list(edges)
                out.append(sorted(comp, key=order.index))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out
