"""Benchmarks: `./run bench [NAME ...]` runs them and prints figures and ratios to baselines."""
