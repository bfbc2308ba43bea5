"""`flexvoice flows validate | simulate | render | schema`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path

from flexvoice.config import DEFAULT_CONFIG_FILE, ENV_CONFIG_FILE, load_config
from flexvoice.errors import ProblemList, UserError
from flexvoice.flows.base import DTMF_KEYS
from flexvoice.flows.model import Flow
from flexvoice.flows.render import render, to_dot
from flexvoice.flows.schema import schema_text
from flexvoice.flows.simulate import Script, dial_token, simulate_flow
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
    text = schema_text()
    if args.output is None or str(args.output) == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def _one_flow(args: argparse.Namespace) -> tuple[Path | None, Flow]:
    prompts = prompts_dir_from(args)
    res = validate_file(args.path, prompts)
    if res.flow is None:
        raise ProblemList(res.problems)
    for problem in res.warnings:
        print(problem, file=sys.stderr)
    return prompts, res.flow


def _time_arg(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"--at: '{text}' is not a time; write e.g. 2026-12-24T19:00+01:00"
        ) from None
    if moment.tzinfo is None:
        raise UserError(f"--at: '{text}' has no offset; write e.g. 2026-12-24T19:00+01:00")
    return moment


def _simulate(args: argparse.Namespace) -> int:
    prompts, flow = _one_flow(args)
    at = _time_arg(args.at) if args.at else datetime.now().astimezone().replace(microsecond=0)
    # The printout says what happened; the runtime's own log lines would repeat it.
    logging.getLogger("flexvoice").setLevel(logging.CRITICAL)
    digits = args.digits.split(",") if args.digits is not None else []
    for d in digits:
        if any(c not in DTMF_KEYS for c in d):
            raise UserError(f"--digits: '{d}' is not DTMF keys (0-9, *, #); use ',' between inputs")
    dial = [t for t in args.dial.split(",") if t] if args.dial else []
    for token in dial:
        dial_token(token)
    answer = None
    if args.webhook_json is not None:
        try:
            answer = json.loads(Path(args.webhook_json).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserError(
                f"--webhook-json: cannot read {args.webhook_json}: {exc.strerror}"
            ) from None
        except ValueError as exc:
            raise UserError(f"--webhook-json: {args.webhook_json} is not JSON: {exc}") from None
    variables = {}
    for item in args.var:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--var: write NAME=VALUE (got '{item}')")
        variables[key] = value
    print(f"simulating {flow.name} ({args.path}) at {at.isoformat()}, caller {args.caller}")
    _, failed = asyncio.run(
        simulate_flow(
            flow,
            prompts or Path("ivr_prompts"),
            at=at,
            caller=args.caller,
            callee=args.callee,
            script=Script(digits=digits, dial=dial),
            webhook_answer=answer,
            continuity=args.continuity,
            variables=variables,
            write=print,
        )
    )
    return 1 if failed else 0


def _render(args: argparse.Namespace) -> int:
    _, flow = _one_flow(args)
    if args.output is None:
        sys.stdout.write(to_dot(flow))
    else:
        render(flow, args.output)
        print(f"wrote {args.output}", file=sys.stderr)
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

    p = fsub.add_parser(
        "simulate", help="dry-run a flow with no SIP: print each step taken and why"
    )
    p.add_argument("path", type=Path, metavar="PATH", help="a flow file")
    p.add_argument("--at", help="the call's time, e.g. 2026-12-24T19:00+01:00 (default: now)")
    p.add_argument("--caller", default="+32470000000", help="the caller's number")
    p.add_argument("--callee", default="+3226000000", help="the number called")
    p.add_argument(
        "--digits", help="what the caller presses at each input, e.g. 1,9 (empty: no input)"
    )
    p.add_argument(
        "--dial",
        help="how each rung target ends: answered, busy, declined, no-answer, failed, "
        "canceled or a SIP status (default: answered)",
    )
    p.add_argument("--webhook-json", type=Path, help="the answer every webhook gives")
    p.add_argument("--continuity", metavar="E164", help="Voice Continuity on, forwarding here")
    p.add_argument("--var", action="append", default=[], help="a call variable NAME=VALUE")
    p.add_argument("--prompts", type=Path, default=None, help="prompts folder (ivr_prompts)")
    p.set_defaults(handler=_simulate)

    p = fsub.add_parser("render", help="draw a flow with Graphviz (svg, png, pdf or dot)")
    p.add_argument("path", type=Path, metavar="PATH", help="a flow file")
    p.add_argument(
        "-o", "--output", type=Path, help="FILE.svg|png|pdf|dot (default: DOT on stdout)"
    )
    p.add_argument("--prompts", type=Path, default=None, help="prompts folder (ivr_prompts)")
    p.add_argument("--no-prompts", action="store_true", help="skip the prompt file check")
    p.set_defaults(handler=_render)

    p = fsub.add_parser("schema", help="print the JSON Schema of flow files")
    p.add_argument("-o", "--output", type=Path, default=None, help="write it to this file")
    p.set_defaults(handler=_schema)
