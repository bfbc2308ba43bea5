"""Where steps and their fields are written in a flow's text, read from the text itself (a
problem's line:col is put on its step and field with these)."""

from __future__ import annotations

import functools
import re

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


@functools.lru_cache(maxsize=8)  # an edit's text is cut by the splice, then by the check
def step_blocks(text: str) -> tuple[tuple[tuple[int, int, str], ...], int] | None:
    """Each step's lines as written, (first, end, name) with `end` the line after its last,
    and the line where the flow's text after the steps begins; None when the steps are not
    written one per block under `steps:` (then there is nothing to cut along)."""
    firsts = step_lines_of(text)
    if not firsts:
        return None
    lines = text.splitlines()
    after = len(lines) + 1
    for number in range(firsts[-1][0] + 1, len(lines) + 1):
        line = lines[number - 1]
        if line and not line.startswith((" ", "\t", "#")):
            if not _KEY.match(line):
                return None  # a value going on at the margin: not cut here
            after = number
            break
    ends = [first for first, _ in firsts[1:]] + [after]
    return tuple((first, end, name) for (first, name), end in zip(firsts, ends, strict=True)), after
