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
    """SafeLoader that refuses duplicate keys (a silent last-one-wins hides mistakes)."""


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(loader: _Loader, node: yaml.Node, path: PathKey, doc: YamlDoc) -> Any:
    doc.value_marks[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
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
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, source: str) -> YamlDoc:
    """Parse one YAML document; raise ProblemList with the position of a syntax error."""
    doc = YamlDoc(source=source, data=None)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        doc.data = {} if node is None else _walk(loader, node, (), doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or "not valid YAML"
        raise ProblemList([Problem(source, line, col, f"YAML syntax: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ProblemList([Problem(source, 1, 1, f"YAML syntax: {exc}")]) from None
    finally:
        loader.dispose()
    return doc


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


def explain_validation_error(
    exc: ValidationError, doc: YamlDoc, root: type[BaseModel], prefix: PathKey = ()
) -> list[Problem]:
    """Turn pydantic's errors into positioned, human messages."""
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        full = (*prefix, *loc)
        dotted = ".".join(str(p) for p in full) or "(top level)"
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
        problems.append(doc.problem(full, f"{dotted}: {msg}{shown}"))
    return problems


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
