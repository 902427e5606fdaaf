"""Leaderboards: records store, reported baselines, tables, plots and pages."""
