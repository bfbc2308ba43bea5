"""`flexvoice` command line: one sub-command module per concern, each with `register()`.

A module in COMMAND_MODULES defines `register(subparsers)` and gives each parser a
`handler(args) -> int`. Errors meant for people (UserError) print as single lines; anything
else is a bug, logged with its traceback and reported in one line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from flexvoice import __version__
from flexvoice.errors import ProblemList, UserError
from flexvoice.logs import get_logger

COMMAND_MODULES = (
    "flexvoice.server",
    "flexvoice.metering.cli",
    "flexvoice.numbers_cli",
    "flexvoice.api.keys_cli",
    "flexvoice.users_cli",
    "flexvoice.sip.edge_cli",
    "flexvoice.flows.cli",
    "flexvoice.prompts_cli",
    "flexvoice.check_cli",
    "flexvoice.db_cli",
    "flexvoice.statistics_cli",
    "flexvoice.cluster_cli",
)

log = get_logger(__name__)


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="flexvoice", description="FlexVoice programmable-voice engine")
    parser.add_argument("--version", action="version", version=f"flexvoice {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="configuration file (default: $FLEXVOICE_CONFIG or ./flexvoice.yaml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ProblemList as exc:
        for problem in exc.problems:
            print(f"flexvoice: {problem}", file=sys.stderr)
        return exc.exit_code
    except UserError as exc:
        print(f"flexvoice: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: the traceback goes to a file, one line to the terminal
        report = _write_crash_report(args.command)
        log.error("internal_error", command=args.command, error=repr(exc), report=str(report))
        print(
            f"flexvoice: internal error ({type(exc).__name__}: {exc}); this is a bug, "
            f"please report it with {report}",
            file=sys.stderr,
        )
        return 70


def _write_crash_report(command: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f"flexvoice-crash-{command}-", suffix=".txt")
    with os.fdopen(fd, "w") as out:
        out.write(f"flexvoice {__version__} {' '.join(sys.argv)}\n")
        out.write(traceback.format_exc())
    return Path(name)
