"""Configuration: defaults, overrides and every error path, with file/line/column."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexvoice.config import load_config
from flexvoice.errors import ProblemList
from tests.conftest import REPO, run_cli


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "flexvoice.yaml"
    p.write_text(text)
    return p


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ProblemList) as info:
        load_config(path, env or {})
    return [str(p) for p in info.value.problems]


def test_shipped_file_gives_the_documented_defaults() -> None:
    cfg = load_config(REPO / "flexvoice.yaml", {})
    assert cfg.http.host == "127.0.0.1" and cfg.http.port == 8080
    assert cfg.sip.edge.port == 5060 and cfg.sip.workers.base_port == 5070
    assert cfg.sip.workers.host == "127.0.0.1"
    assert cfg.storage.database == "var/flexvoice.db"
    assert cfg.storage.recordings == "var/recordings"
    assert cfg.redis.enabled is False
    assert cfg.sip.workers.drain_grace == 30.0
    assert cfg.path(cfg.storage.database) == REPO / "var" / "flexvoice.db"


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""), {})
    assert cfg.http.port == 8080 and cfg.base_dir == tmp_path


def test_environment_overrides_single_keys(tmp_path: Path) -> None:
    env = {
        "FLEXVOICE_HTTP__PORT": "8181",
        "FLEXVOICE_REDIS__ENABLED": "true",
        "FLEXVOICE_SIP__WORKERS__DRAIN_GRACE": "2m",
        "OTHER": "x",
    }
    cfg = load_config(write(tmp_path, "http: {host: 127.0.0.2}\n"), env)
    assert cfg.http.port == 8181 and cfg.http.host == "127.0.0.2"
    assert cfg.redis.enabled is True
    assert cfg.sip.workers.drain_grace == 120.0


def test_unknown_key_names_line_column_and_suggestion(tmp_path: Path) -> None:
    got = problems(write(tmp_path, "http:\n  host: 127.0.0.1\n  prot: 80\n"))
    assert got == [f"{tmp_path}/flexvoice.yaml:3:3: http.prot: unknown key; did you mean 'port'?"]


def test_unknown_section_lists_what_is_allowed(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, "zzz: 1\n"))
    assert msg.startswith(
        f"{tmp_path}/flexvoice.yaml:1:1: zzz: unknown key (allowed here: http, sip,"
    )


def test_bad_values_name_key_value_and_what_is_allowed(tmp_path: Path) -> None:
    text = "http:\n  port: 70000\nlogging:\n  level: loud\nsip:\n  workers:\n    drain_grace: 30\n"
    got = problems(write(tmp_path, text))
    f = f"{tmp_path}/flexvoice.yaml"
    assert f"{f}:2:9: http.port: must be at most 65535 (got 70000)" in got
    assert (
        f"{f}:4:10: logging.level: must be one of 'debug', 'info', 'warning' or 'error' "
        "(got 'loud')" in got
    )
    assert (
        f"{f}:7:18: sip.workers.drain_grace: a duration needs a unit, e.g. '5s', '2m' or '500ms' "
        "(got 30)" in got
    )
    assert len(got) == 3


def test_worker_count_and_calls_are_bounded(tmp_path: Path) -> None:
    got = problems(write(tmp_path, "sip:\n  workers: {count: 0, max_calls: 5}\n"))
    assert len(got) == 2
    assert any("sip.workers.count: must be at least 1 (got 0)" in m for m in got)
    # The pjsua2 wheel is built with PJSUA_MAX_CALLS = 4; more would be silently clamped.
    assert any("sip.workers.max_calls: must be at most 4 (got 5)" in m for m in got)


def test_yaml_syntax_error_has_position(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, "http:\n  port: [8080\n"))
    assert msg.startswith(f"{tmp_path}/flexvoice.yaml:3:1: YAML syntax:")


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, "http:\n  port: 1\n  port: 2\n"))
    assert (
        msg == f"{tmp_path}/flexvoice.yaml:3:3: YAML syntax: the key 'port' appears twice; keep one"
    )


def test_not_a_mapping(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, "- a\n- b\n"))
    assert "must be a mapping of sections" in msg


def test_env_typo_single_underscore_suggests_double(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, ""), {"FLEXVOICE_HTTP_PORT": "1"})
    assert msg == (
        "environment: FLEXVOICE_HTTP_PORT: no setting 'http_port'; "
        "did you mean FLEXVOICE_HTTP__PORT?"
    )


def test_env_bad_value_blames_the_variable(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, "http: {port: 8080}\n"), {"FLEXVOICE_HTTP__PORT": "abc"})
    assert msg == "environment: FLEXVOICE_HTTP__PORT: must be a whole number (got 'abc')"


def test_env_naming_a_section_is_refused(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, ""), {"FLEXVOICE_HTTP": "x"})
    assert "names a whole section" in msg


@pytest.mark.process
def test_missing_file_cli_one_line_nonzero(tmp_path: Path) -> None:
    r = run_cli("--config", str(tmp_path / "nope.yaml"), "serve")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "configuration file not found" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.process
def test_bad_config_cli_one_line_per_problem_and_nothing_starts(
    tmp_path: Path, tcp_port: int
) -> None:
    cfg = write(tmp_path, f"http: {{port: {tcp_port}, hots: x}}\n")
    r = run_cli("--config", str(cfg), "serve", timeout=20)
    assert r.returncode == 2
    col = len(f"http: {{port: {tcp_port}, ") + 1
    assert (
        r.stderr.strip()
        == f"flexvoice: {cfg}:1:{col}: http.hots: unknown key; did you mean 'host'?"
    )


@pytest.mark.process
def test_unknown_cli_option(tmp_path: Path) -> None:
    r = run_cli("serve", "--frobnicate")
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "flexvoice: error: unrecognized arguments: --frobnicate (see 'flexvoice --help')"
    )


def test_workers_host_must_be_an_address_of_this_machine(tmp_path: Path) -> None:
    """The edge sends to the workers at sip.workers.host: a name, 0.0.0.0 or another
    machine's address is refused with the setting's name."""
    for value, why in (
        ("edge.local", "is not an IP address"),
        ("0.0.0.0", "names no one address"),
        ("192.0.2.7", "is not an address of this machine"),
    ):
        got = problems(write(tmp_path, f"sip:\n  workers: {{host: {value}}}\n"))
        assert any("sip.workers.host" in m and why in m for m in got), (value, got)
    cfg = load_config(write(tmp_path, "sip:\n  workers: {host: 127.0.0.2}\n"), {})
    assert cfg.sip.workers.host == "127.0.0.2"
