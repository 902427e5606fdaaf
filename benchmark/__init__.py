"""Profiling, latency, records, leaderboards and the ``bench`` command line."""
