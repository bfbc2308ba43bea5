"""Edits to a flow file that keep what a person wrote: comments, key order, inline styles.

The designer never rewrites a flow from a model: it loads the file with ruamel.yaml's round-trip
loader, applies small edits (set a field, connect an outcome, add, delete or rename a step) and
dumps it again, so that a published flow differs from the old file only where the edit was.

Which fields name steps is read from the flow schema (flows/schema.json): a value whose schema
says "the name of a step in this flow" is a reference. A new verb's outcomes are thus renamed
and cleaned up with no change here, as the page draws them with no change there.
"""

from __future__ import annotations

import io
import re
from collections import OrderedDict
from collections.abc import Iterator
from functools import cache
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from flexvoice.errors import UserError
from flexvoice.flows.base import STEP_NAME_RE
from flexvoice.flows.schema import flow_schema
from flexvoice.flows.verbs import VERBS

STEP_REF = "the name of a step in this flow"
Path_ = tuple[str | int, ...]


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap a long line the person wrote
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def load(text: str) -> Any:
    try:
        return _yaml().load(text)
    except YAMLError as exc:
        raise UserError(f"the flow is not valid YAML: {exc}") from None


def dump(doc: Any) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


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


# ---- step references, from the schema -------------------------------------------------------


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


# ---- edits ----------------------------------------------------------------------------------


def _steps(doc: Any) -> CommentedMap:
    steps = doc.get("steps") if isinstance(doc, dict) else None
    if not isinstance(steps, CommentedMap):
        raise UserError("the flow has no steps: mapping to edit; fix it in the YAML text")
    return steps


def _verb_of(step: Any, name: str) -> tuple[str, Any]:
    if not isinstance(step, dict) or len(step) != 1:
        raise UserError(f"step '{name}' does not hold exactly one verb; fix it in the YAML text")
    verb, body = next(iter(step.items()))
    return str(verb), body


def _body_map(step: CommentedMap, name: str) -> CommentedMap:
    """The verb's mapping, turning a shorthand (`goto: menu`, `hangup:`) into one."""
    verb, body = _verb_of(step, name)
    if isinstance(body, CommentedMap):
        return body
    coerced = VERBS[verb].coerce(body) if verb in VERBS else {}
    if not isinstance(coerced, dict):
        raise UserError(f"step '{name}': cannot edit '{verb}: {body}' as fields")
    new = CommentedMap(coerced)
    new.fa.set_flow_style()
    step[verb] = new
    return new


def _container(root: CommentedMap, path: Path_, create: bool) -> Any:
    node: Any = root
    for key in path[:-1]:
        if isinstance(node, dict):
            if key not in node or node[key] is None:
                if not create:
                    return None
                child = CommentedMap()
                child.fa.set_flow_style()
                node[key] = child
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return None
    return node


def _to_node(value: Any) -> Any:
    if isinstance(value, dict):
        m = CommentedMap((k, _to_node(v)) for k, v in value.items())
        m.fa.set_flow_style()
        return m
    if isinstance(value, list):
        s = CommentedSeq(_to_node(v) for v in value)
        s.fa.set_flow_style()
        return s
    return value


def set_field(doc: Any, step: str, path: Path_, value: Any) -> None:
    """Set (or with None, remove) a field inside a step's verb mapping."""
    steps = _steps(doc)
    if step not in steps:
        raise UserError(f"no step '{step}' in this flow")
    if not path:
        raise UserError("say which field to set")
    body = _body_map(steps[step], step)
    parent = _container(body, path, create=value is not None)
    key = path[-1]
    if value is None:
        if isinstance(parent, dict):
            parent.pop(key, None)
        elif isinstance(parent, list) and isinstance(key, int) and 0 <= key < len(parent):
            del parent[key]
        return
    if isinstance(parent, dict):
        old = parent.get(key)
        parent[key] = value if _same_shape(old, value) else _to_node(value)
    elif isinstance(parent, list) and isinstance(key, int) and 0 <= key <= len(parent):
        if key == len(parent):
            parent.append(_to_node(value))
        else:
            parent[key] = _to_node(value)
    else:
        raise UserError(f"step '{step}': cannot set {'.'.join(map(str, path))}")


def _same_shape(old: Any, new: Any) -> bool:
    # A scalar replacing a scalar keeps ruamel's comment slot; containers are rebuilt.
    return not isinstance(new, (dict, list)) and not isinstance(old, (dict, list))


def set_header(doc: Any, key: str, value: Any) -> None:
    if key == "steps":
        raise UserError("steps are edited one by one")
    if value is None:
        doc.pop(key, None)
    else:
        doc[key] = _to_node(value)


def add_step(doc: Any, name: str, verb: str, body: Any) -> None:
    steps = _steps(doc)
    _check_name(name)
    if name in steps:
        raise UserError(f"a step '{name}' already exists; choose another name")
    if verb not in VERBS:
        raise UserError(f"'{verb}' is not a verb; use one of: {', '.join(VERBS)}")
    value = _to_node(body if body is not None else {})
    step = CommentedMap([(verb, value)])
    steps[name] = step


def delete_step(doc: Any, name: str) -> None:
    """Remove a step; outcomes that went to it are removed too (their step ends the call or
    the validator says what is missing), and `start` is left for the validator to flag."""
    steps = _steps(doc)
    if name not in steps:
        raise UserError(f"no step '{name}' in this flow")
    del steps[name]
    for other, step in steps.items():
        verb, body = _verb_of(step, str(other))
        if verb == "goto" and body == name:
            continue  # the shorthand has nothing to remove; the validator names it
        for path in step_refs(verb, body):
            if _get(body, path) == name:
                parent = _container(body, path, create=False)
                if isinstance(parent, dict):
                    del parent[path[-1]]


def rename_step(doc: Any, old: str, new: str) -> None:
    """Rename a step where it stands; every reference (and `start`) follows."""
    steps = _steps(doc)
    if old not in steps:
        raise UserError(f"no step '{old}' in this flow")
    _check_name(new)
    if new == old:
        return
    if new in steps:
        raise UserError(f"a step '{new}' already exists; choose another name")
    position = list(steps).index(old)
    value = steps.pop(old)
    steps.insert(position, new, value)
    if doc.get("start") == old:
        doc["start"] = new
    for other, step in steps.items():
        verb, body = _verb_of(step, str(other))
        if verb == "goto" and body == old:
            step[verb] = new
            continue
        for path in step_refs(verb, body):
            if _get(body, path) == old:
                parent = _container(body, path, create=False)
                parent[path[-1]] = new


def _check_name(name: str) -> None:
    if not STEP_NAME_RE.match(name):
        raise UserError(
            f"'{name}' is not a step name; use letters, digits, '_', '-' and '.' (no spaces)"
        )


def _get(body: Any, path: Path_) -> Any:
    node = body
    for key in path:
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return None
    return node


def apply(text: str, ops: list[dict[str, Any]]) -> str:
    """Apply the page's edit operations in order; the new text. A bad op raises UserError."""
    replaced = [op for op in ops if op.get("op") == "replace"]
    if replaced:
        if len(ops) != 1 or not isinstance(replaced[0].get("text"), str):
            raise UserError("'replace' comes alone, with the whole text")
        return str(replaced[0]["text"])
    doc = _DOCS.pop(text, None)  # ours to change: no other text maps to it any more
    if doc is None:
        doc = load(text)
    if not isinstance(doc, CommentedMap):
        raise UserError("the flow is not a mapping; fix it in the YAML text first")
    for op in ops:
        kind = op.get("op")
        if kind == "set":
            path = tuple(op.get("path") or ())
            set_field(doc, str(op.get("step")), path, op.get("value"))
        elif kind == "set_header":
            set_header(doc, str(op.get("key")), op.get("value"))
        elif kind == "add_step":
            add_step(doc, str(op.get("step")), str(op.get("verb")), op.get("body"))
        elif kind == "delete_step":
            delete_step(doc, str(op.get("step")))
        elif kind == "rename_step":
            rename_step(doc, str(op.get("step")), str(op.get("to")))
        else:
            raise UserError(
                f"unknown edit '{kind}'; use set, set_header, add_step, delete_step, "
                "rename_step or replace"
            )
    out = dump(doc)
    _remember(out, doc)
    return out


# The documents of the last texts edited: the next edit starts from the tree it left instead
# of parsing the text again (ruamel's round-trip parser takes about 1.5 ms a line here).
_DOCS: OrderedDict[str, Any] = OrderedDict()
_DOCS_KEPT = 8


def _remember(text: str, doc: Any) -> None:
    _DOCS[text] = doc
    _DOCS.move_to_end(text)
    while len(_DOCS) > _DOCS_KEPT:
        _DOCS.popitem(last=False)


def parsed(text: str) -> Any:
    """The document of `text` (from the last edit when it made this text; else parsed and
    kept for the next edit). Its line numbers may be stale: use step_lines_of(text)."""
    doc = _DOCS.get(text)
    if doc is None:
        doc = load(text)
        _remember(text, doc)
    return doc


def step_lines(doc: Any) -> list[tuple[int, str]]:
    """(first line, 1-based, of each step) in file order: to put a problem on its step."""
    steps = doc.get("steps") if isinstance(doc, CommentedMap) else None
    if not isinstance(steps, CommentedMap):
        return []
    out = []
    for name in steps:
        line, _col = steps.lc.key(name)
        out.append((line + 1, str(name)))
    return out


def field_at(doc: Any, step: str, line: int, column: int = 0) -> str | None:
    """The verb field of `step` at `line`:`column` (1-based), if any."""
    steps = doc.get("steps")
    verb_map = steps.get(step) if isinstance(steps, CommentedMap) else None
    if not isinstance(verb_map, CommentedMap) or len(verb_map) != 1:
        return None
    body = next(iter(verb_map.values()))
    if not isinstance(body, CommentedMap):
        return None
    best = None
    for key in body:
        key_line, key_col = body.lc.key(key)
        # Inline mappings put several keys on one line: the column tells them apart.
        if (key_line + 1, key_col + 1) <= (line, max(column, 1)):
            best = str(key)
    return best


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


_KEY = re.compile(r"""^( *)(?:"([^"]*)"|'([^']*)'|([^\s#'"{\[\]][^:#]*?))\s*:(?:\s|$)""")
_INLINE_KEY = re.compile(r"([A-Za-z_][\w-]*)\s*:")


def step_lines_of(text: str) -> list[tuple[int, str]]:
    """(first line, 1-based, of each step) read from the text itself, as written."""
    out: list[tuple[int, str]] = []
    indent = None
    inside = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _KEY.match(line)
        if not line.startswith((" ", "\t")):
            inside = m is not None and (m.group(4) or m.group(2) or m.group(3)) == "steps"
            continue
        if not inside or m is None:
            continue
        width = len(m.group(1))
        if indent is None:
            indent = width
        if width == indent:
            out.append((number, m.group(2) or m.group(3) or m.group(4) or ""))
    return out


def field_on(text: str, step_line: int, line: int, column: int) -> str | None:
    """The verb field written at line:column of the step starting on `step_line`."""
    lines = text.splitlines()
    if not 0 < step_line < line <= len(lines):
        return None
    verb_line = step_line + 1
    current = lines[line - 1]
    if "{" in current:  # an inline mapping: the last key starting before the column
        best = None
        for found in _INLINE_KEY.finditer(current, current.index("{")):
            if found.start() + 1 <= column:
                best = found.group(1)
        if best is not None:
            return best
    body_indent = None
    for text_line in lines[verb_line:line]:
        first = _KEY.match(text_line)
        if first:
            body_indent = len(first.group(1))
            break
    for number in range(line, verb_line, -1):
        key = _KEY.match(lines[number - 1])
        if key and len(key.group(1)) == body_indent:
            return key.group(4) or key.group(2) or key.group(3)
    return None
