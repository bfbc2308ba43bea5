"""58 broken copies of a node's files (issue 12, item 8): each is one mistake an operator or a
business owner makes, and `flexvoice check` (run in-process here: `check_node`, after the
configuration loads) must name it with file:line:col, never crash or pass it silently. The
issue's own findings (a tariff date 2024-13-45, a NUL byte, a number's flow `suport-line`,
...) are among them; the CLI's exit status is tested in tests/test_hostile_config.py."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from flexvoice.check_cli import check_node
from flexvoice.config import load_config
from flexvoice.errors import Problem, ProblemList
from tests.conftest import REPO, write_node_config

pytestmark = pytest.mark.slow  # a copy of the node's folders and a full check per case

CONFIG = "flexvoice.yaml"
NUMBERS = "sip/numbers.yaml"
TRUNKS = "sip/trunks.yaml"
TARIFF = "metering/tariffs/flexio-payu.yaml"
FLOW = "flows/bakery.yaml"

# (file, text to find, replacement): 58 mistakes.
CASES: list[tuple[str, str, str]] = [
    # flexvoice.yaml
    (CONFIG, "http: {", "htpp: {"),
    (CONFIG, "http: {host: 127.0.0.1, port: ", "http: {host: 127.0.0.1, port: x"),
    (CONFIG, "http: {host: 127.0.0.1, port: ", "http: {host: 127.0.0.1, port: 7"),
    (CONFIG, "workers: {count: ", "workers: {count: -"),
    (CONFIG, "workers: {count: ", "workers: {count: lots"),
    (CONFIG, "drain_grace: 2s", "drain_grace: two seconds"),
    (CONFIG, "sip:\n", "sip:\n\t"),
    (CONFIG, "http: {", "http: [{"),
    (CONFIG, "storage: {", "storage: {database: a.db, database: b.db, "),
    (CONFIG, "paths:", "logging: {level: in\0fo}\npaths:"),
    (CONFIG, "paths:", "logging: {level: loud}\npaths:"),
    (CONFIG, "sip:\n", "sip:\n  edge: {port: 5060}\n  edge: {port: 5061}\n"),
    # sip/numbers.yaml
    (NUMBERS, "flow: support-line", "flow: suport-line"),
    (NUMBERS, "prompt: welcome", "prompt: welcom"),
    (NUMBERS, "tariff: flexio-payu", "tariff: nope"),
    (NUMBERS, '"+3225551001":', "+3225551001:"),
    (NUMBERS, '"+3225551001":', '"025551001":'),
    (NUMBERS, '"+3225551001":', '"+32abc":'),
    (NUMBERS, "account: demo\n    flow: bakery-main", "account: nobody\n    flow: bakery-main"),
    (NUMBERS, "flow: bakery-main", "flow: bakery-main\n    prompt: welcome"),
    (NUMBERS, "    account: demo\n    flow: bakery-main", "    flow: bakery-main"),
    (NUMBERS, "description: Bakery", "descripton: Bakery"),
    (NUMBERS, "numbers:\n", "numbers:\n\t"),
    (NUMBERS, "accounts:", "accounts: ["),
    # sip/trunks.yaml
    (TRUNKS, "source_addresses: [", "source_addresses: [0.0.0.0/0, "),
    (TRUNKS, "source_addresses: [127.0.0.1]", "source_addresses: [300.1.2.3]"),
    (TRUNKS, "proxy: 127.0.0.1:5090", "proxy: 127.0.0.1:99999"),
    (TRUNKS, "proxy: 127.0.0.1:5090", "proxy: ''"),
    (TRUNKS, "transport: udp", "transport: carrier-pigeon"),
    (TRUNKS, "codecs: [PCMA, PCMU, G722]", "codecs: [OPUS]"),
    (TRUNKS, 'default: "+3225550100"', 'default: "0025550100"'),
    (TRUNKS, 'allowed: ["+32255501??"]', "allowed: +32255501"),
    (TRUNKS, "default_outbound: local-carrier", "default_outbound: lokal-carrier"),
    (TRUNKS, "password_env: FLEXVOICE_TRUNK_LOCAL_PASSWORD", "password: hunter2"),
    (TRUNKS, "trunks:\n", "trunks:\n\t"),
    # metering/tariffs/flexio-payu.yaml
    (TARIFF, "valid_from: ", "valid_from: 2024-13-45  # "),
    (TARIFF, "destinations: [BE mobile", "destinations: [XX mobile"),
    (TARIFF, 'vat_rate: "0.21"', 'vat_rate: "2"'),
    (TARIFF, 'vat_rate: "0.21"', "vat_rate: 21%"),
    (TARIFF, 'price: "0.37"', 'price: "-0.37"'),
    (TARIFF, 'price: "0.37"', "price: cheap"),
    (TARIFF, 'price: "0.37"', "price: 0.37"),
    (TARIFF, "unit: minute", "unit: fortnight"),
    (TARIFF, "applies_to: outbound_call", "applies_to: outbound_calls"),
    (TARIFF, "increments: {first: 60, next: 60}", "increments: {first: 60, next: 0}"),
    (TARIFF, "currency: EUR", "currency: euro"),
    (TARIFF, "name: flexio-payu", "name: [flexio]"),
    # flows/bakery.yaml
    (FLOW, "start: check_hours", "start: chek_hours"),
    (FLOW, "when_closed: closed", "when_closed: clossed"),
    (FLOW, 'mon-fri: "08:30-18:00"', 'mon-fri: "18:00-08:30x"'),
    (FLOW, "timezone: Europe/Brussels", "timezone: Europe/Brusels"),
    (FLOW, 'closed_days: ["2026-12-25"', 'closed_days: ["2026-02-30"'),
    (FLOW, '"1": orders', '"11": orders'),
    (FLOW, "timeout: 5s", "timeout: forever"),
    (FLOW, 'targets: ["+3226009999"', "targets: [+3226009999"),
    (FLOW, "strategy: sequential", "strategy: random"),
    (FLOW, "  menu:\n    menu:", "  menu:\n\tmenu:"),
    (FLOW, "prompt: welcome_menu", "prompt: {say: Welcome}"),
]
assert len(CASES) == 58


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node's folders, copied once; each case works on its own copy of one file."""
    root = tmp_path_factory.mktemp("node")
    for folder in ("flows", "metering", "sip"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "ivr_prompts").symlink_to(REPO / "ivr_prompts")
    config = write_node_config(root)
    text = config.read_text()
    for folder in ("flows", "metering/tariffs", "sip/trunks.yaml", "sip/numbers.yaml"):
        text = text.replace(f"{REPO}/{folder}", f"{root}/{folder}")
    config.write_text(text)
    cfg = load_config(config, environ={})
    problems, _files = check_node(cfg)
    assert [p for p in problems if p.severity == "error"] == [], problems
    return root


def problems_of(root: Path) -> list[Problem]:
    try:
        cfg = load_config(root / CONFIG, environ={})
    except ProblemList as exc:
        return exc.problems
    return [p for p in check_node(cfg)[0] if p.severity == "error"]


@pytest.mark.parametrize(("file", "find", "put"), CASES, ids=[f"{f}:{p!r}" for f, _, p in CASES])
def test_a_broken_copy_is_named_with_its_place(
    pristine: Path, file: str, find: str, put: str
) -> None:
    path = pristine / file
    original = path.read_text()
    assert find in original, f"{file} has no {find!r} to break"
    path.write_text(original.replace(find, put, 1))
    try:
        found = problems_of(pristine)
    finally:
        path.write_text(original)
    assert found, f"{file}: {put!r} was accepted"
    mine = [p for p in found if p.source == str(path)]
    assert mine, f"the problem is not reported against {path}: {found}"
    for p in mine:
        assert p.line > 0 and p.column > 0, f"no line:column: {p}"
        assert not re.search(r"Traceback|\.str\b|list\[str\]|function-after", str(p)), str(p)
