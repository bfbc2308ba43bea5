"""`flexvoice flows simulate | render | schema` and `flexvoice prompts build`, as users run them."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.process  # the CLI, a node or Redis as real processes


def test_simulate_closed_evening_goes_to_voicemail() -> None:
    proc = run_cli(
        "flows",
        "simulate",
        "flows/bakery.yaml",
        "--at",
        "2026-12-24T19:00+01:00",
        "--caller",
        "+32470123456",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "simulating bakery-main (flows/bakery.yaml) at 2026-12-24T19:00:00+01:00, "
        "caller +32470123456"
    )
    steps = [line.split()[1] for line in lines[1:] if line[:6].strip() and "<-" in line]
    assert steps == ["check_hours", "closed", "voicemail", "bye", "hangup"]
    assert "closed: Thu 2026-12-24 19:00 Europe/Brussels is outside mon-fri opening hours" in (
        proc.stdout
    )
    assert lines[-1].endswith("call ended: hangup step (BYE)")


def test_simulate_digits_and_dial_failover() -> None:
    proc = run_cli(
        "flows",
        "simulate",
        "flows/bakery.yaml",
        "--at",
        "2026-12-24T10:00+01:00",
        "--digits",
        "9,1",
        "--dial",
        "busy,no-answer",
    )
    assert proc.returncode == 0, proc.stderr
    assert ". caller presses 9" in proc.stdout
    assert "<- digit 1" in proc.stdout
    assert (
        "+3226009999 busy (486 Busy Here); +32475123456 no-answer (487 ring_timeout) "
        "-> on_no_answer"
    ) in proc.stdout


def test_simulate_webhook_json_and_continuity(tmp_path: Path) -> None:
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps({"next": "vip", "variables": {"tier": "gold"}}))
    proc = run_cli(
        "flows",
        "simulate",
        "flows/bilingual.yaml",
        "--digits",
        "2",
        "--webhook-json",
        str(answer),
        "--dial",
        "486",
    )
    assert proc.returncode == 0, proc.stderr
    assert "<- webhook answered next=vip with tier=gold" in proc.stdout
    assert ". play fr/welcome_menu.wav" in proc.stdout
    proc = run_cli("flows", "simulate", "flows/continuity.yaml", "--continuity", "+32475123456")
    assert proc.returncode == 0, proc.stderr
    assert "Voice Continuity active: redirect to +32475123456" in proc.stdout
    assert ". redirect 302 to +32475123456" in proc.stdout


def test_simulate_refuses_bad_options_and_invalid_flows(tmp_path: Path) -> None:
    proc = run_cli("flows", "simulate", "flows/bakery.yaml", "--dial", "maybe")
    assert proc.returncode == 2
    assert "--dial: 'maybe' is not an outcome" in proc.stderr
    proc = run_cli("flows", "simulate", "flows/bakery.yaml", "--at", "2026-12-24T19:00")
    assert proc.returncode == 2
    assert "has no offset" in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: x\nstart: a\nsteps:\n  a: {dail: {}}\n")
    proc = run_cli("flows", "simulate", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:4:7: unknown verb 'dail'; did you mean 'dial'?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_simulate_exits_1_when_a_step_fails(tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text("flow: f\nstart: a\nsteps:\n  a:\n    webhook: {url: 'http://x.example/'}\n")
    proc = run_cli("flows", "simulate", str(flow))
    assert proc.returncode == 1
    assert "!! a failed: no --webhook-json given" in proc.stdout


def test_render_svg_and_dot(tmp_path: Path) -> None:
    out = tmp_path / "bakery.svg"
    proc = run_cli("flows", "render", "flows/bakery.yaml", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for text in ("check_hours", "when_closed", "on_no_answer", "voicemail"):
        assert text in svg
    proc = run_cli("flows", "render", "flows/support.yaml")
    assert proc.returncode == 0
    assert '"hunt" -> "wait" [label="on_busy"];' in proc.stdout
    proc = run_cli("flows", "render", "flows/support.yaml", "-o", str(tmp_path / "x.gif"))
    assert proc.returncode == 2
    assert "write .svg, .png, .pdf or .dot" in proc.stderr


def test_schema_command_prints_the_committed_schema() -> None:
    proc = run_cli("flows", "schema")
    assert proc.returncode == 0
    assert proc.stdout == (REPO / "flows" / "schema.json").read_text()


def test_prompts_build_makes_8khz_mono_wavs(tmp_path: Path) -> None:
    (tmp_path / "prompts.yaml").write_text(
        "languages: [nl, fr]\nprompts:\n  hi: {nl: Hallo, fr: Bonjour}\n"
        "mixed:\n  both: [{nl: Hallo}, {fr: Bonjour}]\ntones:\n  beep: synth 0.1 sine 1000\n"
    )
    proc = run_cli("prompts", "build", "--prompts", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for rel in ("nl/hi.wav", "fr/hi.wav", "both.wav", "beep.wav"):
        with wave.open(str(tmp_path / rel)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2), rel
            assert w.getnframes() > 400


def test_prompts_build_speaks_the_languages_the_texts_give(tmp_path: Path) -> None:
    # A business serving nl and fr writes no English: that is not an error.
    (tmp_path / "prompts.yaml").write_text("languages: [nl, fr, en]\nprompts:\n  hi: {nl: Hallo}\n")
    proc = run_cli("prompts", "build", "--prompts", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "nl" / "hi.wav").is_file()
    assert not (tmp_path / "en").exists() and not (tmp_path / "fr").exists()
    # A code outside `languages` is a typo until proven otherwise.
    (tmp_path / "prompts.yaml").write_text("languages: [nl, fr]\nprompts:\n  hi: {nll: Hallo}\n")
    proc = run_cli("prompts", "build", "--prompts", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"flexvoice: {tmp_path}/prompts.yaml:3:8: hi: language 'nll' is not in languages "
        "(nl, fr); add it there or correct the code; did you mean 'nl'?"
    )
