"""The table ``bench run`` prints at the end."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from benchmark.runs.schema import ResultRecord


def print_summary(record: ResultRecord) -> None:
    dataset = record.dataset
    source = "synthetic (embedded default)" if dataset.get("synthetic") else dataset.get("root")
    table = Table(title=f"bench run: {record.task} / {record.backbone} on {dataset['name']}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("data", str(source))
    for key, value in record.metrics.items():
        if isinstance(value, int):
            table.add_row(key, str(value))
        elif isinstance(value, float):
            table.add_row(key, f"{value:.2f}")
    table.add_row("params", f"{record.params / 1e6:.2f}M")
    table.add_row("MAdds", f"{record.madds / 1e6:.1f}M")
    table.add_row("resolution", str(record.resolution))
    table.add_row("steps / epochs", f"{record.steps} / {record.epochs}")
    table.add_row("wall time", f"{record.wall_time_s:.0f} s")
    Console(stderr=True).print(table)
