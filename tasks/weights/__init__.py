"""Importers of weights released outside the suite (official TFLite checkpoints)."""
