"""Sweeps: a tier's matrix of bench run / bench latency jobs, and counting the suite's models."""
