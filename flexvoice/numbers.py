"""The number registry: which geographic numbers the node answers, for which account, and what
runs when one rings (a flow, or a prompt until flows exist), plus each number's Voice
Continuity switch.

The SIP layer calls `NumberRegistry.lookup()` on every INVITE (404 when it returns None, 403
when `Number.suspended`); the REST API and `flexvoice numbers` manage the same table.

Two ways a number gets here, and who owns it afterwards:
- `sip/numbers.yaml`, edited by the operator and synced at start (`sync_from_yaml`): the file
  owns those numbers. Syncing adds, updates and removes them to match the file; the API and the
  CLI refuse to change or delete them (409) so a restart never silently undoes an API edit.
- `put()` from the API or the CLI: owned by the database, left alone by the sync.
Voice Continuity is the customer's own switch and may be set on either kind.

Every activation period of a number is one `number` usage event (metering issue): adding a
number records it with `active_to: null`; removing it records the same event id again with
`active_to` set, which the metering store treats as closing that period.
"""

from __future__ import annotations

import builtins
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flexvoice import e164 as e164_rule
from flexvoice.accounts import check_name, create_account, get_account
from flexvoice.accounts import ensure_schema as ensure_accounts_schema
from flexvoice.errors import Problem, ProblemList, UserError
from flexvoice.logs import get_logger
from flexvoice.storage.sqlite import migrate
from flexvoice.yamlsrc import YamlDoc, load_yaml
from flexvoice.yamlwords import did_you_mean, explain_validation_error

log = get_logger(__name__)

# The one rule for a flow's name (the flows' model and the API use it too): short enough to be
# a file name everywhere.
FLOW_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
PROMPT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$")

MIGRATIONS = [
    """
    CREATE TABLE numbers (
        e164 TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        flow TEXT,
        prompt TEXT,
        source TEXT NOT NULL CHECK (source IN ('yaml', 'api')),
        forward_to TEXT,
        continuity_active INTEGER NOT NULL DEFAULT 0,
        active_from TEXT NOT NULL,
        usage_id TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        CHECK ((flow IS NULL) != (prompt IS NULL))
    );
    CREATE INDEX numbers_account ON numbers (account, e164);
    """
]


class UsageSink(Protocol):
    """Where usage events go (the metering issue's `flexvoice.metering.sink.UsageSink`)."""

    def record(self, event: dict[str, Any]) -> None: ...


class NumberError(UserError):
    """A number operation refused for a reason the caller can fix; `code` is stable for APIs."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code  # "invalid-number", "not-found", "conflict", "managed-by-file", ...
        self.field = field


@dataclass(frozen=True)
class Number:
    e164: str
    account: str
    flow: str | None
    prompt: str | None
    source: str  # "yaml" (sip/numbers.yaml owns it) or "api"
    forward_to: str | None
    continuity_active: bool
    active_from: str
    account_status: str  # "active", "suspended", or "missing" when the account was deleted

    @property
    def suspended(self) -> bool:
        """The SIP layer answers 403 to an INVITE for this number when true."""
        return self.account_status != "active"

    @property
    def continuity_target(self) -> str | None:
        """Where the next call goes instead of the flow, when Voice Continuity is switched on."""
        return self.forward_to if self.continuity_active and self.forward_to else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.e164,
            "account": self.account,
            "flow": self.flow,
            "prompt": self.prompt,
            "managed_by": "numbers.yaml" if self.source == "yaml" else "api",
            "continuity": {"forward_to": self.forward_to, "active": self.continuity_active},
            "active_from": self.active_from,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_e164(text: str, *, geographic: bool = False, field: str = "number") -> str:
    """`text` when it is a valid E.164 number (flexvoice/e164.py: national forms such as
    02 555 10 01 are refused, with the E.164 form to write), or a NumberError saying what is
    wrong. With `geographic`, mobile and special numbers are refused: only fixed-line numbers
    can be hosted on the platform."""
    try:
        parsed = e164_rule.parse(text)
    except e164_rule.NotE164 as exc:
        raise NumberError("invalid-number", f"{field}: {exc}", field) from None
    if not phonenumbers.is_valid_number(parsed):
        raise NumberError(
            "invalid-number",
            f"{field}: '{text}' is not a valid number (wrong length or unassigned range); "
            "write it in E.164, e.g. +3225551001",
            field,
        )
    e164 = text
    if geographic:
        kind = phonenumbers.number_type(parsed)
        fixed = (
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        )
        if kind not in fixed:
            raise NumberError(
                "invalid-number",
                f"{field}: {e164} is not a geographic (fixed-line) number; only geographic "
                "numbers such as +3225551001 (Brussels) can be hosted",
                field,
            )
    return e164


def check_flow_name(name: str, field: str = "flow") -> str:
    if not FLOW_NAME_RE.match(name):
        raise NumberError(
            "invalid-field",
            f"{field}: '{name}' is not a flow name; use lower-case letters, digits, '-' and '_' "
            "(the file flows/NAME.yaml)",
            field,
        )
    return name


def check_prompt_name(name: str, field: str = "prompt") -> str:
    if not PROMPT_NAME_RE.match(name) or ".." in name:
        raise NumberError(
            "invalid-field",
            f"{field}: '{name}' is not a prompt name; name a file in ivr_prompts/ without .wav",
            field,
        )
    return name


# ---- numbers.yaml -------------------------------------------------------------------------


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


# ---- the registry -------------------------------------------------------------------------


def ensure_schema(conn: sqlite3.Connection) -> None:
    ensure_accounts_schema(conn)
    migrate(conn, "numbers", MIGRATIONS)


_SELECT = (
    "SELECT n.e164, n.account, n.flow, n.prompt, n.source, n.forward_to, n.continuity_active,"
    " n.active_from, COALESCE(a.status, 'missing') FROM numbers n"
    " LEFT JOIN accounts a ON a.name = n.account"
)


def _row(row: sqlite3.Row | tuple[Any, ...]) -> Number:
    return Number(
        e164=row[0],
        account=row[1],
        flow=row[2],
        prompt=row[3],
        source=row[4],
        forward_to=row[5],
        continuity_active=bool(row[6]),
        active_from=row[7],
        account_status=row[8],
    )


class NumberRegistry:
    """Numbers in SQLite. Methods are synchronous and quick (one indexed query each), so the
    asyncio control plane calls them directly."""

    def __init__(self, conn: sqlite3.Connection, usage_sink: UsageSink | None = None):
        self.conn = conn
        self.usage_sink = usage_sink
        ensure_schema(conn)

    @contextmanager
    def _tx(self) -> Iterator[list[dict[str, Any]]]:
        """One write transaction; usage events are recorded only once it committed."""
        events: list[dict[str, Any]] = []
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield events
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        if self.usage_sink is not None:
            for event in events:
                self.usage_sink.record(event)

    # -- reads

    def lookup(self, number: str) -> Number | None:
        """The number an INVITE is for (E.164, or a national form), or None (answer 404)."""
        e164 = number if e164_rule.is_e164(number) else self._normalize(number)
        if e164 is None:
            return None
        row = self.conn.execute(f"{_SELECT} WHERE n.e164 = ?", (e164,)).fetchone()
        return _row(row) if row else None

    @staticmethod
    def _normalize(number: str) -> str | None:
        # Lookups take numbers as the network sends them (national callees included).
        return e164_rule.from_network(number)

    def list(self, account: str | None = None) -> builtins.list[Number]:
        if account is None:
            rows = self.conn.execute(f"{_SELECT} ORDER BY n.e164").fetchall()
        else:
            rows = self.conn.execute(
                f"{_SELECT} WHERE n.account = ? ORDER BY n.e164", (account,)
            ).fetchall()
        return [_row(r) for r in rows]

    def continuity_for(self, number: str) -> tuple[str, bool] | None:
        """(forward_to, active) when a continuity target was ever set for the number."""
        n = self.lookup(number)
        if n is None or n.forward_to is None:
            return None
        return n.forward_to, n.continuity_active

    # -- writes

    def put(
        self,
        number: str,
        account: str,
        flow: str | None = None,
        *,
        prompt: str | None = None,
    ) -> tuple[Number, bool]:
        """Add the number to `account` (or change what it runs); returns (number, created)."""
        e164 = parse_e164(number, geographic=True)
        if (flow is None) == (prompt is None):
            raise NumberError("invalid-field", "give exactly one of 'flow' or 'prompt'", "flow")
        if flow is not None:
            check_flow_name(flow)
        if prompt is not None:
            check_prompt_name(prompt)
        if get_account(self.conn, account) is None:
            raise NumberError(
                "unknown-account",
                f"no account '{account}'; create it with 'flexvoice accounts create {account}'",
                "account",
            )
        now = _now()
        with self._tx() as events:
            existing = self.conn.execute(
                "SELECT account, source FROM numbers WHERE e164 = ?", (e164,)
            ).fetchone()
            if existing is not None:
                if existing[0] != account:
                    # Said as for any number that cannot be had: whose it is, or that it is
                    # anyone's, is not this account's business.
                    raise NumberError(
                        "not-available",
                        f"{e164} is not available; choose another number",
                        "number",
                    )
                if existing[1] == "yaml":
                    raise _managed_by_file(e164)
                self.conn.execute(
                    "UPDATE numbers SET flow = ?, prompt = ?, updated_at = ? WHERE e164 = ?",
                    (flow, prompt, now, e164),
                )
                created = False
            else:
                usage_id = _usage_id(e164, now)
                self.conn.execute(
                    "INSERT INTO numbers (e164, account, flow, prompt, source, active_from,"
                    " usage_id, updated_at) VALUES (?, ?, ?, ?, 'api', ?, ?, ?)",
                    (e164, account, flow, prompt, now, usage_id, now),
                )
                events.append(_number_event(usage_id, account, e164, now, None))
                created = True
        log.info("number.put", number=e164, account=account, flow=flow, prompt=prompt)
        result = self.lookup(e164)
        assert result is not None
        return result, created

    def delete(self, number: str, account: str | None = None) -> Number:
        """Remove the number (only from `account` when given); ends its monthly usage."""
        e164 = parse_e164(number)
        with self._tx() as events:
            row = self.conn.execute(f"{_SELECT} WHERE n.e164 = ?", (e164,)).fetchone()
            if row is None or (account is not None and row[1] != account):
                raise NumberError("not-found", f"no number {e164} in this account", "number")
            current = _row(row)
            if current.source == "yaml":
                raise _managed_by_file(e164)
            events.append(self._remove(e164))
        log.info("number.removed", number=e164, account=current.account)
        return current

    def set_continuity(
        self, number: str, forward_to: str | None, active: bool, account: str | None = None
    ) -> Number:
        """Voice Continuity: with `active`, the next call to `number` goes to `forward_to`
        (kept when None and one was set before) instead of the flow."""
        e164 = parse_e164(number)
        target = parse_e164(forward_to, field="forward_to") if forward_to is not None else None
        if target is not None and target == e164:
            raise NumberError(
                "invalid-field", "forward_to: a number cannot forward to itself", "forward_to"
            )
        with self._tx():
            row = self.conn.execute(
                "SELECT account, forward_to FROM numbers WHERE e164 = ?", (e164,)
            ).fetchone()
            if row is None or (account is not None and row[0] != account):
                raise NumberError("not-found", f"no number {e164} in this account", "number")
            target = target or row[1]
            if active and target is None:
                raise NumberError(
                    "invalid-field",
                    "forward_to: switching continuity on needs a number to forward to",
                    "forward_to",
                )
            self.conn.execute(
                "UPDATE numbers SET forward_to = ?, continuity_active = ?, updated_at = ?"
                " WHERE e164 = ?",
                (target, int(active), _now(), e164),
            )
        log.info("number.continuity", number=e164, forward_to=target, active=active)
        result = self.lookup(e164)
        assert result is not None
        return result

    def sync_from_yaml(self, path: Path) -> dict[str, int]:
        """Make the file-owned numbers match `path`; returns counts of what changed.
        Raises ProblemList (positioned) and changes nothing when the file is invalid."""
        ensure_accounts_schema(self.conn)
        known = {r[0] for r in self.conn.execute("SELECT name FROM accounts")}
        accounts, wanted = read_numbers_file(path, known)
        for name, entry in accounts.items():
            if name not in known:
                create_account(self.conn, name, entry.tariff)
                log.info("account.created_from_numbers_file", account=name, tariff=entry.tariff)
        counts = {"added": 0, "updated": 0, "removed": 0, "unchanged": 0}
        now = _now()
        with self._tx() as events:
            rows = self.conn.execute(
                "SELECT e164, account, flow, prompt, source FROM numbers"
            ).fetchall()
            current = {r[0]: r for r in rows}
            for e164, fn in wanted.items():
                row = current.get(e164)
                if row is None:
                    usage_id = _usage_id(e164, now)
                    self.conn.execute(
                        "INSERT INTO numbers (e164, account, flow, prompt, source, active_from,"
                        " usage_id, updated_at) VALUES (?, ?, ?, ?, 'yaml', ?, ?, ?)",
                        (e164, fn.account, fn.flow, fn.prompt, now, usage_id, now),
                    )
                    events.append(_number_event(usage_id, fn.account, e164, now, None))
                    counts["added"] += 1
                elif row[1] != fn.account:
                    # Moving a number between accounts ends one usage period, starts another.
                    events.append(self._remove(e164))
                    usage_id = _usage_id(e164, now)
                    self.conn.execute(
                        "INSERT INTO numbers (e164, account, flow, prompt, source, active_from,"
                        " usage_id, updated_at) VALUES (?, ?, ?, ?, 'yaml', ?, ?, ?)",
                        (e164, fn.account, fn.flow, fn.prompt, now, usage_id, now),
                    )
                    events.append(_number_event(usage_id, fn.account, e164, now, None))
                    counts["updated"] += 1
                elif (row[2], row[3], row[4]) != (fn.flow, fn.prompt, "yaml"):
                    self.conn.execute(
                        "UPDATE numbers SET flow = ?, prompt = ?, source = 'yaml', updated_at = ?"
                        " WHERE e164 = ?",
                        (fn.flow, fn.prompt, now, e164),
                    )
                    counts["updated"] += 1
                else:
                    counts["unchanged"] += 1
            for e164, row in current.items():
                if row[4] == "yaml" and e164 not in wanted:
                    events.append(self._remove(e164))
                    counts["removed"] += 1
        log.info("numbers.synced", file=str(path), **counts)
        return counts

    def _remove(self, e164: str) -> dict[str, Any]:
        """Delete inside a transaction; returns the usage event that closes the period."""
        row = self.conn.execute(
            "SELECT account, active_from, usage_id FROM numbers WHERE e164 = ?", (e164,)
        ).fetchone()
        self.conn.execute("DELETE FROM numbers WHERE e164 = ?", (e164,))
        return _number_event(row[2], row[0], e164, row[1], _now())


def _managed_by_file(e164: str) -> NumberError:
    return NumberError(
        "managed-by-file",
        f"{e164} is managed in sip/numbers.yaml by the operator; change it there "
        "(Voice Continuity can still be switched through the API)",
        "number",
    )


def _usage_id(e164: str, active_from: str) -> str:
    # The random part keeps two periods started within the same second apart.
    return f"number:{e164}:{active_from}:{uuid.uuid4().hex[:8]}"


def _number_event(
    usage_id: str, account: str, e164: str, active_from: str, active_to: str | None
) -> dict[str, Any]:
    return {
        "id": usage_id,
        "account": account,
        "kind": "number",
        "number": e164,
        "active_from": active_from,
        "active_to": active_to,
    }
