"""YAML documents that remember where each value came from.

Everything people edit (config, flows, trunks, numbers, tariffs) is YAML, and every error
about it must name the file, line and column. `load_yaml` returns plain Python data plus a
map from each value's path (a tuple of keys and list indexes) to its position, so models can
be validated with ordinary tools and errors mapped back to the text afterwards.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from flexvoice.errors import Problem, ProblemList

PathKey = tuple[str | int, ...]

# Bounds on every YAML document the node reads (files and uploads alike). A YAML alias bomb
# (anchors that each repeat the previous one nine times) is a few hundred bytes of text that
# expands to millions of values: the size of the text alone bounds nothing, so the expanded
# document is counted before anything walks it, and nesting is capped while scanning, before
# PyYAML's quadratic bracket handling or its composer's recursion can be reached. The defaults
# suit the operator's files (a numbers.yaml with thousands of numbers); flows, which anyone
# with a developer key can upload, have tighter ones (flows/validate.py). PyYAML parses about
# 50-100 KB/s of YAML per core here, so the byte bound is also a bound on time.
MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_VALUES = 200_000
MAX_YAML_DEPTH = 64


class YamlTooLarge(Exception):
    """A document over one of the bounds above; `what` names the limit in plain words."""

    def __init__(self, what: str, line: int = 1, column: int = 1) -> None:
        super().__init__(what)
        self.what = what
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class YamlDoc:
    source: str  # a file name as the user wrote it, or a label such as "<request body>"
    data: Any
    value_marks: dict[PathKey, Mark] = field(default_factory=dict)
    key_marks: dict[PathKey, Mark] = field(default_factory=dict)

    def mark(self, path: Sequence[str | int], *, key: bool = False) -> Mark:
        """Position of `path`, or of the nearest enclosing value that has one."""
        p = tuple(path)
        while True:
            marks = self.key_marks if key else self.value_marks
            if p in marks:
                return marks[p]
            if key and p in self.value_marks:
                return self.value_marks[p]
            if not p:
                return Mark(1, 1)
            p = p[:-1]

    def problem(
        self, path: Sequence[str | int], message: str, *, key: bool = False, severity: str = "error"
    ) -> Problem:
        m = self.mark(path, key=key)
        return Problem(self.source, m.line, m.column, message, severity=severity)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent last-one-wins hides mistakes) and
    documents nested deeper than MAX_YAML_DEPTH (checked while composing, before the
    composer's own recursion could overflow)."""

    _depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # PyYAML's scanner keeps a possible key per open bracket and rescans them all at
        # each token: 100 KB of '[' cost it 3 s (quadratic). Refused before that.
        if self.flow_level >= MAX_YAML_DEPTH:
            mark = self.get_mark()  # type: ignore[no-untyped-call]
            raise YamlTooLarge(
                f"the document is nested more than {MAX_YAML_DEPTH} levels deep; flatten it",
                mark.line + 1,
                mark.column + 1,
            )
        super().fetch_flow_collection_start(TokenClass)  # type: ignore[no-untyped-call]

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlTooLarge(
                    f"the document is nested more than {MAX_YAML_DEPTH} levels deep; flatten it",
                    mark.line + 1,
                    mark.column + 1,
                )
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """How many values the document has once every alias is expanded, computed on the node
    graph with each shared node counted once per use (memoised, so a bomb costs what its text
    costs); stops counting past the limit. Iterative: depth is bounded, but cheaply."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                children += [k, v]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done or not children:
            total = 1 + sum(sizes[id(c)] for c in children)
            sizes[id(node)] = min(total, limit + 1)
            continue
        stack.append((node, True))
        stack += [(c, False) for c in children if id(c) not in sizes]
    return sizes[id(root)]


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(loader: _Loader, node: yaml.Node, path: PathKey, doc: YamlDoc) -> Any:
    doc.value_marks[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.MarkedYAMLError(
                    "while reading a mapping",
                    node.start_mark,
                    "a key must be a plain word or text, not a list or mapping",
                    key_node.start_mark,
                )
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | bool) or isinstance(key, bool):
                key = str(key)
            key_text = str(key)
            if key_text in out:
                raise yaml.MarkedYAMLError(
                    "while reading a mapping",
                    node.start_mark,
                    f"the key '{key_text}' appears twice; keep one",
                    key_node.start_mark,
                )
            sub = (*path, key_text)
            doc.key_marks[sub] = _mark(key_node)
            out[key_text] = _walk(loader, value_node, sub, doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*path, i), doc) for i, item in enumerate(node.value)]
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as exc:
        # PyYAML reads 2024-13-45 as a date and fails building it (a ValueError, not a
        # YAML error): said at its position, with the fix.
        raise yaml.MarkedYAMLError(
            None,
            None,
            f"'{node.value}' is not a real date or time ({exc}); write a date as YYYY-MM-DD, "
            "or put the text in quotes",
            node.start_mark,
        ) from None


def parse_yaml(
    text: str,
    source: str,
    *,
    max_bytes: int = MAX_YAML_BYTES,
    max_values: int = MAX_YAML_VALUES,
) -> YamlDoc:
    """Parse one YAML document; raise ProblemList with the position of a syntax error or of
    the first bound it goes over (size, expanded values, depth)."""
    doc = YamlDoc(source=source, data=None)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ProblemList(
            [
                Problem(
                    source,
                    1,
                    1,
                    f"the document is {size} bytes, over the limit of {max_bytes} bytes; "
                    "split it into smaller files",
                )
            ]
        )
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        column = nul - (text.rfind("\n", 0, nul) + 1) + 1
        msg = "a NUL character (byte 0) is in the text; save the file as plain UTF-8 text"
        raise ProblemList([Problem(source, line, column, msg)])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, max_values) > max_values:
            raise YamlTooLarge(
                f"the document expands to more than {max_values} values (anchors and "
                "aliases (&name, *name) count once per use); write it out without aliases "
                "or split it"
            )
        doc.data = {} if node is None else _walk(loader, node, (), doc)
    except YamlTooLarge as exc:
        raise ProblemList([Problem(source, exc.line, exc.column, exc.what)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = _plain_syntax(exc.problem or "not valid YAML")
        raise ProblemList([Problem(source, line, col, f"YAML syntax: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ProblemList([Problem(source, 1, 1, f"YAML syntax: {exc}")]) from None
    finally:
        loader.dispose()
    return doc


def _plain_syntax(problem: str) -> str:
    """PyYAML's wording for the syntax mistakes people make most, said with the fix."""
    if "'\\t'" in problem:
        return "a tab character is used for indenting; indent with spaces, not tabs"
    if "mapping values are not allowed here" in problem:
        return (
            "a ':' where a value was expected; put text that contains ': ' in quotes, "
            "or start a new line for a nested key"
        )
    return problem


def load_yaml(path: Path, source: str | None = None) -> YamlDoc:
    label = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProblemList([Problem(label, 0, 0, "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ProblemList(
            [Problem(label, 0, 0, f"not UTF-8 text (byte {exc.start}); save it as UTF-8")]
        ) from None
    except OSError as exc:
        raise ProblemList([Problem(label, 0, 0, f"cannot read: {exc.strerror}")]) from None
    return parse_yaml(text, label)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _field_names(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model class that owns the mapping at `loc` (for listing allowed keys)."""
    model: Any = root
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        if isinstance(part, int):
            return None
        fld = model.model_fields.get(str(part))
        if fld is None:
            return None
        model = fld.annotation
        # Optional[Model] / Model | None
        args = getattr(model, "__args__", ())
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            model = models[0]
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


_MEMBER_WORDS = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "list[str]": "a list of texts",
    "dict[str,str]": "a mapping (key: value lines)",
    "dict[str,any]": "a mapping (key: value lines)",
}


def _is_member_tag(part: object) -> bool:
    """A union member or validator wrapper pydantic puts in an error's location ('str',
    'list[str]', 'function-after[...]'): its own vocabulary, never a key of the document."""
    if not isinstance(part, str):
        return False
    return (
        part in _MEMBER_WORDS
        or "[" in part
        or part.startswith(("function-", "tagged-union", "union", "literal", "model-"))
        or part in ("none", "dict", "list", "any", "date", "datetime", "decimal")
    )


def _member_word(tag: str) -> str:
    return _MEMBER_WORDS.get(tag.replace(" ", "").lower(), "")


def _looks_like_lost_plus(value: object) -> bool:
    # An unquoted +3216001122 is read by YAML as the number 3216001122.
    return isinstance(value, int) and not isinstance(value, bool) and 10**6 <= value < 10**15


def explain_validation_error(
    exc: ValidationError, doc: YamlDoc, root: type[BaseModel], prefix: PathKey = ()
) -> list[Problem]:
    """Turn pydantic's errors into positioned, human messages (no pydantic type names)."""
    problems: list[Problem] = []
    # A value that fits none of a union's forms gets one error per form from pydantic;
    # they are said once, listing the forms in words.
    unions: dict[PathKey, list[str]] = {}
    union_input: dict[PathKey, Any] = {}
    order: list[tuple[str, PathKey, Any]] = []
    for err in exc.errors(include_url=False):
        raw_loc = tuple(err["loc"])
        tags = [p for p in raw_loc if _is_member_tag(p)]
        loc = tuple(p for p in raw_loc if not _is_member_tag(p))
        full = (*prefix, *loc)
        kind = err["type"]
        if tags and kind.endswith(("_type", "_parsing")) and raw_loc[-1] in tags:
            # "must be X" for one member of a union: gather the members.
            words = [w for w in (_member_word(str(t)) for t in tags[-1:]) if w]
            if full not in unions:
                order.append(("union", full, None))
                unions[full] = []
                union_input[full] = err.get("input")
            unions[full] += [w for w in words if w not in unions[full]]
            continue
        order.append(("error", full, (err, loc)))
    for what, full, payload in order:
        dotted = ".".join(str(p) for p in full) or "(top level)"
        if what == "union":
            problems.append(
                doc.problem(full, _union_message(dotted, full, unions[full], union_input[full]))
            )
            continue
        err, loc = payload
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _field_names(_model_at(root, loc[:-1]))
            hint = did_you_mean(str(loc[-1]), allowed)
            listing = f" (allowed here: {', '.join(allowed)})" if allowed and not hint else ""
            problems.append(doc.problem(full, f"{dotted}: unknown key{hint}{listing}", key=True))
            continue
        if kind == "missing":
            problems.append(doc.problem(full[:-1], f"{dotted}: required key is missing"))
            continue
        value = err.get("input")
        msg = _plain_message(kind, err.get("ctx") or {}, str(err["msg"]))
        scalar = value is not None and not isinstance(value, dict | list)
        shown = f" (got {value!r})" if scalar and "(got " not in msg else ""
        if kind == "string_type" and _looks_like_lost_plus(value):
            shown = (
                f" (got {value}: YAML read it as a number and the + was lost; put the number "
                f"in quotes, e.g. '+{value}')"
            )
        problems.append(doc.problem(full, f"{dotted}: {msg}{shown}"))
    return problems


def _union_message(dotted: str, path: PathKey, forms: list[str], value: Any) -> str:
    key = str(path[-1]) if path else ""
    is_prompt = key in ("prompt", "music") or key.endswith("_prompt")
    if is_prompt and isinstance(value, dict) and "say" in value:
        return (
            f"{dotted}: give prompt file names here (a name or a list of names); spoken "
            f"text goes in 'say:' beside '{key}:', e.g. say: \"{_short(value['say'])}\""
        )
    if is_prompt:
        return (
            f"{dotted}: must be a prompt name or a list of prompt names (for spoken text, "
            f"write say: beside {key}:)"
        )
    if _looks_like_lost_plus(value) and "text" in forms:
        return (
            f"{dotted}: YAML read {value} as a number and the + was lost; put the number in "
            f"quotes, e.g. '+{value}'"
        )
    words = " or ".join(forms) if forms else "another kind of value"
    scalar = value is not None and not isinstance(value, dict | list)
    shown = f" (got {value!r})" if scalar else ""
    return f"{dotted}: must be {words}{shown}"


def _short(value: Any) -> str:
    text = (
        value
        if isinstance(value, str)
        else next(iter(value.values()), "")
        if isinstance(value, dict)
        else str(value)
    )
    text = str(text)
    return text if len(text) <= 40 else text[:37] + "..."


def _plain_message(kind: str, ctx: dict[str, Any], default: str) -> str:
    """Pydantic's wording, said the way a business owner reads it."""
    allowed = {
        "greater_than_equal": "must be at least {ge}",
        "greater_than": "must be more than {gt}",
        "less_than_equal": "must be at most {le}",
        "less_than": "must be less than {lt}",
        "int_parsing": "must be a whole number",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_type": "must be text",
        "dict_type": "must be a mapping (key: value lines)",
        "list_type": "must be a list",
        "model_type": "must be a mapping (key: value lines)",
        "literal_error": "must be one of {expected}",
        "enum": "must be one of {expected}",
        "string_too_short": "must not be empty",
        "too_short": "needs at least {min_length} item(s)",
        "string_pattern_mismatch": "does not have the expected form ({pattern})",
        "decimal_parsing": "must be a number written as text, e.g. '0.095'",
    }
    template = allowed.get(kind)
    if template is None:
        return default.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return default
