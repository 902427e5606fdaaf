"""Benchmark programs (run with ``python -m benchmarks.<name>``); not tests, not records."""
