"""The demo data a newcomer starts with fits together: every number in sip/numbers.yaml runs a
flow that exists in flows/ or plays a prompt that exists in ivr_prompts/."""

from __future__ import annotations

from pathlib import Path

import yaml

from flexvoice.flows.runtime import FlowRuntime
from flexvoice.node.inbound_router import prompt_path
from tests.conftest import REPO


def test_demo_numbers_point_at_existing_flows_and_prompts() -> None:
    numbers = yaml.safe_load((REPO / "sip" / "numbers.yaml").read_text())["numbers"]
    runtime = FlowRuntime(REPO / "flows", REPO / "ivr_prompts")
    assert not [p for p in runtime.scan() if p.severity == "error"]
    for number, entry in numbers.items():
        if entry.get("flow"):
            assert entry["flow"] in runtime.flows, f"{number}: no flow {entry['flow']}"
        else:
            path = prompt_path(REPO / "ivr_prompts", entry["prompt"])
            assert Path(path).is_file(), f"{number}: no prompt {entry['prompt']}"
