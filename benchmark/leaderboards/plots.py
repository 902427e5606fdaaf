"""Leaderboard plots as data specs (accuracy vs MAdds, accuracy vs latency, latency per runtime, smoke
runs); drawing.py renders them. Two machines never share a latency axis, and accuracies measured on
the embedded synthetic data are never drawn beside real-data or reported ones."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmark.leaderboards.baselines import METRIC_LABELS, Baselines, Reported, number
from benchmark.leaderboards.cells import (
    PIXEL1,
    REPORTED_DATASET,
    TASK_TITLES,
    dataset_label,
    evaluation_runtime,
    model_label,
    width_of,
)
from benchmark.leaderboards.drawing import (  # noqa: F401 - the renderer, importable with the specs
    REPORTED_COLOUR,
    pareto_front,
    png_data_digest,
    render,
    render_cached,
)
from benchmark.leaderboards.hosts import machine_label as host_label
from benchmark.leaderboards.hosts import one_machine
from benchmark.leaderboards.store import TASK_METRICS

PLOTS_DIR = "plots"
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
    """Reported rows, then one panel per real dataset measured; one x scale for the whole figure. Runs on
    the embedded synthetic data are left out (``smoke_runs_spec`` draws them on a chart of their own)."""
    metric = f"{METRIC_LABELS[TASK_METRICS[task]]} (%)"
    xlog = task != "classification"
    panels = [{"title": f"reported ({REPORTED_DATASET[task]})", "xlabel": "MAdds (millions)", "ylabel": metric,
               "xlog": xlog, "series": reported_accuracy_series(task, baselines), "empty": "no reported rows"}]  # fmt: skip
    measured = measured_series([r for r in results if not r["dataset"].get("synthetic")], task)
    for name, items in measured.items():
        panels.append({"title": f"measured by this suite on {name}", "xlabel": "MAdds (millions)", "ylabel": metric,
                       "xlog": xlog, "series": items, "empty": "no measured records yet"})  # fmt: skip
    if not measured:
        panels.append({"title": "measured by this suite", "xlabel": "MAdds (millions)", "ylabel": metric,
                       "xlog": xlog, "series": [], "empty": "no measured records yet"})  # fmt: skip
    return {"kind": "scatter", "title": f"{TASK_TITLES[task]}: accuracy vs multiply-adds", "panels": panels}


def smoke_runs_spec(task: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy vs MAdds of the runs on the embedded synthetic data alone: they show the pipeline learns
    and are never drawn beside real-data or reported numbers."""
    metric = f"{METRIC_LABELS[TASK_METRICS[task]]} (%)"
    synthetic = measured_series([r for r in results if r["dataset"].get("synthetic")], task)
    panels = [{"title": f"smoke runs on {name} (not comparable with real data)", "xlabel": "MAdds (millions)",
               "ylabel": metric, "xlog": False, "series": items, "empty": "no smoke runs"}
              for name, items in synthetic.items()]  # fmt: skip
    if not panels:
        panels = [{"title": "smoke runs", "xlabel": "MAdds (millions)", "ylabel": metric, "xlog": False,
                   "series": [], "empty": "no smoke runs yet"}]  # fmt: skip
    return {"kind": "scatter", "title": f"{TASK_TITLES[task]}: smoke runs on the embedded synthetic data", "panels": panels}


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


def reported_pairing(latency: dict[str, Any], baselines: Baselines) -> tuple[dict[str, Any], str] | None:
    """A float row of a network some source reports an accuracy for (same backbone, width and input
    size): that accuracy, labelled as reported. Latency does not depend on the weights' values, so a
    network timed with fresh weights still places the published model on the latency axis; int8 rows
    are left out (their accuracy is the quantized weights', which no source reports for this file)."""
    if latency.get("precision") != "fp32":
        return None
    metric = TASK_METRICS[latency["task"]]
    for row in baselines.for_task(latency["task"]):
        network = row.suite
        if (row.value is None or network is None or network.options or network.backbone != latency["backbone"]
                or network.resolution != latency["resolution"] or (network.width or 1.0) != width_of(latency)):
            continue
        record = {"dataset": {"name": f"{row.dataset}, reported", "synthetic": False, "reported": True},
                  "metrics": {metric: float(row.value)}, "reported": row.source, "model": row.model}
        return record, f"{row.model} {latency['runtime']} t{latency['threads']} (reported accuracy)"
    return None


def runtime_accuracy(latency: dict[str, Any], result: dict[str, Any], task: str) -> float:
    """The timed runtime's own accuracy from its gate (int8 may lose some), else the run's metric; a
    reported accuracy as the source prints it."""
    if result.get("reported"):
        return float(result["metrics"][TASK_METRICS[task]])
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


def runtime_colours(runtimes: Iterable[str]) -> dict[str, str]:
    """The fixed colour of each runtime; runtimes outside the table take the spare colours in name order."""
    unknown = sorted(set(runtimes) - set(RUNTIME_COLOURS))
    spares = {name: SPARE_COLOURS[i % len(SPARE_COLOURS)] for i, name in enumerate(unknown)}
    return {**RUNTIME_COLOURS, **spares}


def data_kind(dataset: dict[str, Any]) -> str:
    """synthetic, real, or reported (an accuracy a source prints, beside a latency measured here)."""
    return "synthetic" if dataset.get("synthetic") else "reported" if dataset.get("reported") else "real"


def latency_points(
    task: str,
    results: list[dict[str, Any]],
    latency: list[dict[str, Any]],
    evaluations: Iterable[dict[str, Any]] = (),
    baselines: Baselines | None = None,
) -> list[dict[str, Any]]:
    """Each latency record of ``task`` that has a real-data accuracy to pair with: ``{"latency", "accuracy_record",
    "accuracy", "label"}`` (the PNGs and the site plot exactly these). Without a measured one, a float
    row takes the accuracy a source reports for its network (``reported_pairing``), in a panel of its own."""
    latest = latest_results(results)
    # A timed network is the float import of its file: pair it with that evaluation, not an integer runtime's.
    by_weights = {sha: e for e in evaluations if (sha := weights_sha256(e)) and evaluation_runtime(e) == "eager"}
    points = []
    for record in latency:
        if record["task"] != task:
            continue
        paired = paired_accuracy(record, by_weights, latest)
        if (paired is None or paired[0]["dataset"].get("synthetic")) and baselines is not None:
            paired = reported_pairing(record, baselines)
        if paired is None or paired[0]["dataset"].get("synthetic"):
            continue  # an accuracy from the embedded synthetic data is never plotted against latency
        result, name = paired
        points.append({"latency": record, "accuracy_record": result, "accuracy": runtime_accuracy(record, result, task),
                       "label": name})  # fmt: skip
    return points


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
    for point in latency_points(task, results, latency, evaluations, baselines):
        record, paired = point["latency"], point["accuracy_record"]
        key = (host_label(record), dataset_label(paired["dataset"]))
        groups.setdefault(key, []).append(
            (float(record["p50_ms"]), point["accuracy"], point["label"], record["runtime"], record, paired.get("model"))
        )
    for (host, dataset), points in sorted(groups.items()):
        one_machine([p[4] for p in points], f"{task} accuracy vs latency, panel {host}")
        if dataset.endswith(", reported"):
            points = fastest_per_model(points)
        title = (f"{dataset.removesuffix(', reported')} accuracy as reported, fp32 latency measured on {host}"
                 if dataset.endswith(", reported") else f"measured on {dataset}, {host}")
        panels.append({"title": title, "xlabel": "p50 latency (ms)",
                       "ylabel": f"{metric} (%)", "points": sorted(p[:4] for p in points)})  # fmt: skip
    return {
        "kind": "pareto",
        "title": f"{TASK_TITLES[task]}: accuracy vs latency (each runtime's own accuracy: its gate, else the run's)",
        "panels": panels,
        "colours": runtime_colours(p[3] for panel in panels for p in panel["points"]),
        "empty": "no result + latency records yet",
    }


def fastest_per_model(points: list[tuple]) -> list[tuple]:
    """One point per published model (``point[5]``): its fastest fp32 runtime here (every runtime's row
    is on the latency page and the site); the label names the model and that runtime."""
    best: dict[str, tuple] = {}
    for point in points:
        if point[5] not in best or point[0] < best[point[5]][0]:
            best[point[5]] = point
    return list(best.values())


def latency_by_runtime_spec(latency: list[dict[str, Any]]) -> dict[str, Any]:
    """p50 bars (p90 whiskers) per model and runtime, one panel per host or device: two machines'
    timings never share an axis."""
    by_host: dict[str, list[dict[str, Any]]] = {}
    for record in latency:
        by_host.setdefault(host_label(record), []).append(record)
    panels = []
    for host, records in sorted(by_host.items()):
        one_machine(records, f"latency panel {host}")
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


