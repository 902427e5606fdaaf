"""Runs: the run configuration (defaults <- recipe <- flags), training, records and counting."""
