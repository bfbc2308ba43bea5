"""YAML documents that remember where each value came from.

Everything people edit (config, flows, trunks, numbers, tariffs) is YAML, and every error
about it must name the file, line and column. `load_yaml` returns plain Python data plus a
map from each value's path (a tuple of keys and list indexes) to its position, so models can
be validated with ordinary tools and errors mapped back to the text afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

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


class Mark(NamedTuple):
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class YamlDoc:
    source: str  # a file name as the user wrote it, or a label such as "<request body>"
    data: Any
    # The parser's own marks (0-based), kept as they come: a 200-step flow has 10,000 values
    # and making a Mark of each took longer than libyaml took to parse it.
    value_marks: dict[PathKey, Any] = field(default_factory=dict)
    key_marks: dict[PathKey, Any] = field(default_factory=dict)

    def mark(self, path: Sequence[str | int], *, key: bool = False) -> Mark:
        """Position of `path`, or of the nearest enclosing value that has one."""
        p = tuple(path)
        while True:
            marks = self.key_marks if key else self.value_marks
            if p in marks:
                return Mark(marks[p].line + 1, marks[p].column + 1)
            if key and p in self.value_marks:
                return Mark(self.value_marks[p].line + 1, self.value_marks[p].column + 1)
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


def _expanded_size(root: yaml.Node, limit: int) -> tuple[int, yaml.Node | None]:
    """How many values the document has once every alias is expanded, computed on the node
    graph with each shared node counted once per use (memoised, so a bomb costs what its text
    costs); stops counting past the limit. Also the first node nested deeper than
    MAX_YAML_DEPTH, if any (libyaml composes up to 1,000 levels before this is asked).
    Iterative: nothing here recurses."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    too_deep: yaml.Node | None = None
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
            depth = 1 + max((depths[id(c)] for c in children), default=0)
            depths[id(node)] = depth
            if depth > MAX_YAML_DEPTH and too_deep is None:
                too_deep = node
            continue
        stack.append((node, True))
        stack += [(c, False) for c in children if id(c) not in sizes]
    return sizes[id(root)], too_deep


_STR = "tag:yaml.org,2002:str"


def _walk(
    loader: yaml.SafeLoader | yaml.CSafeLoader,
    node: yaml.Node,
    path: PathKey,
    doc: YamlDoc,
    depth: int = 1,
) -> Any:
    # Without anchors the document is a tree: its size and depth are counted here, as it is
    # walked, and refused before the recursion goes deeper than MAX_YAML_DEPTH.
    if depth > MAX_YAML_DEPTH:
        raise YamlTooLarge(
            f"the document is nested more than {MAX_YAML_DEPTH} levels deep; flatten it",
            node.start_mark.line + 1,
            node.start_mark.column + 1,
        )
    doc.value_marks[path] = node.start_mark
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
            if key_node.tag == _STR:
                key: Any = key_node.value
            else:
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
            doc.key_marks[sub] = key_node.start_mark
            out[key_text] = _walk(loader, value_node, sub, doc, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _walk(loader, item, (*path, i), doc, depth + 1) for i, item in enumerate(node.value)
        ]
    if node.tag == _STR:
        return node.value  # what SafeConstructor would build, without its bookkeeping
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
    try:
        # libyaml (C) first: about 20 times faster than PyYAML's own parser on a flow. A
        # document it refuses is read again by PyYAML, whose messages name the mistakes
        # people make (a tab, an unquoted ': ') and which _plain_syntax puts in plain words.
        doc.data = _composed(_FAST_LOADER(text), text, doc, max_values)
    except ProblemList:
        doc = YamlDoc(source=source, data=None)
        doc.data = _composed(_Loader(text), text, doc, max_values)
    return doc


_FAST_LOADER: Any = yaml.CSafeLoader  # bench/designer.py swaps in _Loader: the old path


def _too_many(max_values: int) -> str:
    return (
        f"the document expands to more than {max_values} values (anchors and aliases "
        "(&name, *name) count once per use); write it out without aliases or split it"
    )


def _composed(
    loader: yaml.SafeLoader | yaml.CSafeLoader, text: str, doc: YamlDoc, max_values: int
) -> Any:
    source = doc.source
    path: PathKey = ()
    try:
        node = loader.get_single_node()
        if node is not None and "&" in text:
            # Anchors: aliases may repeat a node many times (a bomb); counted on the graph
            # before anything walks it. A document without '&' is a tree, counted as walked.
            size, too_deep = _expanded_size(node, max_values)
            if too_deep is not None:
                raise YamlTooLarge(
                    f"the document is nested more than {MAX_YAML_DEPTH} levels deep; flatten it",
                    too_deep.start_mark.line + 1,
                    too_deep.start_mark.column + 1,
                )
            if size > max_values:
                raise YamlTooLarge(_too_many(max_values))
        data = {} if node is None else _walk(loader, node, path, doc)
        if len(doc.value_marks) > max_values:
            raise YamlTooLarge(_too_many(max_values))
        return data
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
        loader.dispose()  # type: ignore[no-untyped-call]


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
