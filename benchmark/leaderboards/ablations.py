"""The papers' ablation table: each network of V1 Tables 4-5 and V2 Figure 6 with the paper's
figures beside what the suite measured (``bench sweep --tier ablations``).

A pure function of the result records, like the other tables: a row's measured cells come from the
newest ``bench run`` result of that backbone and width at 224x224 on a real (not synthetic) dataset,
and say which; the paper's cells say which table. ``None`` until at least one such result exists.
"""

from __future__ import annotations

from typing import Any

from backbones.ablations import ABLATIONS, Ablation
from benchmark.leaderboards.cells import Table, fmt_num, width_of
from benchmark.leaderboards.provenance import result_source

RESOLUTION = 224  # the papers' ablations are at 224x224 on ImageNet
COLUMNS = (
    "study",
    "network",
    "backbone",
    "paper top-1 (%)",
    "paper MAdds (M)",
    "paper params (M)",
    "top-1 (%)",
    "MAdds (M)",
    "params (M)",
    "source",
)


def matching_result(ablation: Ablation, results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest classification result of the ablation's network at 224 on real data."""
    candidates = [
        r
        for r in results
        if r.get("kind") == "result"
        and r.get("task") == "classification"
        and r.get("backbone") == ablation.backbone
        and width_of(r) == ablation.width
        and r.get("resolution") == RESOLUTION
        and not (r.get("dataset") or {}).get("synthetic")
    ]
    return max(candidates, key=lambda r: str(r.get("created", "")), default=None)


def _paper(value: float | None, decimals: int) -> str:
    return "plotted only" if value is None else fmt_num(value, decimals)


def ablation_table(results: list[dict[str, Any]]) -> Table | None:
    """The ablation grid with the papers' numbers and the measured ones; None without any result."""
    rows = []
    found = 0
    for ablation in ABLATIONS:
        result = matching_result(ablation, results)
        found += result is not None
        measured = (
            (fmt_num(result["metrics"].get("top1")), fmt_num(result["madds"] / 1e6, 0), fmt_num(result["params"] / 1e6, 2), result_source(result))
            if result is not None
            else ("—", "—", "—", "not run (bench sweep --tier ablations)")
        )  # fmt: skip
        rows.append(
            (
                ablation.study,
                ablation.variant,
                f"{ablation.backbone} {ablation.width}",
                _paper(ablation.top1, 1),
                _paper(ablation.madds_m, 0),
                _paper(ablation.params_m, 1),
                *measured,
            )
        )
    return Table("ablations", COLUMNS, tuple(rows)) if found else None
