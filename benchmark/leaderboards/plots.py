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
    evaluation_runtime,
    model_label,
    width_of,
)

PLOTS_DIR = "plots"
PNG_HASH_KEY = "leaderboard-data-sha256"
# Bumped when the drawing code changes, so a plot redrawn differently counts as changed.
PLOT_STYLE_VERSION = "2"
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


def measured_series(results: list[dict[str, Any]], task: str) -> dict[str, list[dict[str, Any]]]:
    """Accuracy vs MAdds of result records: ``{dataset label: [series]}`` (synthetic labelled), so each
    dataset gets its own axis."""
    groups: dict[str, list[tuple[float, float, str]]] = {}
    for record in results:
        point = (record["madds"] / 1e6, float(record["metrics"][TASK_METRICS[task]]), model_label(record))
        groups.setdefault(dataset_label(record["dataset"]), []).append(point)
    return {name: [series(f"measured on {name}", sorted(points))] for name, points in sorted(groups.items())}


def accuracy_vs_madds_spec(task: str, results: list[dict[str, Any]], baselines: Baselines) -> dict[str, Any]:
    """Reported rows, then one panel per measured dataset; one x scale for the whole figure."""
    metric = f"{METRIC_LABELS[TASK_METRICS[task]]} (%)"
    xlog = task != "classification"
    panels = [{"title": f"reported ({REPORTED_DATASET[task]})", "xlabel": "MAdds (millions)", "ylabel": metric,
               "xlog": xlog, "series": reported_accuracy_series(task, baselines), "empty": "no reported rows"}]  # fmt: skip
    measured = measured_series(results, task)
    for name, items in measured.items():
        panels.append({"title": f"measured by this suite on {name}", "xlabel": "MAdds (millions)", "ylabel": metric,
                       "xlog": xlog, "series": items, "empty": "no measured records yet"})  # fmt: skip
    if not measured:
        panels.append({"title": "measured by this suite", "xlabel": "MAdds (millions)", "ylabel": metric,
                       "xlog": xlog, "series": [], "empty": "no measured records yet"})  # fmt: skip
    return {"kind": "scatter", "title": f"{TASK_TITLES[task]}: accuracy vs multiply-adds", "panels": panels}


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


# One colour per runtime, the same in every PNG and on the site: Okabe-Ito's eight colour-blind-safe
# colours, then Paul Tol's muted scheme for runtimes beyond them (unknown runtimes take the spares in
# name order).
RUNTIME_COLOURS = {
    "eager": "#0072B2", "eager-cl": "#56B4E9", "compile": "#009E73", "onnxruntime": "#E69F00",
    "onnxruntime-int8": "#D55E00", "litert": "#CC79A7", "litert-int8": "#882255", "openvino": "#332288",
    "openvino-int8": "#44AA99", "litert-file": "#999933", "executorch": "#000000",
}  # fmt: skip
SPARE_COLOURS = ("#CC6677", "#DDCC77", "#117733", "#88CCEE", "#AA4499", "#F0E442")
REPORTED_COLOUR = "#777777"


def runtime_colours(runtimes: Iterable[str]) -> dict[str, str]:
    """The fixed colour of each runtime; runtimes outside the table take the spare colours in name order."""
    unknown = sorted(set(runtimes) - set(RUNTIME_COLOURS))
    spares = {name: SPARE_COLOURS[i % len(SPARE_COLOURS)] for i, name in enumerate(unknown)}
    return {**RUNTIME_COLOURS, **spares}


def host_label(record: dict[str, Any]) -> str:
    """Where a latency record was timed: its on-device target (``Pixel 7 (adb)``) when it names one,
    else the host CPU it ran on."""
    target = record.get("target")
    if isinstance(target, dict) and target.get("model"):
        transport = target.get("transport")
        return f"{target['model']} ({transport})" if transport else str(target["model"])
    return device_of(record["environment"])


def data_kind(dataset: dict[str, Any]) -> str:
    return "synthetic" if dataset.get("synthetic") else "real"


def latency_points(
    task: str,
    results: list[dict[str, Any]],
    latency: list[dict[str, Any]],
    evaluations: Iterable[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Each latency record of ``task`` that has an accuracy to pair with: ``{"latency", "accuracy_record",
    "accuracy", "label"}`` (the PNGs and the site plot exactly these)."""
    latest = latest_results(results)
    # A timed network is the float import of its file: pair it with that evaluation, not an integer runtime's.
    by_weights = {sha: e for e in evaluations if (sha := weights_sha256(e)) and evaluation_runtime(e) == "eager"}
    points = []
    for record in latency:
        paired = paired_accuracy(record, by_weights, latest) if record["task"] == task else None
        if paired is None:
            continue
        result, name = paired
        points.append({"latency": record, "accuracy_record": result, "accuracy": runtime_accuracy(record, result, task),
                       "label": name})  # fmt: skip
    return points


def pareto_front(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both latency (lower) and accuracy (higher), by latency."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def accuracy_vs_latency_spec(
    task: str,
    results: list[dict[str, Any]],
    latency: list[dict[str, Any]],
    baselines: Baselines,
    evaluations: list[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One panel per (host or device, data kind): real and synthetic accuracies never share an axis,
    two hosts never share a chart; points coloured by runtime, numbered, with the key beside them."""
    metric = METRIC_LABELS[TASK_METRICS[task]]
    reported_rows = [r for r in baselines.for_task(task) if r.cpu_ms is not None and r.value is not None]
    panels = []
    if reported_rows:
        points = [(float(r.cpu_ms), float(r.value), r.model, "reported") for r in reported_rows]
        panels.append({"title": f"reported: {_source_group(reported_rows[0])}, {PIXEL1} ({REPORTED_DATASET[task]})",
                       "xlabel": "latency (ms)", "ylabel": f"{metric} (%)", "points": points})  # fmt: skip
    groups: dict[tuple[str, str], list] = {}
    for point in latency_points(task, results, latency, evaluations):
        record, paired = point["latency"], point["accuracy_record"]
        key = (host_label(record), dataset_label(paired["dataset"]))
        groups.setdefault(key, []).append(
            (float(record["p50_ms"]), point["accuracy"], point["label"], record["runtime"])
        )
    for (host, dataset), points in sorted(groups.items()):
        panels.append({"title": f"measured on {dataset}, {host}", "xlabel": "p50 latency (ms)",
                       "ylabel": f"{metric} (%)", "points": sorted(points)})  # fmt: skip
    return {
        "kind": "pareto",
        "title": f"{TASK_TITLES[task]}: accuracy vs latency (each runtime's own accuracy: its gate, else the run's)",
        "panels": panels,
        "colours": runtime_colours(p[3] for panel in panels for p in panel["points"]),
        "empty": "no result + latency records yet",
    }


def latency_by_runtime_spec(latency: list[dict[str, Any]]) -> dict[str, Any]:
    """p50 bars (p90 whiskers) per model and runtime, one panel per host or device: two machines'
    timings never share an axis."""
    by_host: dict[str, list[dict[str, Any]]] = {}
    for record in latency:
        by_host.setdefault(host_label(record), []).append(record)
    panels = []
    for host, records in sorted(by_host.items()):
        categories: list[str] = []
        values: dict[tuple[str, str], tuple[float, float]] = {}
        for record in records:
            category = (f"{record['task']} {record['backbone']} {width_of(record)} @{record['resolution']} "
                        f"b{record['batch_size']} t{record['threads']}")  # fmt: skip
            if category not in categories:
                categories.append(category)
            values[(category, record["runtime"])] = (float(record["p50_ms"]), float(record["p90_ms"]))
        runtimes = sorted({r["runtime"] for r in records})
        groups = [
            {"label": runtime, "values": [values.get((c, runtime), (None, None))[0] for c in categories],
             "p90": [values.get((c, runtime), (None, None))[1] for c in categories]}
            for runtime in runtimes
        ]  # fmt: skip
        panels.append({"title": host, "categories": categories, "groups": groups})
    return {
        "kind": "barh",
        "title": "Latency per runtime, one panel per host (bar: p50, whisker: p90; log scale)",
        "panels": panels,
        "colours": runtime_colours(r["runtime"] for r in latency),
        "xlabel": "latency (ms, log scale)",
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
# Series that are not runtimes (reported sources, datasets): Tol's muted scheme, in order.
_PALETTE = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499"]


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
        panels = spec["panels"]
        if spec["kind"] == "barh":
            heights = [0.9 + 0.16 * len(p["categories"]) * max(1, len(p["groups"])) ** 0.5 for p in panels] or [2.0]
            figure = Figure(figsize=(11, min(1.0 + sum(heights), 60)), dpi=100)
            _draw_barh(figure, spec, heights)
        elif spec["kind"] == "pareto":
            figure = Figure(figsize=(12, 1.0 + 4.2 * max(1, len(panels))), dpi=100)
            _draw_pareto(figure, spec)
        else:
            figure = Figure(figsize=(12, 1.0 + 4.2 * max(1, len(panels))), dpi=100)
            _draw_scatter(figure, spec)
        FigureCanvasAgg(figure)
        buffer = io.BytesIO()
        figure.savefig(
            buffer, format="png", dpi=100, metadata={"Software": None, PNG_HASH_KEY: spec_digest(spec)}
        )
    return buffer.getvalue()


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _spread_labels(ax, texts: list) -> None:
    """Move point labels apart with leader lines (adjustText), so no two overlap."""
    if len(texts) < 2:
        return
    from adjustText import adjust_text

    adjust_text(texts, ax=ax, arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.4})


def _log_x(ax) -> None:
    """A log latency/MAdds axis with plain numbers (2, 5, 10, 20 ...) and no crowded minor labels."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _key(ax, lines: list[str]) -> None:
    """The numbered key beside a panel, outside its data."""
    ax.text(1.02, 1.0, "\n".join(lines), transform=ax.transAxes, va="top", ha="left", fontsize=6,
            family="DejaVu Sans Mono")  # fmt: skip


def _draw_pareto(figure, spec: dict[str, Any]) -> None:
    """Accuracy vs latency per panel: points coloured by runtime and numbered (the key on the right
    says which model each number is), the Pareto front as a grey step line, log latency axis."""
    figure.suptitle(spec["title"])
    panels = spec["panels"]
    if not panels:
        _empty(figure.subplots(), spec["empty"])
        return
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    colours = spec["colours"]
    for ax, panel in zip(axes, panels, strict=True):
        ax.set_title(panel["title"], loc="left")
        ax.set_xlabel(panel["xlabel"] + ", log scale")
        ax.set_ylabel(panel["ylabel"])
        _log_x(ax)
        ax.grid(True, linewidth=0.4, alpha=0.5)
        front = pareto_front((x, y) for x, y, _, _ in panel["points"])
        if len(front) > 1:
            ax.plot([p[0] for p in front], [p[1] for p in front], drawstyle="steps-post", color="#999999",
                    linewidth=1, zorder=1, label="Pareto front")  # fmt: skip
        texts, key, seen = [], [], set()
        for number_, (x, y, name, runtime) in enumerate(panel["points"], start=1):
            reported = runtime == "reported"
            colour = REPORTED_COLOUR if reported else colours[runtime]
            label = None if runtime in seen else ("reported (paper)" if reported else runtime)
            seen.add(runtime)
            ax.scatter([x], [y], color=colour, marker="D" if reported else "o", s=22, zorder=3, label=label)
            texts.append(ax.text(x, y, str(number_), fontsize=6, color=colour))
            key.append(f"{number_:>2} {name}" + ("" if reported else f" [{runtime}]"))
        _spread_labels(ax, texts)
        ax.legend(loc="lower left", bbox_to_anchor=(1.02, 0.0), fontsize=6, frameon=False, borderaxespad=0)
        _key(ax, key[:40] + ([f"... {len(key) - 40} more"] if len(key) > 40 else []))
    figure.tight_layout(rect=(0, 0, 0.62, 0.97))


def _draw_scatter(figure, spec: dict[str, Any]) -> None:
    """Accuracy vs MAdds, one panel per data source (reported, then each measured dataset), the
    same axis scale in every panel; legends and the numbered key outside the data."""
    figure.suptitle(spec["title"])
    panels = spec["panels"]
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        ax.set_title(panel["title"], loc="left")
        ax.set_xlabel(panel["xlabel"] + (", log scale" if panel["xlog"] else ""))
        ax.set_ylabel(panel["ylabel"])
        ax.grid(True, linewidth=0.4, alpha=0.5)
        drawn = [s for s in panel["series"] if s["x"]]
        if not drawn:
            _empty(ax, panel["empty"])
            continue
        if panel["xlog"]:
            _log_x(ax)
        texts, key = [], []
        for index, item in enumerate(drawn):
            color = _PALETTE[index % len(_PALETTE)]
            style = "-" if item["line"] else "none"
            ax.plot(item["x"], item["y"], linestyle=style, marker=item["marker"], color=color, label=item["label"],
                    markersize=4, linewidth=1)  # fmt: skip
            for x, y, name in zip(item["x"], item["y"], item["names"], strict=True):
                if name:
                    key.append(f"{len(key) + 1:>2} {name}")
                    texts.append(ax.text(x, y, str(len(key)), fontsize=6, color=color))
        _spread_labels(ax, texts)
        ax.legend(loc="lower left", bbox_to_anchor=(1.02, 0.0), fontsize=6, frameon=False, borderaxespad=0)
        if key:
            _key(ax, key[:40] + ([f"... {len(key) - 40} more"] if len(key) > 40 else []))
    figure.tight_layout(rect=(0, 0, 0.62, 0.97))


def _draw_barh(figure, spec: dict[str, Any], heights: list[float]) -> None:
    figure.suptitle(spec["title"])
    panels = spec["panels"]
    if not panels:
        _empty(figure.subplots(), spec["empty"])
        return
    axes = figure.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    colours = spec["colours"]
    for ax, panel in zip(axes, panels, strict=True):
        categories, groups = panel["categories"], panel["groups"]
        ax.set_title(panel["title"], loc="left")
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
                    color=colours[group["label"]], error_kw={"elinewidth": 0.6, "capsize": 1.5})  # fmt: skip
        ax.set_yticks(range(len(categories)))
        ax.set_yticklabels(categories, fontsize=6.5)
        ax.invert_yaxis()
        _log_x(ax)
        ax.set_xlabel(spec["xlabel"])
        ax.grid(True, axis="x", linewidth=0.4, alpha=0.5)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6.5, frameon=False, borderaxespad=0)
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


