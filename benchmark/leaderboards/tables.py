"""Leaderboard tables: records and reported rows -> ``Table`` (markdown inside a page, CSV beside it),
with the number formatting every page and plot shares."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.leaderboards.baselines import (
    BASELINES,
    FULL_VAL_IMAGES,
    METRIC_LABELS,
    Baselines,
    Reported,
    number,
    official_checkpoint,
)
from benchmark.leaderboards.store import TASK_METRICS, weights_name
from tasks.facts import TASK_FACTS, TASK_NAMES

TASKS = TASK_NAMES

# Result metrics shown per task (key in the record's ``metrics``, column title), percent.
METRIC_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "classification": [("top1", "top-1"), ("top5", "top-5")],
    "detection": [("map", "mAP"), ("map_50", "AP50"), ("map_75", "AP75"), ("map_small", "AP S"),
                  ("map_medium", "AP M"), ("map_large", "AP L"), ("mar_100", "AR100")],
    "segmentation": [("miou", "mIoU"), ("pixel_acc", "pixel acc")],
}  # fmt: skip
# Config keys that tell two models of one task apart (shown after the backbone when present).
MODEL_OPTIONS = {"detection": ("head",), "segmentation": ("output_stride", "aspp")}
TASK_TITLES = {name: facts.title for name, facts in TASK_FACTS.items()}
REPORTED_DATASET = {name: facts.reported_dataset for name, facts in TASK_FACTS.items()}
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


def timed_model_label(record: dict[str, Any]) -> str:
    """``mnv2 1.0 @224``, plus the official file when its weights were timed (a row of its own: its
    runtimes were gated on real images, the others on the embedded data)."""
    weights = record.get("weights") or {}
    official = weights.get("source") == "tflite" and weights.get("file")
    return model_label(record) + (f" ({Path(str(weights['file'])).stem})" if official else "")


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


# Dataset names as records store them -> as people write them.
DATASET_NAMES = {"imagenet": "ImageNet", "coco": "COCO", "voc2012": "PASCAL VOC 2012", "voc2012+sbd": "PASCAL VOC 2012"}
# Evaluation settings (record ``settings``) as words in a source label.
SETTING_WORDS = {"max_detections": "{} detections per image", "nms_iou": "NMS IoU {}", "score_threshold": "score threshold {:g}",
                 "nms": "{} NMS", "max_classes_per_detection": "{} class(es) per detection", "box_scales": "box scales {}",
                 "execution": "{} execution"}


def data_label(record: dict[str, Any]) -> str:
    """``ImageNet val slice, 456 images``: a record on fewer images than the full val set says so."""
    dataset = record["dataset"]
    name = str(dataset.get("name") or "unknown dataset")
    name = DATASET_NAMES.get(name.split(" ")[0].lower(), name) if not dataset.get("synthetic") else f"{name} [synthetic]"
    images = record.get("images")
    part = " slice" if isinstance(images, int) and images < FULL_VAL_IMAGES.get(record["task"], 0) else ""
    return f"{name} {record.get('split', 'val')}{part}, {images} images"


def weights_label(record: dict[str, Any]) -> str:
    checkpoint = official_checkpoint(record)
    if checkpoint is not None:
        return checkpoint.label
    weights = record["weights"]
    if weights.get("file"):
        return f"weights {weights_name(record)} ({weights['source']})"
    return f"{weights['source']} weights"


def settings_words(record: dict[str, Any]) -> list[str]:
    settings = record.get("settings") or {}
    return [SETTING_WORDS.get(key, key + " {}").format(value) for key, value in sorted(settings.items())]


def evaluation_runtime(record: dict[str, Any]) -> str:
    """``eager`` (the float import; records before integer execution name no runtime), ``tflite-int8``, ..."""
    return str(record.get("runtime") or "eager")


def runtime_words(record: dict[str, Any]) -> list[str]:
    """How the record's numbers were computed: the float import, or the file's integers and how often
    their raw outputs equalled LiteRT's on the same bytes."""
    runtime = evaluation_runtime(record)
    if runtime == "eager":
        return ["runtime eager fp32"]
    words = [f"runtime {runtime} ({record.get('precision', '?')})"]
    agreement = record.get("litert_agreement") or {}
    if agreement:
        words.append(f"raw outputs {fmt_num(agreement.get('raw_values_equal'))} % / arg-max "
                     f"{fmt_num(agreement.get('argmax_equal'))} % equal to LiteRT's")  # fmt: skip
    return words


def evaluation_source(record: dict[str, Any]) -> str:
    """``measured (ImageNet val slice, 456 images, official ... weights, tf-inception preset, commit abc)``."""
    env = record["environment"]
    parts = [data_label(record), weights_label(record), f"{record['preset']} preset", *settings_words(record),
             *runtime_words(record)]  # fmt: skip
    return f"measured ({', '.join(parts)}, PyTorch {env.get('torch', '?')}, commit {env.get('commit', '?')})"


def reported_source(row: Reported) -> str:
    return f"reported ({row.source})"


def record_sort_key(record: dict[str, Any]) -> tuple:
    return (
        record["task"],
        record["backbone"],
        width_of(record),
        record["resolution"],
        str((record.get("weights") or {}).get("file", "")),
        json.dumps(record.get("settings") or {}, sort_keys=True, default=str),
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


def evaluation_metrics(task: str) -> list[tuple[str, str]]:
    """The two metrics an evaluation row shows: the headline one and the next (top-5, AP50, pixel acc)."""
    return METRIC_COLUMNS[task][:1] + [m for m in METRIC_COLUMNS[task] if m[0] in ("top5", "map_50", "pixel_acc")]


def _values(values: dict[str, Any], keys: list[str], decimals: int = 2) -> str:
    return " / ".join(fmt_num(values.get(key), decimals) if not isinstance(values.get(key), str) else values[key]
                      for key in keys)  # fmt: skip


def evaluation_table(evaluations: list[dict[str, Any]], name: str = "real_data") -> Table:
    """``bench eval`` records beside the same checkpoint's reported number and the official runtime's
    number on the same images: the suite is judged against the runtime, not the full-set figure."""
    columns = ("checkpoint", "suite model", "task", "runtime", "metrics (%)", "measured by this suite",
               "95% CI (first metric)", "official runtime, same images", "reported, full val set", "source")  # fmt: skip
    rows = []
    for record in evaluations:
        metrics = evaluation_metrics(record["task"])
        keys = [key for key, _ in metrics]
        checkpoint = official_checkpoint(record)
        reference = checkpoint.reference_for(record) if checkpoint else None
        ci = (record.get("ci95") or {}).get(keys[0])
        runtime = "–"
        if reference is not None:
            runtime = f"{_values(dict(reference.metrics), keys)} ({reference.runtime}; {reference.source})"
        reported = "–"
        if checkpoint is not None and checkpoint.reported:
            note = f"; {checkpoint.note}" if checkpoint.note else ""
            printed = dict(checkpoint.reported)
            reported = f"{' / '.join(printed.get(key, '–') for key in keys)} (reported: {checkpoint.source}{note})"
        rows.append((
            weights_name(record),
            model_label(record),
            record["task"],
            evaluation_runtime(record),
            " / ".join(title for _, title in metrics),
            _values(record["metrics"], keys),
            f"{fmt_num(ci[0])}–{fmt_num(ci[1])}" if isinstance(ci, list) and len(ci) == 2 else "–",
            runtime,
            reported,
            evaluation_source(record),
        ))  # fmt: skip
    return Table(name, columns, tuple(rows))


# The columns of the integer-execution table: the float import, then the file's integers as TFLite's
# builtin kernels and as XNNPACK (LiteRT's default interpreter) compute them.
EVALUATION_RUNTIMES = (("eager", "float import (eager fp32)"), ("tflite-int8", "tflite-int8 (builtin kernels)"),
                       ("xnnpack-int8", "xnnpack-int8 (LiteRT default)"))  # fmt: skip


def integer_execution_table(evaluations: list[dict[str, Any]]) -> Table:
    """One row per official file and evaluation setting, the float import and the integer runtimes side by
    side with the official runtime on the same images: where the float shadow and the deployed integers
    part, and which of the suite's arithmetics reproduces the runtime (the newest record of each cell)."""
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for record in evaluations:
        checkpoint = official_checkpoint(record)
        if checkpoint is None:
            continue
        key = (checkpoint.file, json.dumps(record.get("settings") or {}, sort_keys=True))
        cell = groups.setdefault(key, {})
        runtime = evaluation_runtime(record)
        if runtime not in cell or str(record.get("created", "")) >= str(cell[runtime].get("created", "")):
            cell[runtime] = record
    columns = ("checkpoint", "setting", "metrics (%)", *[title for _, title in EVALUATION_RUNTIMES],
               "official runtime, same images", "records' commits")  # fmt: skip
    rows = []
    for _key, cells in sorted(groups.items()):
        any_record = next(iter(cells.values()))
        keys = [key for key, _ in evaluation_metrics(any_record["task"])]
        reference = official_checkpoint(any_record).reference_for(any_record)
        measured = []
        for runtime, _ in EVALUATION_RUNTIMES:
            record = cells.get(runtime)
            agreement = (record or {}).get("litert_agreement") or {}
            text = _values(record["metrics"], keys) if record else "–"
            if agreement:
                text += f" (raw = LiteRT {fmt_num(agreement.get('raw_values_equal'))} %)"
            measured.append(text)
        rows.append((
            weights_name(any_record),
            ", ".join(settings_words(any_record)) or "–",
            " / ".join(title for _, title in evaluation_metrics(any_record["task"])),
            *measured,
            f"{_values(dict(reference.metrics), keys)} ({reference.runtime})" if reference else "–",
            ", ".join(sorted({str(r["environment"].get("commit", "?")) for r in cells.values()})),
        ))  # fmt: skip
    return Table("integer_execution", columns, tuple(rows))


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
    verdict = accuracy.get("verdict")  # records before the judging gate carry only ``flagged``
    if verdict in ("fail", "not judged"):
        return f"{text} {verdict.upper()}" + (f" ({accuracy['reason']})" if accuracy.get("reason") else "")
    return text + (" FLAGGED" if accuracy.get("flagged") and verdict is None else "")


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


def gated_on_synthetic(record: dict[str, Any]) -> bool:
    """The accuracy gate ran on the embedded generated data (its verdict says nothing of real images)."""
    return bool(record.get("accuracy")) and "synthetic" in str(record.get("input") or "")


def latency_table(latency: list[dict[str, Any]]) -> Table:
    columns = ("model", "task", "runtime", "precision", "layout", "threads", "batch", "p50 (ms)", "p90 (ms)",
               "mean ± std (ms)", "min (ms)", "runs", "tier", "init (ms)", "post-process p50 (ms)", "accuracy vs eager fp32",
               "peak memory (MB)", "source")  # fmt: skip
    rows = []
    for record in latency:
        rows.append((
            timed_model_label(record),
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
            str(record.get("tier") or "–"),
            fmt_num(record.get("init_ms"), 0),
            postprocess_cell(record.get("postprocess")),
            accuracy_cell(record.get("accuracy")) + (" [synthetic]" if gated_on_synthetic(record) else ""),
            fmt_num(record.get("peak_memory_mb"), 1),
            latency_source(record),
        ))  # fmt: skip
    return Table("latency_measured", columns, tuple(rows))


def is_device_record(record: dict[str, Any]) -> bool:
    """Timed on another machine by ``bench latency --device`` (its ``target`` block); such rows have
    tables of their own, never mixed with the host's."""
    return bool(record.get("target"))


def target_label(record: dict[str, Any]) -> str:
    """The device as people name it: ``Pixel 7 (Google, gs201)``; the site groups on ``target.model``."""
    target = record.get("target") or {}
    extra = ", ".join(str(target[k]) for k in ("manufacturer", "soc") if target.get(k))
    return f"{target.get('model') or record.get('device') or '?'}" + (f" ({extra})" if extra else "")


def device_source(record: dict[str, Any]) -> str:
    target = record["target"]
    tool = target.get("tool") or {}
    version = record.get("runtime_version")
    env = record.get("environment") or {}
    return (f"measured on the device ({target.get('transport')} {target.get('address')}, {tool.get('name')}, "
            f"{record['runtime']} {version or ''}".rstrip() + f", {env.get('commit', '?')})")  # fmt: skip


def device_latency_table(latency: list[dict[str, Any]]) -> Table:
    """Latency timed on phones and boards, the device as a column."""
    columns = ("device", "abi", "model", "task", "runtime", "precision", "threads", "cpu mask", "delegate (nodes)",
               "p50 (ms)", "mean ± std (ms)", "min (ms)", "runs", "tier", "temp before → after (°C)",
               "accuracy vs eager fp32", "source")  # fmt: skip
    rows = []
    for record in latency:
        target = record["target"]
        delegate = target.get("delegate") or "–"
        if target.get("delegated_nodes") is not None:
            delegate += f" ({target['delegated_nodes']}" + (f"/{target['total_nodes']})" if target.get("total_nodes") else ")")
        if target.get("delegate_fallback"):
            delegate += " FALLBACK to CPU"
        temps = f"{fmt_num(target.get('temp_before_c'), 1)} → {fmt_num(target.get('temp_after_c'), 1)}"
        rows.append((
            target_label(record), str(target.get("abi") or "–"), timed_model_label(record), record["task"],
            record["runtime"], record["precision"], str(record["threads"]), str(target.get("cpu_mask") or "–"), delegate,
            fmt_num(record["p50_ms"]), f"{fmt_num(record['mean_ms'])} ± {fmt_num(record['std_ms'])}",
            fmt_num(record["min_ms"]), str(record["runs"]), str(record.get("tier") or "–"), temps,
            accuracy_cell(record.get("accuracy")) + (" [synthetic]" if gated_on_synthetic(record) else ""),
            device_source(record),
        ))  # fmt: skip
    rows.sort(key=lambda row: (row[0], row[2], row[4]))
    return Table("latency_devices", columns, tuple(rows))


def reported_latency_table(rows: list[Reported]) -> Table:
    columns = ("model", "task", "metric reported", "params", "MAdds", "CPU (ms)", "device", "source")
    out = [
        (row.model, row.task, f"{METRIC_LABELS[row.metric]} {row.value}", row.params or "–", row.madds or "–",
         row.cpu_ms or "–", PIXEL1, reported_source(row))
        for row in rows if row.cpu_ms is not None
    ]  # fmt: skip
    return Table("latency_reported", columns, tuple(out))


# -- all tables -----------------------------------------------------------------------------------


def split_records(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {"result": [], "evaluation": [], "latency": [], "profile": []}
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
    tables.append(evaluation_table(kinds["evaluation"]))
    tables.append(integer_execution_table(kinds["evaluation"]))
    tables.append(latency_table([r for r in kinds["latency"] if not is_device_record(r)]))
    devices = [r for r in kinds["latency"] if is_device_record(r)]
    if devices:  # a table of its own, only when some record was timed on a device
        tables.append(device_latency_table(devices))
    tables.append(reported_latency_table(list(baselines.rows)))
    return tables


