"""`flexvoice flows render`: the flow as a Graphviz diagram, every branch labelled."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from flexvoice.errors import UserError
from flexvoice.flows.base import BRANCH_NAMES, BRANCH_PREFIXES
from flexvoice.flows.model import Flow

COLORS = {
    "menu": "#fff4d6",
    "gather": "#fff4d6",
    "dial": "#dff3e4",
    "queue": "#dff3e4",
    "redirect": "#dff3e4",
    "hours": "#e6e9ff",
    "switch": "#e6e9ff",
    "webhook": "#e6e9ff",
    "record": "#fde2e2",
    "hangup": "#eeeeee",
}
FORMATS = ("svg", "png", "pdf", "dot")
# Unset branches of these names end the call: drawn as an edge to the end.
ENDING_WHEN_UNSET = ("then", "on_failure", "on_overflow", "default", "on_failed")


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(flow: Flow) -> str:
    lines = [
        f"digraph {_q(flow.name)} {{",
        "  rankdir=TB;",
        f"  label={_q(flow.name + (': ' + flow.description if flow.description else ''))};",
        "  labelloc=t; fontname=Helvetica;",
        '  node [shape=box, style="rounded,filled", fillcolor="#f4f6f8", fontname=Helvetica,'
        " fontsize=11];",
        "  edge [fontname=Helvetica, fontsize=9];",
        '  "__start" [shape=circle, label="call", fillcolor="#333333", fontcolor=white,'
        " width=0.5];",
        '  "__end" [shape=doublecircle, label="end", fillcolor="#333333", fontcolor=white,'
        " width=0.4];",
        f"  {_q('__start')} -> {_q(flow.start)};",
    ]
    for name, verb in flow.steps.items():
        color = COLORS.get(verb.verb, "#f4f6f8")
        label = f"{name}\n{verb.describe() or verb.verb}"
        lines.append(f"  {_q(name)} [label={_q(label)}, fillcolor={_q(color)}];")
        for br in verb.branches():
            style = ", style=dashed" if br.label == "on_error" else ""
            lines.append(f"  {_q(name)} -> {_q(br.target)} [label={_q(br.label)}{style}];")
        ends = []
        if verb.ends_call:
            ends.append(verb.verb)
        for fname in type(verb).model_fields:
            is_branch = fname in BRANCH_NAMES or fname.startswith(BRANCH_PREFIXES)
            if is_branch and fname in ENDING_WHEN_UNSET and getattr(verb, fname) is None:
                ends.append(fname)
        for label in ends:
            lines.append(f"  {_q(name)} -> {_q('__end')} [label={_q(label)}, color=gray40];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(flow: Flow, output: Path) -> None:
    fmt = output.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise UserError(f"{output}: write .svg, .png, .pdf or .dot (got '.{fmt}')")
    dot = to_dot(flow)
    if fmt == "dot":
        output.write_text(dot, encoding="utf-8")
        return
    binary = shutil.which("dot")
    if binary is None:
        raise UserError(
            "Graphviz 'dot' is not installed; run ./run once or apt-get install graphviz"
        )
    proc = subprocess.run(
        [binary, f"-T{fmt}", "-o", str(output)], input=dot.encode(), capture_output=True, timeout=60
    )
    if proc.returncode != 0:
        raise UserError(f"dot failed: {proc.stderr.decode(errors='replace').strip()}")
