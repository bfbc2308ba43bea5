"""Syncing sip/numbers.yaml into the numbers table at start: the file owns the numbers it lists,
so the sync adds, updates and removes them to match it, and leaves the API's numbers alone."""

from __future__ import annotations

from pathlib import Path

from flexvoice.accounts import create_account
from flexvoice.accounts import ensure_schema as ensure_accounts_schema
from flexvoice.logs import get_logger
from flexvoice.numbers.table import insert, now, remove, transaction
from flexvoice.numbers.usage import UsageSink
from flexvoice.numbers.yamlfile import read_numbers_file
from flexvoice.storage.engine import Connection

log = get_logger("flexvoice.numbers")


def sync_from_yaml(conn: Connection, sink: UsageSink | None, path: Path) -> dict[str, int]:
    """Make the file-owned numbers match `path`; returns counts of what changed.
    Raises ProblemList (positioned) and changes nothing when the file is invalid."""
    ensure_accounts_schema(conn)
    known = {r[0] for r in conn.execute("SELECT name FROM accounts")}
    accounts, wanted = read_numbers_file(path, known)
    for name, entry in accounts.items():
        if name not in known:
            create_account(conn, name, entry.tariff)
            log.info("account.created_from_numbers_file", account=name, tariff=entry.tariff)
    counts = {"added": 0, "updated": 0, "removed": 0, "unchanged": 0}
    when = now()
    with transaction(conn, sink) as events:
        rows = conn.execute("SELECT e164, account, flow, prompt, source FROM numbers").fetchall()
        current = {r[0]: r for r in rows}
        for e164, fn in wanted.items():
            row = current.get(e164)
            if row is None:
                events.append(insert(conn, e164, fn.account, fn.flow, fn.prompt, "yaml", when))
                counts["added"] += 1
            elif row[1] != fn.account:
                # Moving a number between accounts ends one usage period, starts another.
                events.append(remove(conn, e164))
                events.append(insert(conn, e164, fn.account, fn.flow, fn.prompt, "yaml", when))
                counts["updated"] += 1
            elif (row[2], row[3], row[4]) != (fn.flow, fn.prompt, "yaml"):
                conn.execute(
                    "UPDATE numbers SET flow = ?, prompt = ?, source = 'yaml', updated_at = ?"
                    " WHERE e164 = ?",
                    (fn.flow, fn.prompt, when, e164),
                )
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        for e164, row in current.items():
            if row[4] == "yaml" and e164 not in wanted:
                events.append(remove(conn, e164))
                counts["removed"] += 1
    log.info("numbers.synced", file=str(path), **counts)
    return counts
