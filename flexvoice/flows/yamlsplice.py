"""The designer's commonest edit done on the text itself: a field that holds one value (a
timeout, a prompt, the step an outcome goes to) is given another. The value's characters are
replaced where libyaml says they are, and nothing else in the file moves.

ruamel.yaml's round trip does any edit but costs ~130 ms to write a 200-step flow back (and
~180 ms to read it first); this reads only the step's lines with libyaml (well under 1 ms).
Anything else (a new key, a removal, a list, a block scalar, a shorthand such as
`goto: menu`) returns None and is done by flows.yamledit.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from flexvoice.flows.yamllines import step_blocks

Scalar = str | int | float | bool
_NULL = "tag:yaml.org,2002:null"

# Line breaks other than \n would number lines differently from flows.yamllines' cut.
_ODD_BREAKS = re.compile("[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _step_node(text: str, step: str, path: list[str | int]) -> tuple[yaml.Node, int] | None:
    """The node at `path` in the step's verb mapping, read from the step's lines alone (a few
    hundred bytes, not the flow), and how far its marks' indexes are from the text's."""
    cut = step_blocks(text)
    if cut is None or _ODD_BREAKS.search(text):
        return None
    found = [(first, end) for first, end, name in cut[0] if name == step]
    if len(found) != 1:
        return None
    first, end = found[0]
    lines = text.splitlines(True)
    block = "".join(lines[first - 1 : end - 1])
    try:
        # At its line numbers, so that a mark's line and column are the text's.
        root = yaml.compose("\n" * (first - 1) + block, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return None  # an alias to another step, say: ruamel does it
    if not isinstance(root, yaml.MappingNode) or len(root.value) != 1:
        return None
    verb_path = _verb_path(root, step)
    node = _node_at(root, [*verb_path, *path]) if verb_path else None
    if node is None:
        return None
    return node, sum(len(line) for line in lines[: first - 1]) - (first - 1)


def _node_at(root: yaml.Node, keys: list[str | int]) -> yaml.Node | None:
    node: yaml.Node | None = root
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            found = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key]
            if len(found) != 1:
                return None
            node = found[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            node = node.value[key] if 0 <= key < len(node.value) else None
        else:
            return None
    return node


def _verb_path(root: yaml.Node, step: str) -> list[str | int] | None:
    """[step, verb] when the step (read alone) is one verb with a mapping body."""
    body = _node_at(root, [step])
    if not isinstance(body, yaml.MappingNode):
        return None
    if len(body.value) != 1 or not isinstance(body.value[0][0], yaml.ScalarNode):
        return None
    verb = body.value[0][0].value
    return [step, verb] if isinstance(body.value[0][1], yaml.MappingNode) else None


def render(value: Scalar, style: str | None) -> str:
    """The value as YAML, in the quoting the old value had when it can keep it; safe inside a
    flow mapping ({a: b}) as well as in a block one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("not a finite number")
        return json.dumps(value)
    if style == '"':
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML "..." one
    if style == "'" and "\n" not in value:
        return "'" + value.replace("'", "''") + "'"
    # As an item of a flow sequence PyYAML quotes whatever a plain scalar cannot hold there
    # (',', '[', ': ', a word YAML would read as a number or true/false, ...).
    out = yaml.safe_dump([value], default_flow_style=True, width=1 << 30, allow_unicode=True)
    return out.strip()[1:-1]


def set_scalars(text: str, ops: list[dict[str, Any]]) -> str | None:
    """`text` with every op applied, when each is a `set` of one value over one value."""
    if not ops or any(op.get("op") != "set" for op in ops):
        return None
    out = text
    for op in ops:
        value, step, path = op.get("value"), op.get("step"), op.get("path")
        if not isinstance(value, Scalar) or not isinstance(step, str):
            return None
        if not isinstance(path, list) or not path:
            return None
        if not all(isinstance(p, str | int) and not isinstance(p, bool) for p in path):
            return None
        found = _step_node(out, step, path)
        if found is None:
            return None
        node, shift = found
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            return None
        if node.style not in (None, "", '"', "'") or node.start_mark.line != node.end_mark.line:
            return None
        try:
            new = render(value, node.style)
        except ValueError:
            return None
        out = out[: node.start_mark.index + shift] + new + out[node.end_mark.index + shift :]
    return out if _holds(out, ops) else None


def _holds(text: str, ops: list[dict[str, Any]]) -> bool:
    """The new text reads back with each value where it was put (else ruamel does the edit)."""
    for op in ops:
        found = _step_node(text, op["step"], op["path"])
        if found is None or not isinstance(found[0], yaml.ScalarNode):
            return False
        node, shift = found
        written = text[node.start_mark.index + shift : node.end_mark.index + shift]
        try:
            value = yaml.load(written, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            return False
        if value != op["value"] or type(value) is not type(op["value"]):
            return False
    return True
