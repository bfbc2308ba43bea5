"""Pydantic's validation errors about a YAML document, said in words a business owner reads,
at the file:line:col of the value (positions from flexvoice.yamlsrc)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from flexvoice.errors import Problem
from flexvoice.yamlsrc import PathKey, YamlDoc


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
