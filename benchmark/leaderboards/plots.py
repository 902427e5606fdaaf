"""Leaderboard plots: data specs (accuracy vs MAdds, accuracy vs latency, latency per runtime), then
one deterministic renderer.

Plots are drawn with matplotlib's Agg backend under fixed rc settings (DejaVu Sans, fixed size and
dpi) with no software/date metadata. Each PNG carries the SHA-256 of the plotted data in a text
chunk, so ``--check`` can tell a plot drawn from other data from one drawn from the same data by
another matplotlib/freetype version.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmark.leaderboards.baselines import METRIC_LABELS, Baselines, Reported, number
from benchmark.leaderboards.store import TASK_METRICS
from benchmark.leaderboards.tables import (
    PIXEL1,
    REPORTED_DATASET,
    TASK_TITLES,
    dataset_label,
    device_of,
    model_label,
    width_of,
)

PLOTS_DIR = "plots"
PNG_HASH_KEY = "leaderboard-data-sha256"
# Bumped when the drawing code changes, so a plot redrawn differently counts as changed.
PLOT_STYLE_VERSION = "1"
# -- plots: data specs, then one renderer ---------------------------------------------------------


def series(label: str, points: Iterable[tuple[float, float, str]], line: bool = False, marker: str = "o"):
    points = list(points)
    return {
        "label": label,
        "x": [p[0] for p in points],
        "y": [p[1] for p in points],
        "names": [p[2] for p in points],
        "line": line,
        "marker": marker,
    }


def _source_group(row: Reported) -> str:
    return row.source.split(", ")[0] if row.source.startswith("torchvision") else row.source


def reported_accuracy_series(task: str, baselines: Baselines) -> list[dict[str, Any]]:
    rows = [
        r for r in baselines.for_task(task) if r.value is not None and r.madds is not None and r.compare_madds
    ]
    if task == "classification":
        out = []
        slim = [r for r in rows if r.source.startswith("TF-slim")]
        for width in sorted({r.suite.width for r in slim}, reverse=True):  # type: ignore[union-attr]
            cells = sorted(
                (number(r.madds) / 1e6, float(r.value), "") for r in slim if r.suite.width == width
            )
            out.append(series(f"TF-slim MobileNetV2 {width} (96-224 px)", cells, line=True, marker="."))
        v1 = [r for r in rows if r.source.endswith("Table 6") or r.source.endswith("Table 7")]
        for table in ("Table 6", "Table 7"):
            cells = sorted(
                (number(r.madds) / 1e6, float(r.value), "") for r in v1 if r.source.endswith(table)
            )
            what = "width 0.25-1.0" if table == "Table 6" else "resolution 128-224"
            out.append(series(f"MobileNetV1 paper, {table} ({what})", cells, line=True, marker="s"))
        others = [r for r in rows if r not in slim and r not in v1 and not r.source.endswith("Table 8")]
    else:
        out, others = [], rows
    groups: dict[str, list[Reported]] = {}
    for row in others:
        groups.setdefault(_source_group(row), []).append(row)
    for group, members in groups.items():
        points = [(number(r.madds) / 1e6, float(r.value), r.model) for r in members]  # type: ignore[operator]
        out.append(series(group, points, marker="D"))
    return out


def measured_series(results: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """Accuracy vs MAdds of result records: one series per dataset (synthetic labelled)."""
    groups: dict[str, list[tuple[float, float, str]]] = {}
    for record in results:
        point = (record["madds"] / 1e6, float(record["metrics"][TASK_METRICS[task]]), model_label(record))
        groups.setdefault(dataset_label(record["dataset"]), []).append(point)
    return [series(f"measured on {name}", sorted(points)) for name, points in sorted(groups.items())]


def accuracy_vs_madds_spec(task: str, results: list[dict[str, Any]], baselines: Baselines) -> dict[str, Any]:
    metric = METRIC_LABELS[TASK_METRICS[task]]
    measured = measured_series(results, task)
    return {
        "kind": "scatter",
        "title": f"{TASK_TITLES[task]}: accuracy vs multiply-adds",
        "panels": [
            {"title": f"reported ({REPORTED_DATASET[task]})", "xlabel": "MAdds (millions)", "ylabel": metric,
             "xlog": task != "classification", "series": reported_accuracy_series(task, baselines),
             "empty": "no reported rows"},
            {"title": "measured by this suite", "xlabel": "MAdds (millions)", "ylabel": metric, "xlog": False,
             "series": measured, "empty": "no measured records yet"},
        ],
    }  # fmt: skip


def latest_results(results: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """The newest result per (task, backbone, width): the trained model a latency row is paired with
    (the model is the same at any input size; the point's label states both sizes)."""
    latest: dict[tuple, dict[str, Any]] = {}
    for record in results:
        key = (record["task"], record["backbone"], width_of(record))
        if key not in latest or str(record["created"]) >= str(latest[key]["created"]):
            latest[key] = record
    return latest


def weights_sha256(record: dict[str, Any]) -> str | None:
    weights = record.get("weights")
    return weights.get("sha256") if isinstance(weights, dict) else None


def paired_accuracy(
    latency: dict[str, Any], by_weights: dict[str, dict[str, Any]], latest: dict[tuple, dict[str, Any]]
) -> tuple[dict[str, Any], str] | None:
    """What a latency row's accuracy comes from, and its label: the evaluation of the very weights it
    timed (official checkpoints, same input size), else the newest trained run of that model."""
    sha = weights_sha256(latency)
    if sha in by_weights:
        evaluation = by_weights[sha]
        name = Path(str(evaluation["weights"].get("file", "official"))).stem
        return evaluation, f"{name} @{latency['resolution']} {latency['runtime']} t{latency['threads']}"
    result = latest.get((latency["task"], latency["backbone"], width_of(latency)))
    if result is None:
        return None
    sizes = f"trained @{result['resolution']}, timed @{latency['resolution']}"
    return result, f"{latency['backbone']} {width_of(latency)} {latency['runtime']} t{latency['threads']} ({sizes})"


def runtime_accuracy(latency: dict[str, Any], result: dict[str, Any], task: str) -> float:
    """The timed runtime's own accuracy from its gate (int8 may lose some), else the run's metric."""
    gate = latency.get("accuracy") or {}
    if gate.get("metric") == TASK_METRICS[task] and isinstance(gate.get("value"), int | float):
        return float(gate["value"])
    return float(result["metrics"][TASK_METRICS[task]])


def accuracy_vs_latency_spec(
    task: str,
    results: list[dict[str, Any]],
    latency: list[dict[str, Any]],
    baselines: Baselines,
    evaluations: list[dict[str, Any]] = (),
) -> dict[str, Any]:
    metric = METRIC_LABELS[TASK_METRICS[task]]
    reported_rows = [r for r in baselines.for_task(task) if r.cpu_ms is not None and r.value is not None]
    reported = [series(f"{_source_group(reported_rows[0])}, {PIXEL1}",
                       [(float(r.cpu_ms), float(r.value), r.model) for r in reported_rows], marker="D")] \
        if reported_rows else []  # fmt: skip
    latest = latest_results(results)
    by_weights = {sha: e for e in evaluations if (sha := weights_sha256(e))}
    groups: dict[str, list[tuple[float, float, str]]] = {}
    for record in latency:
        paired = paired_accuracy(record, by_weights, latest) if record["task"] == task else None
        if paired is None:
            continue
        result, name = paired
        point = (float(record["p50_ms"]), runtime_accuracy(record, result, task), name)
        groups.setdefault(dataset_label(result["dataset"]), []).append(point)
    measured = [series(f"measured on {name}", sorted(points)) for name, points in sorted(groups.items())]
    return {
        "kind": "scatter",
        "title": f"{TASK_TITLES[task]}: accuracy vs latency (p50, batch as recorded)",
        "panels": [
            {"title": f"reported ({REPORTED_DATASET[task]}, {PIXEL1})", "xlabel": "latency (ms)", "ylabel": metric,
             "xlog": False, "series": reported, "empty": "no reported latency"},
            {"title": "measured: each runtime's accuracy (its gate, else the run's) vs latency", "xlabel": "p50 latency (ms)",
             "ylabel": metric, "xlog": True, "series": measured, "empty": "no result + latency records yet"},
        ],
    }  # fmt: skip


def latency_by_runtime_spec(latency: list[dict[str, Any]]) -> dict[str, Any]:
    categories: list[str] = []
    runtimes = sorted({r["runtime"] for r in latency})
    values: dict[tuple[str, str], tuple[float, float]] = {}
    for record in latency:
        env = record["environment"]
        category = (f"{record['task']} {record['backbone']} {width_of(record)} @{record['resolution']} "
                    f"b{record['batch_size']} t{record['threads']} [{device_of(env)[:28]}]")  # fmt: skip
        if category not in categories:
            categories.append(category)
        values[(category, record["runtime"])] = (float(record["p50_ms"]), float(record["p90_ms"]))
    groups = [
        {"label": runtime, "values": [values.get((c, runtime), (None, None))[0] for c in categories],
         "p90": [values.get((c, runtime), (None, None))[1] for c in categories]}
        for runtime in runtimes
    ]  # fmt: skip
    return {
        "kind": "barh",
        "title": "Latency per runtime (bar: p50, whisker: p90; log scale)",
        "categories": categories,
        "groups": groups,
        "xlabel": "latency (ms)",
        "empty": "no latency records yet",
    }


_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "legend.fontsize": 6.5,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "path.simplify": False,
    "svg.hashsalt": "leaderboard",
}
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]  # fmt: skip


def spec_digest(spec: dict[str, Any]) -> str:
    text = json.dumps({"style": PLOT_STYLE_VERSION, "spec": spec}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def render(spec: dict[str, Any]) -> bytes:
    """Draw a plot spec to PNG bytes, the same bytes for the same spec on one installation.

    Drawing is the slow part of a regeneration, and a spec fully determines its bytes, so
    results are memoised by the spec (``render_cached.cache_clear()`` forgets them).
    """
    return render_cached(json.dumps(spec, sort_keys=True))


@functools.lru_cache(maxsize=64)
def render_cached(spec_json: str) -> bytes:
    spec = json.loads(spec_json)
    import matplotlib
    import matplotlib.style
    from cycler import cycler
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context():
        # Defaults first, so a user's matplotlibrc cannot change the bytes.
        matplotlib.style.use("default")
        matplotlib.rcParams.update(_RC)
        matplotlib.rcParams["axes.prop_cycle"] = cycler(color=_PALETTE)
        if spec["kind"] == "barh":
            height = 1.6 + 0.28 * max(1, len(spec["categories"])) * max(1, len(spec["groups"])) ** 0.5
            figure = Figure(figsize=(10, min(height, 40)), dpi=100)
            _draw_barh(figure, spec)
        else:
            figure = Figure(figsize=(12, 5), dpi=100)
            _draw_scatter(figure, spec)
        FigureCanvasAgg(figure)
        buffer = io.BytesIO()
        figure.savefig(
            buffer, format="png", dpi=100, metadata={"Software": None, PNG_HASH_KEY: spec_digest(spec)}
        )
    return buffer.getvalue()


def _draw_scatter(figure, spec: dict[str, Any]) -> None:
    figure.suptitle(spec["title"])
    axes = figure.subplots(1, len(spec["panels"]), squeeze=False)[0]
    for ax, panel in zip(axes, spec["panels"], strict=True):
        ax.set_title(panel["title"])
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.grid(True, linewidth=0.4, alpha=0.5)
        drawn = [s for s in panel["series"] if s["x"]]
        if not drawn:
            ax.text(
                0.5, 0.5, panel["empty"], ha="center", va="center", transform=ax.transAxes, color="#555555"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        if panel["xlog"]:
            ax.set_xscale("log")
        for index, item in enumerate(drawn):
            color = _PALETTE[index % len(_PALETTE)]
            style = "-" if item["line"] else "none"
            ax.plot(item["x"], item["y"], linestyle=style, marker=item["marker"], color=color, label=item["label"],
                    markersize=4, linewidth=1)  # fmt: skip
            for x, y, name in zip(item["x"], item["y"], item["names"], strict=True):
                if name:
                    ax.annotate(
                        name, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6, color=color
                    )
        ax.legend(loc="lower right", frameon=True)
    figure.tight_layout()


def _draw_barh(figure, spec: dict[str, Any]) -> None:
    ax = figure.subplots()
    ax.set_title(spec["title"])
    categories, groups = spec["categories"], spec["groups"]
    if not categories:
        ax.text(0.5, 0.5, spec["empty"], ha="center", va="center", transform=ax.transAxes, color="#555555")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    bar = 0.8 / max(1, len(groups))
    for index, group in enumerate(groups):
        ys, widths, errors = [], [], []
        for position, (p50, p90) in enumerate(zip(group["values"], group["p90"], strict=True)):
            if p50 is None:
                continue
            ys.append(position + (index - (len(groups) - 1) / 2) * bar)
            widths.append(p50)
            errors.append(max(0.0, p90 - p50))
        ax.barh(ys, widths, height=bar, xerr=[[0.0] * len(errors), errors], label=group["label"],
                color=_PALETTE[index % len(_PALETTE)], error_kw={"elinewidth": 0.6, "capsize": 1.5})  # fmt: skip
    ax.set_yticks(range(len(categories)))
    ax.set_yticklabels(categories, fontsize=6.5)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(spec["xlabel"])
    ax.grid(True, axis="x", linewidth=0.4, alpha=0.5)
    ax.legend(loc="lower right")
    figure.tight_layout()


def png_data_digest(data: bytes) -> str | None:
    """The plotted-data digest stored in a PNG's text chunk by ``render``, or None."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    offset = 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"tEXt" and b"\0" in body:
            key, value = body.split(b"\0", 1)
            if key.decode("latin-1") == PNG_HASH_KEY:
                return value.decode("latin-1")
        if kind == b"IEND":
            break
        offset += 12 + length
    return None


