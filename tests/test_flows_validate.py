"""The flow validator: every error class with its exact line and column."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from flexvoice.flows.schema import flow_schema, schema_text
from flexvoice.flows.validate import validate_file, validate_text
from tests.conftest import REPO, run_cli

PROMPTS = REPO / "ivr_prompts"

GOOD = """\
flow: shop
start: menu
steps:
  menu:
    menu:
      prompt: welcome_menu
      options: {"1": orders, "2": bye}
      on_failure: bye
  orders:
    dial: {targets: ["+3226009999"], on_busy: bye, then: bye}
  bye:
    hangup: {}
"""


def problems(text: str, prompts: Path | None = PROMPTS) -> list[str]:
    res = validate_text(textwrap.dedent(text), "f.yaml", prompts)
    return [str(p) for p in res.problems]


def test_good_flow_has_no_problems() -> None:
    res = validate_text(GOOD, "f.yaml", PROMPTS)
    assert res.problems == []
    assert res.flow is not None
    assert list(res.flow.steps) == ["menu", "orders", "bye"]


def test_yaml_syntax_error_is_positioned() -> None:
    out = problems("flow: x\nstart: a\nsteps:\n  a: {hangup: {}\n")
    assert len(out) == 1
    assert out[0].startswith("f.yaml:5:1: YAML syntax:")


def test_duplicate_key_is_refused() -> None:
    out = problems("flow: x\nstart: a\nsteps:\n  a: {hangup: {}}\n  a: {hangup: {}}\n")
    assert out == ["f.yaml:5:3: YAML syntax: the key 'a' appears twice; keep one"]


def test_unknown_verb_with_did_you_mean() -> None:
    out = problems(GOOD.replace("    dial: {", "    dail: {"))
    assert out == ["f.yaml:10:5: unknown verb 'dail'; did you mean 'dial'?"]


def test_unknown_verb_without_close_match_lists_verbs() -> None:
    out = problems(GOOD.replace("    hangup: {}", "    explode: {}"))
    assert out[0].startswith("f.yaml:12:5: unknown verb 'explode' (verbs: answer, play,")


def test_unknown_field_in_verb() -> None:
    out = problems(GOOD.replace("      on_failure: bye", "      on_failur: bye"))
    assert out == ["f.yaml:8:7: steps.menu.menu.on_failur: unknown key; did you mean 'on_failure'?"]


def test_unknown_top_level_key() -> None:
    out = problems("flwo: x\n" + GOOD)
    assert out == ["f.yaml:1:1: flwo: unknown key; did you mean 'flow'?"]


def test_then_beside_the_verb_is_explained() -> None:
    out = problems(GOOD.replace("    hangup: {}", "    hangup: {}\n    then: menu"))
    assert out == [
        "f.yaml:13:5: 'then' belongs inside hangup: write it under 'hangup:', not beside it"
    ]


def test_two_verbs_in_one_step() -> None:
    out = problems(GOOD.replace("    hangup: {}", "    hangup: {}\n    answer: {}"))
    assert out == [
        "f.yaml:13:5: step 'bye' has 2 verbs (hangup, answer); a step has exactly one: "
        "split it into steps linked with 'then'"
    ]


def test_wrong_type() -> None:
    out = problems(
        GOOD.replace("      on_failure: bye", "      retries: many\n      on_failure: bye")
    )
    assert out == ["f.yaml:8:16: steps.menu.menu.retries: must be a whole number (got 'many')"]


def test_bad_duration() -> None:
    out = problems(GOOD.replace("on_busy: bye,", "on_busy: bye, ring_timeout: 20 seconds,"))
    assert len(out) == 1
    assert out[0].startswith("f.yaml:10:66: steps.orders.dial.ring_timeout: '20 seconds' is not")


def test_duration_without_unit() -> None:
    out = problems(GOOD.replace("      on_failure: bye", "      timeout: 5\n      on_failure: bye"))
    assert out == [
        "f.yaml:8:16: steps.menu.menu.timeout: a duration needs a unit, "
        "e.g. '5s', '2m' or '500ms' (got 5)"
    ]


def test_branch_to_missing_step() -> None:
    out = problems(GOOD.replace("on_busy: bye", "on_busy: by"))
    assert out == ["f.yaml:10:47: on_busy: no step named 'by'; did you mean 'bye'?"]


def test_menu_option_to_missing_step() -> None:
    out = problems(GOOD.replace('"1": orders', '"1": order'))
    assert out == ["f.yaml:7:22: options.1: no step named 'order'; did you mean 'orders'?"]


def test_missing_start() -> None:
    out = problems(GOOD.replace("start: menu\n", ""))
    assert out == [
        "f.yaml:1:1: start: required key is missing; add 'start: <name of the first step>'"
    ]


def test_start_naming_no_step() -> None:
    out = problems(GOOD.replace("start: menu", "start: menus"))
    assert out == ["f.yaml:2:8: start: no step named 'menus'; did you mean 'menu'?"]


def test_missing_prompt_file() -> None:
    out = problems(GOOD.replace("prompt: welcome_menu", "prompt: welcom"))
    assert len(out) == 1
    assert out[0].startswith("f.yaml:6:15: prompt 'welcom' not found: no ")
    assert "en/welcom.wav" in out[0]


def test_prompt_missing_for_one_language_only() -> None:
    text = GOOD.replace("  bye:\n", "  fr:\n    set: {language: xx, then: bye}\n  bye:\n")
    text = text.replace('"2": bye', '"2": fr')
    out = problems(text)
    assert len(out) == 1
    assert out[0].startswith("f.yaml:6:15: prompt 'welcome_menu' not found: no ")
    assert "xx/welcome_menu.wav" in out[0]


def test_prompts_not_checked_without_folder() -> None:
    assert problems(GOOD.replace("prompt: welcome_menu", "prompt: welcom"), prompts=None) == []


@pytest.mark.parametrize(("key", "col"), [('"5x"', 30), ("A", 30), ("yes", 30)])
def test_menu_key_not_dtmf(key: str, col: int) -> None:
    out = problems(GOOD.replace('"2": bye', f"{key}: bye"))
    assert len(out) == 1
    assert out[0].startswith(f"f.yaml:7:{col}: '")
    assert "not a DTMF key" in out[0]


def test_star_and_hash_are_dtmf_keys() -> None:
    assert problems(GOOD.replace('"2": bye', '"*": bye, "#": orders')) == []


def test_invalid_e164_number() -> None:
    out = problems(GOOD.replace('"+3226009999"', '"+32 2 600 99 99"'))
    assert out == [
        "f.yaml:10:22: steps.orders.dial.targets.0: is not an E.164 number (got '+32 2 600 "
        "99 99'); write it in E.164: +3226009999"
    ]


def test_national_number_is_not_e164() -> None:
    out = problems(GOOD.replace('"+3226009999"', '"+32", "026009999"'))
    assert [o.split(": ")[0] for o in out] == ["f.yaml:10:22", "f.yaml:10:29"]


def test_sip_uri_target_is_accepted() -> None:
    assert problems(GOOD.replace('"+3226009999"', '"sip:desk@pbx.example.be"')) == []


def test_hours_day_and_range_errors() -> None:
    text = """\
    flow: h
    start: h
    steps:
      h:
        hours:
          open: {mon-fry: "08:30-18:00", sat: "9h-12h"}
          closed_days: ["2026-02-30"]
          when_open: x
          when_closed: x
      x:
        hangup:
    """
    assert problems(text) == [
        "f.yaml:6:14: 'mon-fry' is not a day or day range; write e.g. mon-fri, sat, mon,wed",
        "f.yaml:6:43: '9h-12h' is not a time range; write e.g. \"08:30-18:00\"",
        "f.yaml:7:21: '2026-02-30' is not a real date",
    ]


def test_hours_bad_timezone() -> None:
    text = GOOD.replace(
        "  bye:\n",
        "  h:\n    hours: {timezone: Mars/Olympus, open: {}, when_open: bye, when_closed: bye}\n"
        "  bye:\n",
    )
    out = problems(text)
    assert out[0] == (
        "f.yaml:12:23: steps.h.hours.timezone: is not a time zone (got 'Mars/Olympus'); "
        "write an IANA name such as Europe/Brussels"
    )


def test_play_needs_prompt_or_say() -> None:
    out = problems(GOOD.replace("    hangup: {}", "    play: {then: menu}"))
    assert out == ["f.yaml:12:11: steps.bye.play: give prompt or say"]


def test_step_without_verb() -> None:
    out = problems(GOOD.replace("    hangup: {}", "").rstrip() + " {}\n")
    assert len(out) == 1
    assert out[0].startswith("f.yaml:11:3: step 'bye' needs one verb")


def test_bad_webhook_url_and_gather_terminator() -> None:
    text = GOOD.replace('"2": bye', '"2": w').replace(
        "  bye:\n",
        "  w:\n    webhook: {url: crm.example.be, then: g}\n"
        "  g:\n    gather: {say: hi, terminator: x, then: bye}\n  bye:\n",
    )
    assert problems(text) == [
        "f.yaml:12:20: steps.w.webhook.url: is not an http:// or https:// URL "
        "(got 'crm.example.be')",
        "f.yaml:14:35: steps.g.gather.terminator: must be DTMF keys 0-9, * or #, "
        "usually '#' (got 'x')",
    ]


def test_unreachable_step_warning_keeps_flow_valid() -> None:
    text = GOOD + "  orphan:\n    hangup: {}\n"
    res = validate_text(text, "f.yaml", PROMPTS)
    assert res.flow is not None
    assert [str(p) for p in res.problems] == [
        "f.yaml:13:3: warning: step 'orphan' is never reached from start 'menu'; "
        "link it from another step or remove it"
    ]


def test_loop_without_exit_is_warned() -> None:
    text = """\
    flow: l
    start: a
    steps:
      a:
        play: {prompt: closed, then: b}
      b:
        goto: a
    """
    assert problems(text) == [
        "f.yaml:4:3: warning: loop with no way out: a -> b -> a; no branch leaves it and no "
        "step in it ends the call"
    ]


def test_loop_without_input_is_warned() -> None:
    text = """\
    flow: l
    start: a
    steps:
      a:
        switch: {variable: caller, cases: {"+3226000000": bye}, default: b}
      b:
        play: {prompt: closed, then: a}
      bye:
        hangup:
    """
    out = problems(text)
    assert out == [
        "f.yaml:4:3: warning: loop with no input: a -> b -> a never waits for the caller, so "
        "it repeats at once; put a menu or gather in it"
    ]


def test_menu_retry_loop_is_fine() -> None:
    text = GOOD.replace('"2": bye', '"2": bye, "9": menu')
    assert problems(text) == []


def test_several_errors_at_once_sorted_by_line() -> None:
    text = (
        GOOD.replace("dial: {", "dail: {")
        .replace("retries", "retries")
        .replace('"2": bye', '"x": bye')
    )
    out = problems(text)
    assert [o.split(": ")[0] for o in out] == ["f.yaml:7:30", "f.yaml:10:5"]


def test_demo_flows_are_valid_without_warnings() -> None:
    for path in sorted((REPO / "flows").glob("*.yaml")):
        res = validate_file(path, PROMPTS)
        assert res.problems == [], (path, [str(p) for p in res.problems])
        assert res.flow is not None


def test_schema_file_is_current() -> None:
    committed = (REPO / "flows" / "schema.json").read_text()
    assert committed == schema_text(), "run: flexvoice flows schema -o flows/schema.json"


def test_schema_accepts_demo_flows_and_rejects_unknown_verb() -> None:
    schema = flow_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((REPO / "flows").glob("*.yaml")):
        data = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
        errors = list(validator.iter_errors(data))
        assert errors == [], (path, [e.message for e in errors])
    bad = {"flow": "x", "start": "a", "steps": {"a": {"dail": {"targets": ["+3226009999"]}}}}
    assert list(validator.iter_errors(bad))


@pytest.mark.process
def test_cli_validate_reports_and_exits(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("on_busy: bye", "on_busy: by"))
    proc = run_cli("flows", "validate", str(good))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("flows", "validate", str(good), str(bad))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"{bad}:10:47: on_busy: no step named 'by'; did you mean 'bye'?"
    ]
    assert "1/2 flow file(s) valid, 1 error(s)" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.process
def test_cli_validate_folder_and_duplicate_names(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    proc = run_cli("flows", "validate", str(tmp_path))
    assert proc.returncode == 1
    assert "flow name 'shop' is already used by" in proc.stdout


@pytest.mark.process
def test_cli_validate_missing_file() -> None:
    proc = run_cli("flows", "validate", "nope.yaml")
    assert proc.returncode == 1
    assert proc.stdout.strip() == "nope.yaml: file not found"


def test_links_are_checked_even_when_another_step_is_broken() -> None:
    text = GOOD.replace("    dial: {", "    dail: {").replace("on_failure: bye", "on_failure: byee")
    assert problems(text) == [
        "f.yaml:8:19: on_failure: no step named 'byee'; did you mean 'bye'?",
        "f.yaml:10:5: unknown verb 'dail'; did you mean 'dial'?",
    ]
