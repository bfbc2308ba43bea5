"""Run benchmarks by name: `python -m bench` (all) or `python -m bench metering sip_load`."""

from __future__ import annotations

import importlib
import sys

# Each module has `main(argv: list[str]) -> int` and prints its own figures.
BENCHMARKS: tuple[str, ...] = (
    "metering",
    "flows",
    "edge_load",
    "sip_load",
    "worker_cpu",
    "call_registry",
    "statistics",
    "recording",
    "conference",
    "messages",
    "designer",
    "shared_store",
    "cluster",
)


def main(argv: list[str]) -> int:
    # Names first, then options passed to every benchmark: `metering --events 100000`.
    first_flag = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names = argv[:first_flag] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"bench: unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    if not names:
        print("bench: no benchmarks yet")
        return 0
    flags = argv[first_flag:]
    rc = 0
    for name in names:
        print(f"== {name}", flush=True)
        rc |= importlib.import_module(f"bench.{name}").main(flags)
    return rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
