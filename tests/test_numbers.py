from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flexvoice.accounts import create_account, set_status
from flexvoice.errors import ProblemList
from flexvoice.numbers import NumberError, NumberRegistry, parse_e164
from flexvoice.storage.sqlite import connect
from tests.conftest import REPO, run_cli


class ListSink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def record(self, event: dict[str, Any]) -> None:
        self.events.append(event)


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return connect(tmp_path / "db.sqlite")


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "numbers.yaml"
    p.write_text(text)
    return p


def test_demo_file_syncs_and_lookup_finds_national_and_e164_forms(
    conn: sqlite3.Connection,
) -> None:
    sink = ListSink()
    reg = NumberRegistry(conn, sink)
    counts = reg.sync_from_yaml(REPO / "sip" / "numbers.yaml")
    assert counts["added"] == 3
    n = reg.lookup("+3225551001")
    assert n is not None and n.account == "demo" and n.flow == "bakery-main"
    assert not n.suspended
    assert reg.lookup("02 555 10 01") == n
    assert reg.lookup("+3225559999") is None
    assert reg.lookup("garbage") is None
    assert [e["kind"] for e in sink.events] == ["number"] * 3
    assert all(e["active_to"] is None and e["account"] == "demo" for e in sink.events)
    # A second sync with the same file changes nothing and records nothing.
    assert reg.sync_from_yaml(REPO / "sip" / "numbers.yaml")["unchanged"] == 3
    assert len(sink.events) == 3


def test_suspended_account_is_visible_to_the_sip_layer(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    reg = NumberRegistry(conn)
    reg.sync_from_yaml(REPO / "sip" / "numbers.yaml")
    set_status(conn, "demo", "suspended")
    n = reg.lookup("+3225551002")
    assert n is not None and n.suspended


def test_sync_removes_file_numbers_and_closes_their_usage(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    sink = ListSink()
    reg = NumberRegistry(conn, sink)
    reg.sync_from_yaml(REPO / "sip" / "numbers.yaml")
    opened = {e["number"]: e for e in sink.events}
    smaller = write(
        tmp_path,
        'accounts: {demo: {}}\nnumbers:\n  "+3225551001": {account: demo, flow: support}\n',
    )
    counts = reg.sync_from_yaml(smaller)
    assert counts == {"added": 0, "updated": 1, "removed": 2, "unchanged": 0}
    closed = [e for e in sink.events if e["active_to"] is not None]
    assert {e["number"] for e in closed} == {"+3225551002", "+3225551003"}
    for e in closed:  # same id as the opening event: the metering store closes that period
        assert e["id"] == opened[e["number"]]["id"]
        assert e["active_from"] == opened[e["number"]]["active_from"]
    n = reg.lookup("+3225551001")
    assert n is not None and n.flow == "support"


def test_file_errors_are_positioned(conn: sqlite3.Connection, tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        "accounts: {demo: {}}\n"
        "numbers:\n"
        '  "+32475123456": {account: demo, flow: support}\n'  # mobile, not geographic
        "  +3225551001: {account: demo, flow: support}\n"  # unquoted: YAML drops the +
        '  "+3225551002": {account: dmeo, flow: support}\n'
        '  "+3225551003": {account: demo, flow: support, prompt: x}\n'
        '  "+3225551004": {account: demo, flwo: support}\n',
    )
    with pytest.raises(ProblemList) as err:
        NumberRegistry(conn).sync_from_yaml(bad)
    text = str(err.value)
    assert "numbers.yaml:7:34: numbers.+3225551004.flwo: unknown key; did you mean 'flow'?" in text
    assert "numbers.yaml:6:18: numbers.+3225551003: give exactly one of" in text
    # The model errors stop first; fix them and the number-level checks report.
    fixed = write(tmp_path, "\n".join(bad.read_text().splitlines()[:5]) + "\n")
    with pytest.raises(ProblemList) as err:
        NumberRegistry(conn).sync_from_yaml(fixed)
    lines = [line.removeprefix(str(tmp_path) + "/") for line in str(err.value).splitlines()]
    assert lines[0].startswith("numbers.yaml:3:3: numbers.+32475123456: +32475123456 is not a")
    assert "geographic" in lines[0]
    assert lines[1].startswith("numbers.yaml:4:3: numbers.3225551001: write each number in E.164")
    assert lines[2].startswith(
        "numbers.yaml:5:28: numbers.+3225551002.account: no account 'dmeo'; declare it"
    )
    assert lines[2].endswith("did you mean 'demo'?")
    assert len(lines) == 3
    # An invalid file changes nothing.
    assert NumberRegistry(conn).list() == []


def test_put_delete_and_ownership(conn: sqlite3.Connection) -> None:
    sink = ListSink()
    reg = NumberRegistry(conn, sink)
    reg.sync_from_yaml(REPO / "sip" / "numbers.yaml")
    create_account(conn, "bakery", "flexio-payu")
    n, created = reg.put("+3226001234", "bakery", "bakery-main")
    assert created and n.source == "api"
    assert sink.events[-1]["number"] == "+3226001234" and sink.events[-1]["active_to"] is None
    n, created = reg.put("+3226001234", "bakery", None, prompt="closed")
    assert not created and n.prompt == "closed" and n.flow is None
    assert len(sink.events) == 4  # changing the flow is not a new usage period
    with pytest.raises(NumberError) as e:
        reg.put("+3226001234", "demo", "support")
    assert e.value.code == "not-available" and "account" not in str(e.value)
    with pytest.raises(NumberError) as e:
        reg.put("+3225551001", "demo", "support")
    assert e.value.code == "managed-by-file"
    with pytest.raises(NumberError) as e:
        reg.delete("+3225551001")
    assert e.value.code == "managed-by-file"
    with pytest.raises(NumberError) as e:
        reg.delete("+3226001234", account="demo")
    assert e.value.code == "not-found"
    with pytest.raises(NumberError) as e:
        reg.put("+3226001235", "ghost", "x")
    assert e.value.code == "unknown-account"
    reg.delete("+3226001234", account="bakery")
    assert reg.lookup("+3226001234") is None
    assert sink.events[-1]["active_to"] is not None
    assert [n.e164 for n in reg.list("bakery")] == []
    assert len(reg.list("demo")) == 3


def test_continuity_switch(conn: sqlite3.Connection) -> None:
    reg = NumberRegistry(conn)
    reg.sync_from_yaml(REPO / "sip" / "numbers.yaml")
    assert reg.continuity_for("+3225551001") is None
    with pytest.raises(NumberError, match="needs a number to forward to"):
        reg.set_continuity("+3225551001", None, True)
    with pytest.raises(NumberError, match=r"write it in E.164: \+32475123456"):
        reg.set_continuity("+3225551001", "0475 12 34 56", True)  # national: not guessed
    n = reg.set_continuity("+3225551001", "+32475123456", True)
    assert n.continuity_target == "+32475123456"
    assert reg.continuity_for("+3225551001") == ("+32475123456", True)
    reg.set_continuity("+3225551001", None, False)
    assert reg.continuity_for("+3225551001") == ("+32475123456", False)
    reg.set_continuity("+3225551001", None, True)  # back on: the last target is kept
    assert reg.continuity_for("+3225551001") == ("+32475123456", True)
    with pytest.raises(NumberError, match="not a valid number"):
        reg.set_continuity("+3225551001", "+3212", True)
    with pytest.raises(NumberError, match="no number"):
        reg.set_continuity("+3225551001", None, True, account="other")


def test_parse_e164() -> None:
    assert parse_e164("+3225551001", geographic=True) == "+3225551001"
    # One rule (flexvoice/e164.py): a national form is refused, with the E.164 form to write.
    with pytest.raises(
        NumberError, match=r"'02 555 10 01' is not an E.164 number; write it in E.164: \+3225551001"
    ):
        parse_e164("02 555 10 01", geographic=True)
    with pytest.raises(NumberError, match=r"not an E\.164 number; write"):
        parse_e164("hello")


@pytest.mark.process
def test_cli_add_list_continuity_remove(tmp_path: Path) -> None:
    db = str(tmp_path / "db.sqlite")
    base = ("--db", db)
    r = run_cli("numbers", "list", *base)
    assert r.returncode == 0, r.stderr
    assert "+3225551001  account=demo  flow=bakery-main  (numbers.yaml)" in r.stdout
    r = run_cli("numbers", "add", "+3226001234", "--account", "demo", "--flow", "support", *base)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("added +3226001234")
    r = run_cli(
        "numbers", "continuity", "+3226001234", "--forward-to", "+32475123456", "--on", *base
    )
    assert r.returncode == 0 and "continuity=on->+32475123456" in r.stdout, r.stderr
    r = run_cli("numbers", "remove", "+3225551001", *base)
    assert r.returncode == 2
    assert "managed in sip/numbers.yaml" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("numbers", "add", "+32475123456", "--account", "demo", "--flow", "x", *base)
    assert r.returncode == 2 and "not a geographic" in r.stderr
    r = run_cli("numbers", "remove", "+3226001234", *base)
    assert r.returncode == 0 and "removed +3226001234" in r.stdout
    r = run_cli("numbers", "list", "--account", "nobody", *base)
    assert r.stdout.strip() == "no numbers for account 'nobody'"
    # The added number's monthly charge runs from its addition to its removal (one event,
    # opened then closed), next to the numbers.yaml ones that are still active.
    month = datetime.now(ZoneInfo("Europe/Brussels")).strftime("%Y-%m")
    r = run_cli("usage", "export", "--month", month, "--detail", "--format", "json", *base)
    assert r.returncode == 0, r.stderr
    rows = [row for row in json.loads(r.stdout) if row["service"] == "number"]
    added = [row for row in rows if "+3226001234" in row["event_id"]]
    assert len(added) == 1 and len(rows) == 4, rows
