"""The number registry: reads (the SIP layer's `lookup()` on every INVITE) and the API's and
CLI's writes (put, delete, Voice Continuity), with the reasons a write is refused."""

from __future__ import annotations

import builtins
from pathlib import Path

from flexvoice import e164 as e164_rule
from flexvoice.accounts import get_account
from flexvoice.logs import get_logger
from flexvoice.numbers.rules import NumberError, check_flow_name, check_prompt_name, parse_e164
from flexvoice.numbers.sync import sync_from_yaml
from flexvoice.numbers.table import (
    SELECT,
    Number,
    ensure_schema,
    insert,
    now,
    remove,
    row_number,
    transaction,
)
from flexvoice.numbers.usage import UsageSink
from flexvoice.storage.engine import Connection
from flexvoice.storage.readcache import ReadCache

log = get_logger("flexvoice.numbers")


class NumberRegistry:
    """Numbers, beside the accounts (SQLite, or PostgreSQL shared by several nodes). Methods
    are synchronous and quick (one indexed query each), so the asyncio control plane calls
    them directly."""

    def __init__(self, conn: Connection, usage_sink: UsageSink | None = None):
        self.conn = conn
        self.usage_sink = usage_sink
        # Every INVITE looks its number up (and the flow runtime again, for continuity).
        self._routes: ReadCache[str, Number | None] = ReadCache(conn)
        ensure_schema(conn)

    # -- reads

    def lookup(self, number: str) -> Number | None:
        """The number an INVITE is for (E.164, or a national form), or None (answer 404)."""
        return self._routes.get(number, self._lookup)

    def _lookup(self, number: str) -> Number | None:
        e164 = number if e164_rule.is_e164(number) else self._normalize(number)
        if e164 is None:
            return None
        row = self.conn.execute(f"{SELECT} WHERE n.e164 = ?", (e164,)).fetchone()
        return row_number(row) if row else None

    @staticmethod
    def _normalize(number: str) -> str | None:
        # Lookups take numbers as the network sends them (national callees included).
        return e164_rule.from_network(number)

    def list(self, account: str | None = None) -> builtins.list[Number]:
        if account is None:
            rows = self.conn.execute(f"{SELECT} ORDER BY n.e164").fetchall()
        else:
            rows = self.conn.execute(
                f"{SELECT} WHERE n.account = ? ORDER BY n.e164", (account,)
            ).fetchall()
        return [row_number(r) for r in rows]

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
        when = now()
        with transaction(self.conn, self.usage_sink) as events:
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
                    (flow, prompt, when, e164),
                )
                created = False
            else:
                events.append(insert(self.conn, e164, account, flow, prompt, "api", when))
                created = True
        log.info("number.put", number=e164, account=account, flow=flow, prompt=prompt)
        result = self.lookup(e164)
        assert result is not None
        return result, created

    def delete(self, number: str, account: str | None = None) -> Number:
        """Remove the number (only from `account` when given); ends its monthly usage."""
        e164 = parse_e164(number)
        with transaction(self.conn, self.usage_sink) as events:
            row = self.conn.execute(f"{SELECT} WHERE n.e164 = ?", (e164,)).fetchone()
            if row is None or (account is not None and row[1] != account):
                raise NumberError("not-found", f"no number {e164} in this account", "number")
            current = row_number(row)
            if current.source == "yaml":
                raise _managed_by_file(e164)
            events.append(remove(self.conn, e164))
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
        with transaction(self.conn, self.usage_sink):
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
                (target, int(active), now(), e164),
            )
        log.info("number.continuity", number=e164, forward_to=target, active=active)
        result = self.lookup(e164)
        assert result is not None
        return result

    def sync_from_yaml(self, path: Path) -> dict[str, int]:
        """Make the file-owned numbers match `path` (flexvoice/numbers/sync.py)."""
        return sync_from_yaml(self.conn, self.usage_sink, path)


def _managed_by_file(e164: str) -> NumberError:
    return NumberError(
        "managed-by-file",
        f"{e164} is managed in sip/numbers.yaml by the operator; change it there "
        "(Voice Continuity can still be switched through the API)",
        "number",
    )
