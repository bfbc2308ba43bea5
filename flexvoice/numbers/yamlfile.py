"""sip/numbers.yaml: its model, and reading it into accounts and file-owned numbers with every
problem positioned (file:line:col) and said with its fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flexvoice.accounts import check_name
from flexvoice.errors import Problem, ProblemList, UserError
from flexvoice.numbers.rules import NumberError, check_flow_name, check_prompt_name, parse_e164
from flexvoice.yamlsrc import YamlDoc, load_yaml
from flexvoice.yamlwords import did_you_mean, explain_validation_error


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountEntry(_FileModel):
    tariff: str = Field("flexio-payu", description="tariff file name in metering/tariffs/")


class NumberEntry(_FileModel):
    account: Annotated[str, Field(description="the account that owns the number")]
    flow: str | None = Field(None, description="flow name (flows/NAME.yaml) run on each call")
    prompt: str | None = Field(None, description="prompt to play instead of a flow")
    description: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> NumberEntry:
        if (self.flow is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'flow' (a flow name) or 'prompt' (a prompt name)")
        return self


class NumbersFile(_FileModel):
    accounts: dict[str, AccountEntry] = Field(
        default_factory=dict,
        description="accounts created at start if they do not exist yet (name: {tariff: ...})",
    )
    numbers: dict[str, NumberEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class FileNumber:
    e164: str
    account: str
    flow: str | None
    prompt: str | None


def read_numbers_file(
    path: Path, known_accounts: set[str] | None = None
) -> tuple[dict[str, AccountEntry], dict[str, FileNumber]]:
    """Parse and validate numbers.yaml; raise ProblemList with every problem, positioned."""
    doc = load_yaml(path)
    if doc.data is None or doc.data == {}:
        return {}, {}
    if not isinstance(doc.data, dict):
        raise ProblemList([doc.problem((), "the file must be a mapping with 'numbers:'")])
    try:
        model = NumbersFile.model_validate(doc.data)
    except ValidationError as exc:
        problems = [_hint(p) for p in explain_validation_error(exc, doc, NumbersFile)]
        raise ProblemList(problems) from None
    problems = []
    for name in model.accounts:
        try:
            check_name(name)
        except UserError as exc:
            problems.append(doc.problem(("accounts", name), f"accounts.{name}: {exc}", key=True))
    accounts = set(model.accounts) | (known_accounts or set())
    out: dict[str, FileNumber] = {}
    for key, entry in model.numbers.items():
        number = _file_number(doc, key, entry, accounts, problems)
        if number is None:
            continue
        if number.e164 in out:
            problems.append(
                doc.problem(
                    ("numbers", key),
                    f"numbers.{key}: the same number as another entry ({number.e164}); keep one",
                    key=True,
                )
            )
            continue
        out[number.e164] = number
    if problems:
        raise ProblemList(problems)
    return model.accounts, out


def _hint(problem: Problem) -> Problem:
    """The generic explainer cannot see through `numbers:` (a mapping keyed by number) to
    suggest the key meant; do it here."""
    dotted, _, rest = problem.message.partition(": ")
    parts = dotted.split(".")
    if rest == "unknown key" and len(parts) == 3 and parts[0] in ("numbers", "accounts"):
        model = NumberEntry if parts[0] == "numbers" else AccountEntry
        fields = list(model.model_fields)
        hint = did_you_mean(parts[2], fields) or f" (allowed here: {', '.join(fields)})"
        return Problem(problem.source, problem.line, problem.column, f"{dotted}: unknown key{hint}")
    return problem


def _file_number(
    doc: YamlDoc, key: str, entry: NumberEntry, accounts: set[str], problems: list[Problem]
) -> FileNumber | None:
    path = ("numbers", key)
    if not key.startswith("+"):
        # YAML reads an unquoted +3225551001 as the integer 3225551001 and drops the '+'.
        problems.append(
            doc.problem(
                path,
                f"numbers.{key}: write each number in E.164 inside quotes, "
                f'e.g. "+{key.lstrip("0")}": (YAML drops the + of an unquoted number)',
                key=True,
            )
        )
        return None
    ok = True
    try:
        e164 = parse_e164(key, geographic=True, field=f"numbers.{key}")
    except NumberError as exc:
        problems.append(doc.problem(path, str(exc), key=True))
        ok = False
        e164 = key
    if entry.account not in accounts:
        hint = did_you_mean(entry.account, accounts)
        problems.append(
            doc.problem(
                (*path, "account"),
                f"numbers.{key}.account: no account '{entry.account}'; declare it under "
                f"'accounts:' in this file or create it with 'flexvoice accounts create'{hint}",
            )
        )
        ok = False
    for fld, value, check in (
        ("flow", entry.flow, check_flow_name),
        ("prompt", entry.prompt, check_prompt_name),
    ):
        if value is not None:
            try:
                check(value, f"numbers.{key}.{fld}")
            except NumberError as exc:
                problems.append(doc.problem((*path, fld), str(exc)))
                ok = False
    return FileNumber(e164, entry.account, entry.flow, entry.prompt) if ok else None
