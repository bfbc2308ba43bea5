"""Tariff files and usage events that are wrong: each gives one clear, positioned message."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest

from flexvoice.errors import ProblemList
from flexvoice.metering.events import EventError, parse_event
from flexvoice.metering.tariffs import load_tariff, load_tariffs
from tests.metering_helpers import REPO, TARIFFS, call, make_store

GOOD = (TARIFFS / "flexio-payu.yaml").read_text()


def _tariff(tmp_path: Path, text: str, name: str = "flexio-payu") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ProblemList) as exc:
        load_tariff(path)
    return [str(p) for p in exc.value.problems]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_shipped_tariffs_load() -> None:
    book = load_tariffs(TARIFFS)
    assert list(book) == ["flexio-payu", "vms-smart-routing"]
    flexio = book["flexio-payu"].versions[0]
    found = flexio.find("outbound_call", "BE mobile")
    assert found is not None and found.service.price == Decimal("0.37")
    assert flexio.find("outbound_call", "BE premium_rate") is None
    assert book["flexio-payu"].vat_rate == Decimal("0.21")


def test_price_written_as_a_number_is_refused_with_its_position(tmp_path: Path) -> None:
    text = GOOD.replace('price: "0.37"', "price: 0.37")
    [problem] = _problems(_tariff(tmp_path, text))
    line = _line_of(text, "price: 0.37")
    assert problem.startswith(f"{tmp_path}/flexio-payu.yaml:{line}:")
    assert "write the amount as text in quotes" in problem


def test_unknown_key_gets_a_suggestion(tmp_path: Path) -> None:
    text = GOOD.replace("unit: set-up", "unitt: set-up")
    [*problems] = _problems(_tariff(tmp_path, text))
    assert any(f":{_line_of(text, 'unitt')}:" in p and "did you mean 'unit'" in p for p in problems)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('price: "0.0045"', 'price: "0.0000001"', "more than 6 decimals"),
        ('price: "0.095"', 'price: "-1"', "at least 0"),
        ("[BE fixed]", "[BE mobile]", "both price outbound_call to BE mobile"),
        ("[BE fixed]", "[Belgium fixed]", "must be a country code and a number type"),
        ("name: flexio-payu", "name: other", "must match the file name"),
        ("valid_from: 2024-01-01", "valid_from: someday", "valid_from"),
        (
            "unit: set-up\n",
            "unit: set-up\n        increments: {first: 60, next: 60}\n",
            "increments only",
        ),
    ],
)
def test_tariff_mistakes(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    problems = _problems(_tariff(tmp_path, GOOD.replace(old, new, 1)))
    assert any(message in p for p in problems), problems
    assert all(p.startswith(f"{tmp_path}/flexio-payu.yaml:") for p in problems)


def test_versions_must_be_in_order(tmp_path: Path) -> None:
    services = GOOD.partition("  - valid_from: 2024-01-01\n")[2]
    text = f"{GOOD}  - valid_from: 2023-06-01\n{services}"
    assert any("oldest first" in p for p in _problems(_tariff(tmp_path, text)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "fax"}, "kind: must be one of call, recording"),
        ({"direction": "sideways"}, "direction: must be 'inbound' or 'outbound'"),
        ({"started_at": "2024-03-05T10:00:00"}, "started_at: '2024-03-05T10:00:00' has no offset"),
        ({"ended_at": "2024-03-05T09:00:00+01:00"}, "ended_at: is before started_at"),
        ({"to": "0470123456"}, "to: '0470123456' is not an E.164 number"),
        ({"to": "+3290012"}, "is not a valid number"),
        ({"id": ""}, "id: must be non-empty text"),
        ({"answered_at": 5}, "answered_at: must be an ISO 8601 time"),
    ],
)
def test_bad_events_name_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(EventError) as exc:
        parse_event({**call("c", 60), **change})
    assert message in str(exc.value)


def test_missing_field_and_not_an_object() -> None:
    event = call("c", 60)
    del event["answered_at"]
    with pytest.raises(EventError, match="answered_at: required field is missing"):
        parse_event(event)
    with pytest.raises(EventError, match="must be a JSON object"):
        parse_event(["id"])


def test_unknown_account_is_rejected_with_its_line(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    report = store.ingest([call("a", 5), {**call("b", 5), "account": "nobody"}])
    [rejected] = report.rejected
    assert (rejected.line, rejected.event_id) == (2, "b:leg")
    assert "unknown account 'nobody'" in rejected.reason


def test_money_path_has_no_floats(tmp_path: Path) -> None:
    """No float literal, float() call or true division by a float anywhere in metering."""
    offenders = []
    # The sink only moves events (its float is a flush interval in seconds); all else prices.
    money_path = [p for p in (REPO / "flexvoice" / "metering").glob("*.py") if p.name != "sink.py"]
    assert len(money_path) >= 9
    for path in sorted(money_path):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, float):
                offenders.append(f"{path.name}:{node.lineno}: float literal {node.value}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "float":
                offenders.append(f"{path.name}:{node.lineno}: float()")
            if isinstance(node, ast.Attribute) and node.attr in {"fsum", "round"}:
                offenders.append(f"{path.name}:{node.lineno}: {node.attr}")
    assert offenders == []
    # And what comes out is Decimal all the way.
    store = make_store(tmp_path)
    store.ingest([call("a", 61)])
    for line in store.statement("2024-03"):
        for value in (line.quantity, line.unit_price, line.amount):
            assert value is None or type(value) is Decimal


def test_call_from_a_sip_uri_is_still_billed() -> None:
    caller = "sip:" + "a" * 120 + "@pbx.example.com"
    event = parse_event({**call("c", 60), "from": caller})
    assert event.destination == "BE mobile"
