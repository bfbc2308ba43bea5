"""Which fields of a step name another step, read from the flow schema (flows/schema.json): a
value whose schema says "the name of a step in this flow" is a reference. A new verb's
outcomes are thus renamed, cleaned up and drawn with no change here or on the page."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from flexvoice.flows.schema import flow_schema
from flexvoice.flows.verbs import VERBS

STEP_REF = "the name of a step in this flow"
Path_ = tuple[str | int, ...]


@cache
def _schema() -> dict[str, Any]:
    return flow_schema()


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved: dict[str, Any] = _schema()["$defs"][ref.rsplit("/", 1)[1]]
        return resolved
    return node


def _is_ref(node: dict[str, Any]) -> bool:
    node = _resolve(node)
    if node.get("description") == STEP_REF and node.get("type") == "string":
        return True
    return any(_is_ref(o) for o in node.get("anyOf", []) if o.get("type") == "string")


def _refs_in(node: dict[str, Any], value: Any, path: Path_) -> Iterator[Path_]:
    node = _resolve(node)
    if _is_ref(node):
        if isinstance(value, str):
            yield path
        return
    for option in node.get("anyOf", []):
        yield from _refs_in(option, value, path)
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                yield from _refs_in(props[key], item, (*path, key))
            elif isinstance(extra, dict):
                yield from _refs_in(extra, item, (*path, key))
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            yield from _refs_in(node["items"], item, (*path, i))


def verb_schema(verb: str) -> dict[str, Any]:
    cls = VERBS[verb]
    return _resolve({"$ref": f"#/$defs/{cls.__name__}"})


def step_refs(verb: str, body: Any) -> list[Path_]:
    """Paths inside a verb's mapping whose value names a step."""
    if verb not in VERBS or not isinstance(body, dict):
        return []
    return list(_refs_in(verb_schema(verb), body, ()))


def steps_view(doc: Any) -> list[dict[str, Any]]:
    """Each step as {name, verb, body} with shorthands made mappings (for the page)."""
    steps = doc.get("steps") if isinstance(doc, dict) else None
    if not isinstance(steps, dict):
        return []
    out = []
    for name, step in steps.items():
        if isinstance(step, dict) and len(step) == 1:
            verb, raw = next(iter(step.items()))
            body: Any = raw
            if verb in VERBS:
                try:
                    body = VERBS[verb].coerce(raw)
                except (TypeError, ValueError, AttributeError):
                    body = raw
            out.append(
                {
                    "name": str(name),
                    "verb": str(verb),
                    "body": plain(body) if isinstance(body, dict) else {},
                }
            )
        else:
            out.append({"name": str(name), "verb": "?", "body": {}})
    return out


def plain(value: Any) -> Any:
    """ruamel's node types as plain JSON values (for the page)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)
