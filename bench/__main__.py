"""Run benchmarks by name: `python -m bench` (all) or `python -m bench metering sip_load`."""

from __future__ import annotations

import importlib
import sys

# Each module has `main(argv: list[str]) -> int` and prints its own figures.
BENCHMARKS: tuple[str, ...] = ("edge_load",)


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"bench: unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    if not names:
        print("bench: no benchmarks yet")
        return 0
    flags = [a for a in argv if a.startswith("-")]
    rc = 0
    for name in names:
        print(f"== {name}", flush=True)
        rc |= importlib.import_module(f"bench.{name}").main(flags)
    return rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
