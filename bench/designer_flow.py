"""A generated flow of N steps for the designer benchmark (valid: every step reachable)."""

from __future__ import annotations


def generated_flow(n: int, name: str = "big") -> str:
    lines = [
        "# A generated flow for the designer benchmark",
        f"flow: {name}",
        f"description: {n} generated steps",
        "start: s0",
        "steps:",
    ]
    for i in range(n - 1):
        nxt, alt = f"s{i + 1}", f"s{min(i + 2, n - 1)}"
        kind = i % 4
        lines.append(f"  s{i}:")
        if kind == 0:
            lines.append(f'    play: {{say: "Step {i}", then: {nxt}}}')
        elif kind == 1:
            lines += [
                "    menu:",
                f'      say: "Press 1 or 2 ({i})"',
                f'      options: {{"1": {nxt}, "2": {alt}}}',
                f"      on_failure: s{n - 1}",
            ]
        elif kind == 2:
            lines += [
                "    dial:",
                '      targets: ["+3226009999"]',
                "      ring_timeout: 20s",
                f"      on_busy: {nxt}",
                f"      on_no_answer: {alt}",
                f"      on_failed: {nxt}",
                f"      then: s{n - 1}",
            ]
        else:
            lines.append(f"    goto: {nxt}")
    lines += [f"  s{n - 1}:", "    hangup: {}"]
    return "\n".join(lines) + "\n"
