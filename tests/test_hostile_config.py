"""Broken copies of a node's files (issue 12): each mistake named with file:line:col and the
fix, never an internal error; `flexvoice check` checks them all at once, exit 0 or 1; the
flow validator speaks to business owners, not in pydantic's type names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flexvoice.flows.validate import validate_text
from flexvoice.metering.events import EventError, parse_event
from tests.conftest import REPO, run_cli, write_node_config

# `flexvoice check` runs as users run it, a real CLI process.
cli = pytest.mark.process


def node_copy(tmp_path: Path) -> Path:
    """A node whose data folders are copies, so they can be broken."""
    for folder in ("flows", "ivr_prompts", "metering", "sip"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    config = write_node_config(tmp_path)
    text = config.read_text()
    for folder in (
        "flows",
        "ivr_prompts",
        "metering/tariffs",
        "sip/trunks.yaml",
        "sip/numbers.yaml",
    ):
        text = text.replace(f"{REPO}/{folder}", f"{tmp_path}/{folder}")
    config.write_text(text)
    return config


@cli
def test_check_passes_on_the_demo_node_and_names_every_cross_file_mistake(
    tmp_path: Path,
) -> None:
    config = node_copy(tmp_path)
    proc = run_cli("--config", str(config), "check")
    assert proc.returncode == 0, proc.stderr
    assert "0 error(s)" in proc.stdout
    numbers = tmp_path / "sip" / "numbers.yaml"
    text = numbers.read_text()
    assert "flow: support-line" in text and "prompt: welcome" in text
    text = text.replace("flow: support-line", "flow: suport-line", 1)
    text = text.replace("prompt: welcome", "prompt: welcom", 1)
    text = text.replace("tariff: flexio-payu", "tariff: nope", 1)
    numbers.write_text(text)
    tariff = tmp_path / "metering" / "tariffs" / "flexio-payu.yaml"
    t = tariff.read_text()
    assert "vat_rate:" in t
    tariff.write_text(t.replace("vat_rate: ", 'vat_rate: "2"  # was ', 1))
    trunks = tmp_path / "sip" / "trunks.yaml"
    tr = trunks.read_text()
    assert "source_addresses:" in tr
    trunks.write_text(tr.replace("source_addresses: [", "source_addresses: [0.0.0.0/0, ", 1))
    proc = run_cli("--config", str(config), "check")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = proc.stderr
    assert f"{numbers}:" in err and "flow: no valid flow 'suport-line'" in err, err
    assert "did you mean 'support-line'?" in err
    assert "prompt: no prompt 'welcom'" in err
    assert "tariff: no tariff 'nope'" in err
    assert "vat_rate: is a fraction" in err and "write 0.21 for 21 %" in err
    assert "0.0.0.0/0' lets every address" in err and "allow_any_source: true" in err
    for line in err.splitlines():
        where = line.split(": ", 1)[0]
        assert where.count(":") >= 2, f"no line:column in {line!r}"


@cli
@pytest.mark.parametrize(
    ("original", "broken", "expected"),
    [
        ("valid_from: ", "valid_from: 2024-13-45  # ", "'2024-13-45' is not a real date"),
        ("destinations: [BE mobile", "destinations: [XX mobile", "'XX' is not a country code"),
    ],
)
def test_tariff_mistakes_are_positioned(
    tmp_path: Path, original: str, broken: str, expected: str
) -> None:
    config = node_copy(tmp_path)
    tariff = tmp_path / "metering" / "tariffs" / "flexio-payu.yaml"
    text = tariff.read_text()
    if original not in text:
        pytest.fail(f"the demo tariff has no {original!r} to break")
    tariff.write_text(text.replace(original, broken, 1))
    proc = run_cli("--config", str(config), "check")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{tariff}:" in proc.stderr and expected in proc.stderr, proc.stderr


@cli
def test_a_nul_byte_in_the_config_is_a_positioned_error_not_a_crash(tmp_path: Path) -> None:
    config = node_copy(tmp_path)
    config.write_text(config.read_text() + "logging: {level: in\0fo}\n")
    proc = run_cli("--config", str(config), "check")
    assert proc.returncode == 2, proc.stderr  # a user error (70 was an internal error)
    assert "NUL character" in proc.stderr and f"{config}:" in proc.stderr


def test_flow_messages_speak_to_business_owners() -> None:
    flow = (
        "flow: x\nstart: m\nsteps:\n  m:\n    menu:\n      prompt: {say: 'Welcome'}\n"
        "      options: {'1': t}\n  t:\n    dial:\n      targets: [+3216001122]\n"
    )
    messages = [p.message for p in validate_text(flow, "f.yaml", None).problems]
    text = "\n".join(messages)
    assert "spoken text goes in 'say:' beside 'prompt:'" in text, text
    assert "the + was lost; put the number in quotes" in text, text
    for internal in (".str", "list[str]", "function-after", "function-wrap"):
        assert internal not in text, text
    tabbed = validate_text("flow: x\nstart: m\nsteps:\n\tm: {hangup: {}}\n", "f.yaml", None)
    assert "indent with spaces, not tabs" in tabbed.problems[0].message


def test_period_events_take_plain_dates_in_brussels() -> None:
    event = parse_event(
        {
            "id": "n1",
            "account": "bakery",
            "kind": "number",
            "number": "+3226001234",
            "active_from": "2026-11-30",
            "active_to": "2026-11-30",
        }
    )
    # That calendar day in Brussels, active_to inclusive: until the next midnight.
    assert event.at.isoformat() == "2026-11-30T00:00:00+01:00"
    assert event.until is not None and event.until.isoformat() == "2026-12-01T00:00:00+01:00"
    with pytest.raises(EventError, match="is not a date"):
        parse_event(
            {
                **json.loads('{"id": "n2", "account": "b", "kind": "designer"}'),
                "active_from": "2026-13-01",
                "active_to": None,
            }
        )
