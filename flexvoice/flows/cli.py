"""`flexvoice flows validate | simulate | render | schema`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from flexvoice.config import DEFAULT_CONFIG_FILE, ENV_CONFIG_FILE, load_config
from flexvoice.errors import UserError
from flexvoice.flows.validate import Validation, validate_file


def prompts_dir_from(args: argparse.Namespace) -> Path | None:
    """--prompts, else the node configuration's paths.prompts, else ./ivr_prompts."""
    if getattr(args, "no_prompts", False):
        return None
    if args.prompts is not None:
        return Path(args.prompts)
    config_file = getattr(args, "config", None) or Path(
        os.environ.get(ENV_CONFIG_FILE, DEFAULT_CONFIG_FILE)
    )
    if Path(config_file).exists():
        cfg = load_config(Path(config_file))
        return cfg.path(cfg.paths.prompts)
    return Path("ivr_prompts")


def flow_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not found:
                raise UserError(f"{path}: no .yaml flow files in this folder")
            files += found
        else:
            files.append(path)
    return files


def _validate(args: argparse.Namespace) -> int:
    prompts = prompts_dir_from(args)
    if prompts is not None and not prompts.is_dir():
        raise UserError(f"{prompts}: prompts folder not found; pass --prompts DIR or --no-prompts")
    results: list[Validation] = [validate_file(p, prompts) for p in flow_files(args.paths)]
    names: dict[str, str] = {}
    errors = warnings = 0
    for res in results:
        for problem in res.problems:
            print(problem, file=sys.stdout)
        errors += len(res.errors)
        warnings += len(res.warnings)
        if res.flow is not None:
            if res.flow.name in names:
                print(
                    f"{res.source}:1:1: flow name '{res.flow.name}' is already used by "
                    f"{names[res.flow.name]}; each flow needs its own name"
                )
                errors += 1
            names[res.flow.name] = res.source
    ok = len(results) - sum(1 for r in results if r.errors)
    summary = f"{ok}/{len(results)} flow file(s) valid, {errors} error(s), {warnings} warning(s)"
    print(summary, file=sys.stderr)
    if errors or (args.strict and warnings):
        return 1
    return 0


def _schema(args: argparse.Namespace) -> int:
    from flexvoice.flows.schema import schema_text

    text = schema_text()
    if args.output is None or str(args.output) == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    flows = sub.add_parser("flows", help="check, try and draw YAML call flows")
    fsub = flows.add_subparsers(dest="flows_command", metavar="SUBCOMMAND")
    fsub.required = True

    p = fsub.add_parser("validate", help="check flow files; one line per problem")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="flow files or folders")
    p.add_argument("--prompts", type=Path, default=None, help="prompts folder (ivr_prompts)")
    p.add_argument("--no-prompts", action="store_true", help="skip the prompt file check")
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    p.set_defaults(handler=_validate)

    p = fsub.add_parser("schema", help="print the JSON Schema of flow files")
    p.add_argument("-o", "--output", type=Path, default=None, help="write it to this file")
    p.set_defaults(handler=_schema)
