"""`flexvoice prompts build`: speak the texts of ivr_prompts/prompts.yaml into WAV prompts.

Each text becomes ivr_prompts/<language>/<name>.wav (espeak-ng, then sox to 8 kHz mono 16-bit);
`mixed` prompts join parts spoken in different voices into one language-neutral file (the
bilingual language menu); `tones` are sox-made sounds such as hold music. The output is
deterministic, so rebuilding leaves unchanged prompts byte-identical.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from flexvoice.errors import Problem, ProblemList, UserError
from flexvoice.flows.cli import prompts_dir_from
from flexvoice.flows.prompts import SOX_FORMAT, synthesize
from flexvoice.yamlsrc import YamlDoc, load_yaml
from flexvoice.yamlwords import did_you_mean


def _texts(doc: YamlDoc) -> tuple[list[str], list[tuple[Path, str, Any]]]:
    """(languages, [(relative output path, kind, spec)]) with positioned errors."""
    data = doc.data if isinstance(doc.data, dict) else {}
    problems: list[Problem] = []
    # Each prompt is spoken in the languages its texts give: a business that serves nl and fr
    # writes nl and fr texts and nothing else. `languages`, when given, lists the codes a
    # text may use (a guard against a typo such as 'nll'), not ones every prompt must have.
    langs = data.get("languages")
    if langs is not None and (
        not isinstance(langs, list) or not all(isinstance(x, str) for x in langs)
    ):
        problems.append(doc.problem(("languages",), "languages: give a list such as [nl, fr, en]"))
        langs = None
    jobs: list[tuple[Path, str, Any]] = []
    prompts = data.get("prompts") or {}
    if not isinstance(prompts, dict):
        problems.append(doc.problem(("prompts",), "prompts: must be a mapping of name to texts"))
        prompts = {}
    used: list[str] = []
    for name, texts in prompts.items():
        if not isinstance(texts, dict) or not texts:
            problems.append(
                doc.problem(("prompts", name), f"{name}: give one text per language, e.g. nl: ...")
            )
            continue
        for lang, text in texts.items():
            if langs is not None and lang not in langs:
                listed = ", ".join(langs)
                problems.append(
                    doc.problem(
                        ("prompts", name, lang),
                        f"{name}: language '{lang}' is not in languages ({listed}); add it "
                        f"there or correct the code{did_you_mean(lang, langs)}",
                        key=True,
                    )
                )
                continue
            if not isinstance(text, str) or not text.strip():
                problems.append(
                    doc.problem(
                        ("prompts", name, lang), f"{name}: the '{lang}' text must not be empty"
                    )
                )
                continue
            if lang not in used:
                used.append(lang)
            jobs.append((Path(lang) / f"{name}.wav", "say", (text, lang)))
    section = data.get("verification") or {}
    if not isinstance(section, dict):
        problems.append(doc.problem(("verification",), "verification: give languages and prompts"))
        section = {}
    v_langs = section.get("languages") or []
    for name, texts in (section.get("prompts") or {}).items():
        for lang in v_langs:
            text = texts.get(lang) if isinstance(texts, dict) else None
            if not isinstance(text, str) or not text.strip():
                problems.append(
                    doc.problem(
                        ("verification", "prompts", name), f"{name}: no text for language '{lang}'"
                    )
                )
                continue
            jobs.append((Path(lang) / f"{name}.wav", "say", (text, lang)))
    for name, parts in (data.get("mixed") or {}).items():
        ok = isinstance(parts, list) and all(isinstance(p, dict) and len(p) == 1 for p in parts)
        if not ok:
            problems.append(
                doc.problem(("mixed", name), f"{name}: give a list of {{language: text}} parts")
            )
            continue
        jobs.append((Path(f"{name}.wav"), "mixed", [next(iter(p.items())) for p in parts]))
    for name, effects in (data.get("tones") or {}).items():
        if not isinstance(effects, str):
            problems.append(doc.problem(("tones", name), f"{name}: give sox effects as text"))
            continue
        jobs.append((Path(f"{name}.wav"), "tone", effects))
    if problems:
        raise ProblemList(problems)
    return langs if langs is not None else used, jobs


def build(prompts_dir: Path, only: list[str] | None = None) -> list[Path]:
    source = prompts_dir / "prompts.yaml"
    if not source.exists():
        raise UserError(f"{source}: not found; the prompt texts live there")
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise UserError(f"'{tool}' is not installed; run ./run once or apt-get install {tool}")
    _, jobs = _texts(load_yaml(source))
    made: list[Path] = []
    for rel, kind, spec in jobs:
        if only and not any(rel.stem == n or rel.parts[0] == n for n in only):
            continue
        out = prompts_dir / rel
        if kind == "say":
            text, lang = spec
            synthesize(text, lang, out)
        elif kind == "mixed":
            _mixed(spec, out)
        else:
            _tone(spec, out)
        made.append(out)
    return made


def _mixed(parts: list[tuple[str, str]], out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="flexvoice-prompts-") as tmp:
        files = []
        for i, (lang, text) in enumerate(parts):
            part = Path(tmp) / f"{i}.wav"
            synthesize(text, lang, part)
            files.append(str(part))
        joined = Path(tmp) / "joined.wav"
        subprocess.run(["sox", "-D", *files, str(joined)], check=True, capture_output=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(joined, out)


def _tone(effects: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["sox", "-D", "-n", *SOX_FORMAT, str(out), *effects.split()]
    subprocess.run(cmd, check=True, capture_output=True)


def _build(args: argparse.Namespace) -> int:
    prompts_dir = prompts_dir_from(args)
    assert prompts_dir is not None
    try:
        made = build(prompts_dir, args.only or None)
    except subprocess.CalledProcessError as exc:
        err = exc.stderr.decode(errors="replace").strip() if exc.stderr else ""
        raise UserError(f"{exc.cmd[0]} failed: {err or exc}") from None
    size = sum(p.stat().st_size for p in made)
    print(f"built {len(made)} prompt(s) in {prompts_dir} ({size / 1024:.0f} KiB)", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("prompts", help="make the voice prompts from ivr_prompts/prompts.yaml")
    psub = p.add_subparsers(dest="prompts_command", metavar="SUBCOMMAND")
    psub.required = True
    b = psub.add_parser("build", help="speak every text into <language>/<name>.wav")
    b.add_argument("--prompts", type=Path, default=None, help="prompts folder (ivr_prompts)")
    b.add_argument("only", nargs="*", help="only these prompt names or languages")
    b.set_defaults(handler=_build, no_prompts=False)
