"""Which steps were renamed between two versions of a flow, told from the steps alone: a step
gone and a new step with the same verb and fields (its references to itself made neutral) is
the one step under a new name. Used to keep a sticky note beside its step when a rename is
undone, redone, discarded with a draft or brought back by restoring a revision: the node then
sees only a new text, not a rename. Pure: no I/O."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

_SELF = "\x00self"


def _signature(step: dict[str, Any]) -> str:
    name = step["name"]

    def neutral(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: neutral(v) for k, v in value.items()}
        if isinstance(value, list):
            return [neutral(v) for v in value]
        return _SELF if value == name else value

    return json.dumps([step["verb"], neutral(step["body"])], sort_keys=True, default=str)


def renamed(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, str]:
    """{old name: new name} for each step gone whose verb and fields match exactly one new
    step (and no other step gone): two look-alike steps are left alone rather than guessed."""
    old_names = {s["name"] for s in before}
    new_names = {s["name"] for s in after}
    gone = [s for s in before if s["name"] not in new_names]
    born = [s for s in after if s["name"] not in old_names]
    if not gone or not born:
        return {}
    gone_sig = {s["name"]: _signature(s) for s in gone}
    born_sig = {s["name"]: _signature(s) for s in born}
    gone_count, born_count = Counter(gone_sig.values()), Counter(born_sig.values())
    by_sig = {sig: name for name, sig in born_sig.items() if born_count[sig] == 1}
    return {
        old: by_sig[sig] for old, sig in gone_sig.items() if gone_count[sig] == 1 and sig in by_sig
    }
