"""sip/trunks.yaml: the shipped demo loads, mistakes are reported as file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexvoice.errors import ProblemList
from flexvoice.sip.trunks import load_trunks
from tests.conftest import REPO

GOOD = """\
trunks:
  carrier-a:
    proxy: 192.0.2.10
    transport: tcp
    source_addresses: [192.0.2.10, 198.51.100.0/28]
    username: acme
    password_env: ACME_SIP_PASSWORD
    codecs: [G722, PCMA]
    caller_id:
      default: "+3225550100"
      allowed: ["+32255501*"]
  carrier-b:
    proxy: localhost:5080
default_outbound: carrier-a
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trunks.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ProblemList) as info:
        load_trunks(write(tmp_path, text), {})
    return [str(p) for p in info.value.problems]


def test_shipped_demo_loads_and_points_at_loopback() -> None:
    trunks = load_trunks(REPO / "sip" / "trunks.yaml", {"FLEXVOICE_TRUNK_LOCAL_PASSWORD": "s3"})
    default = trunks.default
    assert default is not None and default.address == "127.0.0.1"
    assert default.password == "s3" and not trunks.warnings
    assert default.codecs == ("PCMA", "PCMU", "G722")


def test_full_trunk(tmp_path: Path) -> None:
    trunks = load_trunks(write(tmp_path, GOOD), {"ACME_SIP_PASSWORD": "pw"})
    a, b = trunks.get("carrier-a"), trunks.get("carrier-b")
    assert a is not None and b is not None and trunks.default is a
    assert a.uri == "sip:192.0.2.10:5060;transport=tcp" and a.password == "pw"
    assert "pw" not in repr(a)  # never in logs
    assert a.accepts_source("198.51.100.7") and not a.accepts_source("198.51.100.99")
    assert trunks.for_source("192.0.2.10") is a and trunks.for_source("203.0.113.1") is None
    assert a.caller_id_allowed("+3225550123") and not a.caller_id_allowed("+3226660000")
    assert a.caller_id_for("+3226660000") == "+3225550100"
    assert a.caller_id_for("+3225550177") == "+3225550177"
    # A name is resolved once, by the OS, at load; the source ACL defaults to that address.
    assert b.address == "127.0.0.1" and b.port == 5080 and b.accepts_source("127.0.0.1")
    assert b.caller_id_allowed("+15550000000")  # no rules: anything


def test_missing_password_variable_is_a_warning(tmp_path: Path) -> None:
    trunks = load_trunks(write(tmp_path, GOOD), {})
    a = trunks.get("carrier-a")
    assert a is not None and a.password is None
    assert [str(w) for w in trunks.warnings] == [
        f"{tmp_path}/trunks.yaml:7:19: warning: trunks.carrier-a.password_env: ACME_SIP_PASSWORD "
        "is not set; calls the carrier challenges will fail until it is exported"
    ]


def test_single_trunk_is_the_default(tmp_path: Path) -> None:
    trunks = load_trunks(write(tmp_path, "trunks:\n  only:\n    proxy: 192.0.2.1\n"), {})
    assert trunks.default is not None and trunks.default.name == "only"


def test_empty_file_means_no_trunks(tmp_path: Path) -> None:
    trunks = load_trunks(write(tmp_path, "trunks: {}\n"), {})
    assert len(trunks) == 0 and trunks.default is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "trunks:\n  a:\n    proxy: 192.0.2.1:99999\n",
            ":3:12: trunks.a.proxy: is not host[:port]",
        ),
        (
            "trunks:\n  a:\n    proxy: 192.0.2.1\n    codecs: [PCMA, opus]\n",
            ":4:20: trunks.a.codecs.1: must be one of 'PCMA', 'PCMU' or 'G722' (got 'opus')",
        ),
        (
            "trunks:\n  a:\n    proxy: 192.0.2.1\n    transprot: tcp\n",
            ":4:5: trunks.a.transprot: unknown key; did you mean 'transport'?",
        ),
        (
            "trunks:\n  a:\n    proxy: 192.0.2.1\n    source_addresses: [carrier.example]\n",
            ":4:23: trunks.a.source_addresses: 'carrier.example' is not an IP address",
        ),
        (
            "trunks:\n  a:\n    proxy: 192.0.2.1\ndefault_outbound: b\n",
            ":4:19: default_outbound: no trunk named 'b' (trunks: a)",
        ),
        (
            "trunks:\n  a:\n    proxy: 192.0.2.1\n    username: u\n",
            ":4:15: trunks.a: a username needs password_env",
        ),
        (
            "trunks:\n  a:\n    proxy: 192.0.2.1\n    caller_id: {default: '12'}\n",
            ":4:26: trunks.a.caller_id.default: is not an E.164 number such as "
            "'+3221234567' (got '12')",
        ),
        (
            "trunks:\n  a:\n    proxy: 192.0.2.1\n"
            "    caller_id: {default: '+3225550100', allowed: ['+33*']}\n",
            ":4:26: trunks.a.caller_id.default: +3225550100 matches none of caller_id.allowed",
        ),
        (
            "trunks:\n  a:\n    proxy: 192.0.2.1\n    caller_id: {allowed: ['+32 2*']}\n",
            "trunks.a.caller_id.allowed: '+32 2*' is not a caller-ID pattern",
        ),
    ],
)
def test_mistakes_are_positioned(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    assert expected in found[0], found[0]
    assert found[0].startswith(f"{tmp_path}/trunks.yaml:"), found[0]
