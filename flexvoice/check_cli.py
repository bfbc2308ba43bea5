"""`flexvoice check`: every file a node reads, checked in one go, for operators and CI.

The configuration (flexvoice.yaml and the environment), the flows, the tariffs, the trunks and
the numbers, each with its own validator (the one start-up uses), and then what no single
file can tell: that a number's flow and prompt exist, that an account's tariff is a file.
One line per problem with file:line:col; exit status 0 when there is no error, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from flexvoice.config import Config, config_from_args
from flexvoice.errors import Problem, ProblemList
from flexvoice.flows.runtime import FLOW_SUFFIXES
from flexvoice.flows.validate import validate_file
from flexvoice.metering.tariffs import load_tariff
from flexvoice.node.inbound_router import prompt_path
from flexvoice.numbers import read_numbers_file
from flexvoice.sip.trunks import load_trunks
from flexvoice.yamlsrc import load_yaml
from flexvoice.yamlwords import did_you_mean


def check_node(cfg: Config) -> tuple[list[Problem], int]:
    """(problems, number of files checked); the configuration itself is already valid."""
    problems: list[Problem] = []
    files = 1  # flexvoice.yaml, checked when the config was loaded
    flows_dir = cfg.path(cfg.paths.flows)
    prompts_dir = cfg.path(cfg.paths.prompts)
    flows: set[str] = set()
    if flows_dir.is_dir():
        for path in sorted(flows_dir.iterdir()):
            if path.suffix in FLOW_SUFFIXES and path.is_file():
                files += 1
                res = validate_file(path, prompts_dir)
                problems += res.problems
                if res.flow is not None:
                    flows.add(res.flow.name)
    tariffs: set[str] = set()
    tariffs_dir = cfg.path(cfg.paths.tariffs)
    if tariffs_dir.is_dir():
        for path in sorted(tariffs_dir.glob("*.yaml")):
            files += 1
            try:
                tariffs.add(load_tariff(path).name)
            except ProblemList as exc:
                problems += exc.problems
    trunks_path = cfg.path(cfg.sip.trunks)
    if trunks_path.exists():
        files += 1
        try:
            load_trunks(trunks_path)
        except ProblemList as exc:
            problems += exc.problems
    numbers_path = cfg.path(cfg.sip.numbers)
    if numbers_path.exists():
        files += 1
        try:
            accounts, numbers = read_numbers_file(numbers_path)
        except ProblemList as exc:
            problems += exc.problems
        else:
            doc = load_yaml(numbers_path)
            for name, account in accounts.items():
                if account.tariff not in tariffs:
                    hint = did_you_mean(account.tariff, tariffs)
                    problems.append(
                        doc.problem(
                            ("accounts", name, "tariff"),
                            f"accounts.{name}.tariff: no tariff '{account.tariff}' in "
                            f"{tariffs_dir}{hint}",
                        )
                    )
            keys = {k: k for k in (doc.data or {}).get("numbers", {})}
            for number in numbers.values():
                key = next((k for k in keys if k.replace(" ", "") == number.e164), number.e164)
                if number.flow is not None and number.flow not in flows:
                    hint = did_you_mean(number.flow, flows)
                    problems.append(
                        doc.problem(
                            ("numbers", key, "flow"),
                            f"numbers.{key}.flow: no valid flow '{number.flow}' in "
                            f"{flows_dir}{hint}",
                        )
                    )
                if number.prompt is not None:
                    found = prompt_path(prompts_dir, number.prompt)
                    if not found.is_file():
                        problems.append(
                            doc.problem(
                                ("numbers", key, "prompt"),
                                f"numbers.{key}.prompt: no prompt '{number.prompt}' "
                                f"({found} not found); record it or run "
                                "'flexvoice prompts build'",
                            )
                        )
    return problems, files


def _check(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)  # a broken flexvoice.yaml stops here, positioned, exit 2
    problems, files = check_node(cfg)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        print(p, file=sys.stderr if p.severity == "error" else sys.stdout)
    warnings = len(problems) - len(errors)
    print(f"{files} file(s) checked, {len(errors)} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "check",
        help="check every file of the node (config, flows, tariffs, trunks, numbers); exit 1 "
        "on errors",
    )
    p.set_defaults(handler=_check)
