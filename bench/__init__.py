"""Benchmarks: `./run bench [NAME ...]` runs them and prints figures and ratios to baselines."""

from pathlib import Path

# The repository root: data folders (flows, prompts, tariffs, sipp scenarios) are found from it.
# `./run bench` runs `python -m bench` there, so `bench`, `flexvoice` and `tests` import as is.
REPO = Path(__file__).resolve().parent.parent
