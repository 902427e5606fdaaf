"""Timing programs (``python -m benchmarks.NAME``): side-by-side ratios measured in one run, apart
from the library code they measure. Not tests: tests assert behaviour, these print speed."""
