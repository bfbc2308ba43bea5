"""Errors meant for people: each carries a message that names the place and the fix.

The CLI prints these as single lines and exits non-zero; anything else that escapes is a bug
and is reported as such without a traceback on the terminal (the traceback goes to the log).
"""

from __future__ import annotations

from dataclasses import dataclass


class UserError(Exception):
    """A problem the user can fix (bad input, missing file, port in use)."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    source: str  # file name or another label such as "environment"
    line: int  # 1-based; 0 when the problem is about the whole source
    column: int
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = self.source if self.line <= 0 else f"{self.source}:{self.line}:{self.column}"
        tag = "" if self.severity == "error" else f"{self.severity}: "
        return f"{where}: {tag}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "severity": self.severity,
        }


class ProblemList(UserError):
    """One or more positioned problems found in a file the user edits."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]
