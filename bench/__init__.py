"""Benchmarks (run with `python bench/run.py`)."""
