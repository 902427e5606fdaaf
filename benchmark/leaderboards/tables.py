"""Leaderboards as a pure function: records + reported baselines -> markdown, CSV and PNG files.

``generate(records)`` returns ``{relative path: bytes}`` and touches nothing; ``bench leaderboard``
writes the result and ``--check`` compares it with what is committed. The same records give the
same bytes: rows are sorted, numbers formatted explicitly, and plots drawn with matplotlib's Agg
backend under fixed rc settings (DejaVu Sans, fixed size and dpi) with no software/date metadata.

Each PNG carries the SHA-256 of the plotted data in a text chunk, so ``--check`` can tell a plot
drawn from other data from one drawn from the same data by another matplotlib/freetype version.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmark.baselines import BASELINES, METRIC_LABELS, Baselines, Reported, number
from benchmark.store import TASK_METRICS

TASKS = ("classification", "detection", "segmentation")
PLOTS_DIR = "plots"
PNG_HASH_KEY = "leaderboard-data-sha256"
# Bumped when the drawing code changes, so a plot redrawn differently counts as changed.
PLOT_STYLE_VERSION = "1"

# Result metrics shown per task (key in the record's ``metrics``, column title), percent.
METRIC_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "classification": [("top1", "top-1"), ("top5", "top-5")],
    "detection": [("map", "mAP"), ("map_50", "AP50"), ("map_75", "AP75"), ("map_small", "AP S"),
                  ("map_medium", "AP M"), ("map_large", "AP L"), ("mar_100", "AR100")],
    "segmentation": [("miou", "mIoU"), ("pixel_acc", "pixel acc")],
}  # fmt: skip
# Config keys that tell two models of one task apart (shown after the backbone when present).
MODEL_OPTIONS = {"detection": ("head",), "segmentation": ("output_stride", "aspp")}
TASK_TITLES = {"classification": "Classification", "detection": "Detection", "segmentation": "Segmentation"}
REPORTED_DATASET = {"classification": "ImageNet", "detection": "COCO", "segmentation": "PASCAL VOC 2012"}
PIXEL1 = "Pixel 1 big core, TF-Lite"


@dataclass(frozen=True)
class Table:
    """One table: rendered as markdown inside a page and written beside it as ``<name>.csv``."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def markdown(self) -> str:
        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return buffer.getvalue()


# -- formatting ---------------------------------------------------------------------------------


def fmt_count(value: float | None, like: str | None = None) -> str:
    """A count in the unit of the reported string beside it (M or B), else M below 1e9."""
    if value is None:
        return "–"
    unit = like[-1] if like and like[-1] in "MB" else ("B" if value >= 1e9 else "M")
    scaled = value / (1e9 if unit == "B" else 1e6)
    decimals = 2 if scaled < 100 else 1
    return f"{scaled:.{decimals}f}{unit}"


def fmt_diff(counted: float | None, reported: float | None) -> str:
    if counted is None or reported is None or reported == 0:
        return "–"
    return f"{100.0 * (counted - reported) / reported:+.1f}%"


def fmt_num(value: Any, decimals: int = 2) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "–"
    return f"{value:.{decimals}f}"


def width_of(record: dict[str, Any]) -> float:
    return float(record.get("width") or 1.0)


def model_label(record: dict[str, Any]) -> str:
    """``mnv2 1.0 @96`` plus the task's distinguishing options from the run config."""
    label = f"{record['backbone']} {width_of(record)} @{record['resolution']}"
    config = record.get("config") or {}
    options = [
        f"{key}={config[key]}" for key in MODEL_OPTIONS.get(record["task"], ()) if config.get(key) is not None
    ]
    return label + (f" ({', '.join(options)})" if options else "")


def device_of(environment: dict[str, Any]) -> str:
    device = str(environment.get("device") or "cpu")
    if device.startswith("cuda") and environment.get("gpu"):
        return str(environment["gpu"])
    cores = environment.get("cpu_count")
    return f"{environment.get('cpu') or device}" + (f", {cores} cores" if cores else "")


def dataset_label(dataset: dict[str, Any]) -> str:
    name = str(dataset.get("name") or "unknown dataset")
    return f"{name} [synthetic]" if dataset.get("synthetic") else name


def result_source(record: dict[str, Any]) -> str:
    env = record["environment"]
    precision = (record.get("config") or {}).get("precision", "32-true")
    runtime = f"PyTorch {env.get('torch', '?')} eager {precision}"
    return f"measured ({dataset_label(record['dataset'])}, {device_of(env)}, {runtime}, {env.get('commit', '?')})"


def latency_source(record: dict[str, Any]) -> str:
    env = record["environment"]
    version = record.get("runtime_version")
    runtime = f"{record['runtime']} ({version})" if version else record["runtime"]
    return f"measured ({device_of(env)}, {runtime}, {env.get('commit', '?')})"


def reported_source(row: Reported) -> str:
    return f"reported ({row.source})"


def record_sort_key(record: dict[str, Any]) -> tuple:
    return (
        record["task"],
        record["backbone"],
        width_of(record),
        record["resolution"],
        json.dumps(record.get("config") or {}, sort_keys=True, default=str),
        str(record.get("runtime", "")),
        int(record.get("threads") or 0),
        int(record.get("batch_size") or 0),
        str(record.get("created", "")),
        json.dumps(record, sort_keys=True, default=str),
    )


# -- tables ---------------------------------------------------------------------------------------


def counted(row: Reported, profiles: dict[str, dict[str, Any]]) -> tuple[float | None, float | None]:
    """The suite's (params, MAdds) for a reported row, from its cached profile record."""
    if row.suite is None or row.suite.key not in profiles:
        return None, None
    profile = profiles[row.suite.key]
    if row.part == "head":
        detail = profile.get("profile") or {}
        return detail.get("head_params"), detail.get("head_madds")
    return profile["params"], profile["madds"]


def reported_table(task: str, rows: list[Reported], profiles: dict[str, dict[str, Any]]) -> Table:
    metric = METRIC_LABELS[TASK_METRICS[task]]
    columns = ("model", f"{metric} reported", "dataset", "params reported", "params counted", "Δ params",
               "MAdds reported", "MAdds counted", "Δ MAdds", "suite model", "source", "note")  # fmt: skip
    out = []
    for row in rows:
        params, madds = counted(row, profiles)
        if not row.compare_madds:
            madds = None
        out.append((
            row.model,
            row.value or "–",
            row.dataset,
            row.params or "–",
            fmt_count(params, row.params) if params is not None else "–",
            fmt_diff(params, number(row.params)),
            row.madds or "–",
            fmt_count(madds, row.madds) if madds is not None else "–",
            fmt_diff(madds, number(row.madds)),
            (row.suite.label + (" (prediction layers)" if row.part == "head" else "")) if row.suite else "–",
            reported_source(row),
            row.note,
        ))  # fmt: skip
    return Table(f"{task}_reported", columns, tuple(out))


def measured_table(task: str, results: list[dict[str, Any]]) -> Table:
    metrics = METRIC_COLUMNS[task]
    columns = ("model", "dataset", *[f"{title} (%)" for _, title in metrics], "params", "MAdds", "steps",
               "epochs", "train time (s)", "source")  # fmt: skip
    rows = []
    for record in results:
        values = record["metrics"]
        rows.append((
            model_label(record),
            dataset_label(record["dataset"]),
            *[fmt_num(values.get(key)) for key, _ in metrics],
            fmt_count(record["params"], "M"),
            fmt_count(record["madds"]),
            str(record.get("steps", "–")),
            str(record.get("epochs", "–")),
            fmt_num(record.get("wall_time_s"), 0),
            result_source(record),
        ))  # fmt: skip
    return Table(f"{task}_measured", columns, tuple(rows))


def accuracy_cell(accuracy: dict[str, Any] | None) -> str:
    """The runtime's accuracy gate against eager fp32 (issue 6), or '–' for eager itself."""
    if not accuracy:
        return "–"
    if accuracy.get("note"):
        return str(accuracy["note"])
    if accuracy.get("basis") == "reference":
        return f"{accuracy.get('metric', '?')} {fmt_num(accuracy.get('value'))} (the fp32 reference)"
    parts = [
        f"{accuracy.get('metric', '?')} {fmt_num(accuracy.get('value'))} vs {fmt_num(accuracy.get('reference'))}"
    ]
    if isinstance(accuracy.get("ratio"), int | float):
        parts.append(f"ratio {accuracy['ratio']:.3f}")
    if isinstance(accuracy.get("agreement"), int | float):
        parts.append(f"agree {accuracy['agreement']:.1f}%")
    text = ", ".join(parts)
    return text + (" FLAGGED" if accuracy.get("flagged") else "")


def postprocess_cell(value: Any) -> str:
    """Detection's box decoding + NMS and end-to-end p50 (ms), timed apart from the network."""
    if not isinstance(value, dict):
        return "–"
    parts = []
    for key, label in (("decode_nms", "decode+NMS"), ("end_to_end", "end to end")):
        stats = value.get(key)
        if isinstance(stats, dict) and isinstance(stats.get("p50_ms"), int | float):
            parts.append(f"{label} {stats['p50_ms']:.2f}")
    return ", ".join(parts) or "–"


def latency_table(latency: list[dict[str, Any]]) -> Table:
    columns = ("model", "task", "runtime", "precision", "layout", "threads", "batch", "p50 (ms)", "p90 (ms)",
               "mean ± std (ms)", "min (ms)", "runs", "init (ms)", "post-process p50 (ms)", "accuracy vs eager fp32",
               "peak memory (MB)", "source")  # fmt: skip
    rows = []
    for record in latency:
        rows.append((
            model_label(record),
            record["task"],
            record["runtime"],
            record["precision"],
            str(record.get("layout") or "–"),
            str(record["threads"]),
            str(record["batch_size"]),
            fmt_num(record["p50_ms"]),
            fmt_num(record["p90_ms"]),
            f"{fmt_num(record['mean_ms'])} ± {fmt_num(record['std_ms'])}",
            fmt_num(record["min_ms"]),
            str(record["runs"]),
            fmt_num(record.get("init_ms"), 0),
            postprocess_cell(record.get("postprocess")),
            accuracy_cell(record.get("accuracy")),
            fmt_num(record.get("peak_memory_mb"), 1),
            latency_source(record),
        ))  # fmt: skip
    return Table("latency_measured", columns, tuple(rows))


def reported_latency_table(rows: list[Reported]) -> Table:
    columns = ("model", "task", "metric reported", "params", "MAdds", "CPU (ms)", "device", "source")
    out = [
        (row.model, row.task, f"{METRIC_LABELS[row.metric]} {row.value}", row.params or "–", row.madds or "–",
         row.cpu_ms or "–", PIXEL1, reported_source(row))
        for row in rows if row.cpu_ms is not None
    ]  # fmt: skip
    return Table("latency_reported", columns, tuple(out))


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
    """The newest result per (task, backbone, width, resolution): what a latency row is paired with."""
    latest: dict[tuple, dict[str, Any]] = {}
    for record in results:
        key = (record["task"], record["backbone"], width_of(record), record["resolution"])
        if key not in latest or str(record["created"]) >= str(latest[key]["created"]):
            latest[key] = record
    return latest


def runtime_accuracy(latency: dict[str, Any], result: dict[str, Any], task: str) -> float:
    """The timed runtime's own accuracy from its gate (int8 may lose some), else the run's metric."""
    gate = latency.get("accuracy") or {}
    if gate.get("metric") == TASK_METRICS[task] and isinstance(gate.get("value"), int | float):
        return float(gate["value"])
    return float(result["metrics"][TASK_METRICS[task]])


def accuracy_vs_latency_spec(
    task: str, results: list[dict[str, Any]], latency: list[dict[str, Any]], baselines: Baselines
) -> dict[str, Any]:
    metric = METRIC_LABELS[TASK_METRICS[task]]
    reported_rows = [r for r in baselines.for_task(task) if r.cpu_ms is not None and r.value is not None]
    reported = [series(f"{_source_group(reported_rows[0])}, {PIXEL1}",
                       [(float(r.cpu_ms), float(r.value), r.model) for r in reported_rows], marker="D")] \
        if reported_rows else []  # fmt: skip
    latest = latest_results(results)
    groups: dict[str, list[tuple[float, float, str]]] = {}
    for record in latency:
        key = (record["task"], record["backbone"], width_of(record), record["resolution"])
        if record["task"] != task or key not in latest:
            continue
        result = latest[key]
        name = f"{record['backbone']} {width_of(record)} {record['runtime']} t{record['threads']}"
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


# -- pages ----------------------------------------------------------------------------------------

HEADER = (
    "<!-- Generated by `bench leaderboard` from records/ and benchmark/baselines.py; do not edit. -->\n"
    "<!-- Regenerate: `bench leaderboard`; check: `bench leaderboard --check`. -->\n"
)
LEGEND = (
    "Each row says where its numbers come from: **reported (source, table)** copies a paper table or "
    "a torchvision model card; **measured (dataset, device, runtime, commit)** is a record this suite "
    "wrote. Rows measured on the suite's embedded generated data say **[synthetic]**: those numbers "
    "show the pipeline learns, they are not comparable with ImageNet/COCO/VOC numbers. *Counted* "
    "params/MAdds are the suite's own model of the same configuration (``bench profile``: "
    "torch.utils.flop_counter, 1 multiply-add = 2 FLOPs; params include BatchNorm affine weights); "
    "Δ = (counted - reported) / reported."
)


def table_block(table: Table, empty: str) -> str:
    link = f"CSV: [{table.name}.csv]({table.name}.csv)"
    if not table.rows:
        return f"_{empty}_\n\n{link}\n"
    return f"{table.markdown()}\n\n{link}\n"


def task_page(task: str, reported: Table, measured: Table, plots: list[str]) -> str:
    plot_lines = "\n".join(f"![{name}]({PLOTS_DIR}/{name}.png)" for name in plots)
    hint = ("No measured records for this task yet: run `bench sweep --tier quick`, or add a run's "
            "record with `bench leaderboard --add runs/<run>/result.json`.")  # fmt: skip
    return (
        f"{HEADER}\n# {TASK_TITLES[task]} leaderboard\n\n{LEGEND}\n\n"
        f"## Measured by this suite\n\n{table_block(measured, hint)}\n"
        f"## Reported, with the suite's counted params and MAdds\n\n"
        f"{table_block(reported, 'No reported rows.')}\n"
        f"## Plots\n\n{plot_lines}\n"
    )


def latency_page(measured: Table, reported: Table) -> str:
    hint = "No latency records yet: run `bench sweep --tier quick` or `bench latency ... --output DIR` and add them."
    return (
        f"{HEADER}\n# Latency leaderboard\n\n{LEGEND}\n\n"
        "Measured rows follow issue 6's method (warm-up, then at least N runs and T seconds; a real "
        "input image; threads set explicitly). *Accuracy vs eager fp32* is the runtime's accuracy gate "
        "on the task's validation data; FLAGGED rows fall below the MLPerf-style target.\n\n"
        f"## Measured on the machine that ran `bench latency`\n\n{table_block(measured, hint)}\n"
        f"## Reported ({PIXEL1})\n\n{table_block(reported, 'No reported rows.')}\n"
        f"## Plots\n\n![latency by runtime]({PLOTS_DIR}/latency_by_runtime.png)\n"
    )


SWEEP_HELP = """\
## Adding measurements

- `bench sweep --tier quick`: every registered task x mnv1, mnv2 and two torchvision baselines
  (mobilenet_v3_large, mobilenet_v3_small) at width 1.0, trained on the embedded synthetic data
  with its recipes (minutes per model on 2 CPU cores), each trained checkpoint then timed with
  every CPU runtime (`eager`, `eager-cl`, `compile`, `onnxruntime`, `onnxruntime-int8`; `--tier
  quick` latency, 2 threads). Sized for CI on 2 CPU cores (`--run-args "--max-epochs 2"` for a
  shorter smoke run). Records land in `records/`; then run `bench leaderboard`.
- `bench sweep --tier full --data classification=/data/imagenet --data detection=/data/coco
  --data segmentation=/data/voc`: the papers' matrix on real data (every backbone; MobileNet widths
  0.35-1.4 and resolutions 96-224 for classification, 320 for detection, 513 for segmentation), the
  shipped recipes' full schedules, every runtime the machine has (`cuda` on a GPU) with the
  `normal` latency tier (>= 1024 runs and 60 s, as MLPerf Mobile). Narrow it with `--tasks`,
  `--backbones`, `--widths`, `--resolutions`, `--runtimes`; pass trainer flags with
  `--run-args "--devices 8 --strategy ddp"`. Expect GPU-days for classification.
- One run by hand: `bench run ... --output runs/x` then `bench leaderboard --add runs/x/result.json`.
- Counted params/MAdds (the *counted* columns): `bench leaderboard --recount`.
"""


def readme_page(counts: dict[str, int], tables: list[Table], plots: list[str]) -> str:
    kinds = ", ".join(f"{counts.get(kind, 0)} {kind}" for kind in ("result", "latency", "profile"))
    pages = "\n".join(f"- [{TASK_TITLES.get(task, 'Latency')}]({task}.md)" for task in (*TASKS, "latency"))
    csvs = "\n".join(f"- [{t.name}.csv]({t.name}.csv): {len(t.rows)} rows" for t in tables)
    pngs = "\n".join(f"- [{name}.png]({PLOTS_DIR}/{name}.png)" for name in plots)
    return (
        f"{HEADER}\n# Leaderboards\n\nGenerated from {sum(counts.values())} records in `records/` "
        f"({kinds}) and the reported baselines in `benchmark/baselines.py`.\n\n{LEGEND}\n\n"
        f"## Tables\n\n{pages}\n\n## CSV files\n\n{csvs}\n\n## Plots\n\n{pngs}\n\n{SWEEP_HELP}"
    )


# -- the generator -------------------------------------------------------------------------------


def split_records(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {"result": [], "latency": [], "profile": []}
    for record in sorted(records, key=record_sort_key):
        kinds[record["kind"]].append(record)
    return kinds


def generate_tables(records: Sequence[dict[str, Any]], baselines: Baselines = BASELINES) -> list[Table]:
    """All tables, in page order (what CSV files and W&B tables are made of)."""
    kinds = split_records(records)
    profiles = {record["key"]: record for record in kinds["profile"]}
    tables = []
    for task in TASKS:
        results = [r for r in kinds["result"] if r["task"] == task]
        tables.append(measured_table(task, results))
        tables.append(reported_table(task, baselines.for_task(task), profiles))
    tables.append(latency_table(kinds["latency"]))
    tables.append(reported_latency_table(list(baselines.rows)))
    return tables


def generate(records: Sequence[dict[str, Any]], baselines: Baselines = BASELINES) -> dict[str, bytes]:
    """Every leaderboard file, as ``{path relative to the leaderboards folder: bytes}``."""
    kinds = split_records(records)
    tables = {table.name: table for table in generate_tables(records, baselines)}
    files: dict[str, bytes] = {}
    plots: list[str] = []
    for task in TASKS:
        results = [r for r in kinds["result"] if r["task"] == task]
        task_plots = {
            f"{task}_accuracy_vs_madds": accuracy_vs_madds_spec(task, results, baselines),
            f"{task}_accuracy_vs_latency": accuracy_vs_latency_spec(
                task, results, kinds["latency"], baselines
            ),
        }
        for name, spec in task_plots.items():
            files[f"{PLOTS_DIR}/{name}.png"] = render(spec)
        plots += list(task_plots)
        page = task_page(task, tables[f"{task}_reported"], tables[f"{task}_measured"], list(task_plots))
        files[f"{task}.md"] = page.encode()
    files[f"{PLOTS_DIR}/latency_by_runtime.png"] = render(latency_by_runtime_spec(kinds["latency"]))
    plots.append("latency_by_runtime")
    files["latency.md"] = latency_page(tables["latency_measured"], tables["latency_reported"]).encode()
    for table in tables.values():
        files[f"{table.name}.csv"] = table.csv().encode()
    counts = {kind: len(items) for kind, items in kinds.items()}
    files["README.md"] = readme_page(counts, list(tables.values()), plots).encode()
    return dict(sorted(files.items()))


def is_generated(relative: str) -> bool:
    """Files ``bench leaderboard`` owns in the output folder (records/ and anything else are left alone)."""
    parts = relative.split("/")
    if len(parts) == 1:
        return parts[0].endswith((".md", ".csv"))
    return len(parts) == 2 and parts[0] == PLOTS_DIR and parts[1].endswith(".png")


def same_content(relative: str, old: bytes, new: bytes) -> bool:
    """Equal bytes, or for PNGs the same plotted data (another matplotlib may rasterise differently)."""
    if old == new:
        return True
    if relative.endswith(".png"):
        digest = png_data_digest(new)
        return digest is not None and png_data_digest(old) == digest
    return False
