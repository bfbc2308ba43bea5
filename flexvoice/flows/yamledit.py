"""Edits to a flow file that keep what a person wrote: comments, key order, inline styles.

The designer never rewrites a flow from a model: it loads the file with ruamel.yaml's round-trip
loader, applies small edits (set a field, connect an outcome, add, delete or rename a step) and
dumps it again, so that a published flow differs from the old file only where the edit was.

Which fields name steps is read from the flow schema (flows/schema.json): a value whose schema
says "the name of a step in this flow" is a reference. A new verb's outcomes are thus renamed
and cleaned up with no change here, as the page draws them with no change there.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections import OrderedDict
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from flexvoice.errors import UserError
from flexvoice.flows import yamlsplice
from flexvoice.flows.base import STEP_NAME_RE
from flexvoice.flows.steprefs import Path_, step_refs
from flexvoice.flows.verbs import VERBS


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
    spliced = yamlsplice.set_scalars(text, ops)
    if spliced is not None:
        # The tree of the old text (if kept) gets the same change, for the next structural
        # edit; its dump may quote the new value its own way, which is still the same value.
        kept = _DOCS.pop(text, None)
        if isinstance(kept, CommentedMap):
            try:
                for op in ops:
                    set_field(kept, str(op["step"]), tuple(op["path"]), op["value"])
                _remember(spliced, kept)
            except UserError:
                pass
        return spliced
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


_DOCS_LOCK = threading.Lock()  # two parsing threads: an edit and a flow being opened


def _remember(text: str, doc: Any) -> None:
    with _DOCS_LOCK:
        _DOCS[text] = doc
        _DOCS.move_to_end(text)
        while len(_DOCS) > _DOCS_KEPT:
            _DOCS.popitem(last=False)


def warm(text: str) -> None:
    """Read `text` into a tree now (in a parsing thread, after a flow is opened) so that the
    first structural edit does not pay ruamel's read."""
    if text not in _DOCS:
        with contextlib.suppress(UserError):
            _remember(text, load(text))
