"""The headline table of a task: one row per model, the few numbers a reader chooses by.

Columns: the model, its reported accuracy (with a short source reference), its accuracy measured on
real images where the suite has the weights, params and MAdds (the suite's count where it has one),
the p50 latency of the fastest fp32 and int8 runtimes on one host (the host with most records of that
model; rows whose gate FAILED are left out), the host, and the fastest time on a device. Provenance
is a numbered footnote per number, each linking to its record; the long source words stay in the CSVs.

A model is the suite's build of a reported network (backbone, width, resolution and the task's
options), or an official checkpoint (its own row: accuracy and latency of those very weights), or a
reported network the suite does not build. Measurements on the embedded synthetic data never appear
here (the pages' smoke-run sections hold them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.leaderboards.baselines import METRIC_LABELS, Baselines, Reported
from benchmark.leaderboards.cells import fmt_count, fmt_num, width_of
from benchmark.leaderboards.hosts import machine_label, target_label
from benchmark.leaderboards.latency_tables import is_device_record
from benchmark.leaderboards.official import official_checkpoint
from benchmark.leaderboards.provenance import evaluation_source, latency_source
from benchmark.leaderboards.store import TASK_METRICS, record_name

COLUMNS = ("model", "reported", "measured, real data", "params", "MAdds", "fp32 p50 (ms)", "int8 p50 (ms)",
           "host", "device p50 (ms)", "notes")  # fmt: skip
INT8 = ("int8", "uint8")
# Source names as a short reference: "MobileNetV2 paper, Table 4" -> "V2 T4".
SHORT_SOURCES = ((r"^MobileNetV(\d) paper, Table (\d+)$", r"V\1 T\2"), (r"^TF-slim .*", "TF-slim"),
                 (r"^torchvision [\d.]+ model card.*", "torchvision"), (r"^TF Lite hosted models.*", "TFLite hosted"),
                 (r"^TF detection model zoo.*", "TF OD zoo"), (r"^DeepLab quantize\.md.*", "DeepLab quantize.md"),
                 (r"^DeepLab model zoo.*", "DeepLab zoo"), (r"^timm results/.*", "timm results"),
                 (r"^tensorflow/tpu .*", "TF EfficientNet-Lite"), (r"^THU-MIG/RepViT.*", "RepViT README"))  # fmt: skip


def short_source(source: str) -> str:
    for pattern, short in SHORT_SOURCES:
        if re.match(pattern, source):
            return re.sub(pattern, short, source)
    # The first file named, without its parenthesis: "org/repo README.md (...); other" -> "org/repo README.md".
    first = re.split(r"[;,]| \(", source)[0].strip()
    return first if len(first) <= 32 else first[:31] + "…"


@dataclass(frozen=True)
class Note:
    """A footnote: where one number of the row comes from, and the record that holds it."""

    text: str
    record: str | None = None  # file name in leaderboards/records/


@dataclass
class Model:
    """What the records and reported rows say about one model, before it becomes a row."""

    key: tuple
    label: str
    reported: list[Reported] = field(default_factory=list)
    checkpoint_reported: tuple[str, str] | None = None  # (value, source) of an official file
    evaluation: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    latency: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class HeadlineRow:
    task: str
    anchor: str
    cells: tuple[str, ...]  # in COLUMNS order, the last one empty (the notes are rendered per page)
    notes: tuple[Note, ...]


def anchor_of(task: str, label: str) -> str:
    """A stable id for a row: the task and the model label, lower case, non-alphanumerics as '-'."""
    return re.sub(r"[^a-z0-9.]+", "-", f"{task}-{label}".lower()).strip("-").replace(".", "_")


def model_key(backbone: str, width: float | None, resolution: int, extra: Any = ()) -> tuple:
    return (backbone, float(width or 1.0), int(resolution), extra)


def default_options(task: str) -> dict[str, Any]:
    """The task's own defaults for its model options (what ``bench latency`` builds without flags)."""
    from tasks import get_task

    return get_task(task).defaults()


def reported_models(task: str, baselines: Baselines, profiles: dict[str, dict]) -> dict[tuple, Model]:
    """Reported rows by model: the suite's build where it has one, else the printed name alone."""
    models: dict[tuple, Model] = {}
    defaults = default_options(task)
    for row in baselines.for_task(task):
        if row.part != "model":
            continue  # prediction-layer counts (V2 Table 5) are not a model
        if row.suite is None:
            key, label = ("reported", row.model), row.model
        else:
            suite = row.suite
            is_default = all(defaults.get(k) == v for k, v in suite.options)
            key = model_key(suite.backbone, suite.width, suite.resolution, () if is_default else suite.options)
            label = f"{suite.backbone} {float(suite.width or 1.0)} @{suite.resolution}" + (
                "" if is_default else " " + " ".join(suite.flags))
        model = models.setdefault(key, Model(key, label))
        model.reported.append(row)
        if row.suite is not None and model.profile is None:
            model.profile = profiles.get(row.suite.key)
    return models


def record_key(record: dict[str, Any]) -> tuple:
    """An official file's records have a row of their own; other records join the suite's default build."""
    weights = record.get("weights") or {}
    stem = Path(str(weights.get("file"))).stem if weights.get("source") == "tflite" and weights.get("file") else ()
    if record["kind"] == "evaluation" and official_checkpoint(record) is not None:
        stem = Path(official_checkpoint(record).file).stem
    return model_key(record["backbone"], width_of(record), record["resolution"], stem)


def _shown_first(record: dict[str, Any]) -> tuple[bool, str]:
    """Which evaluation a model's row shows: one the official runtime was run on too (the same images and
    setting, so the two numbers compare), then the newest."""
    checkpoint = official_checkpoint(record)
    return checkpoint is not None and checkpoint.reference_for(record) is not None, str(record["created"])


def gather(task: str, kinds: dict[str, list[dict[str, Any]]], baselines: Baselines) -> list[Model]:
    """Every model of the task with its reported rows, real-data evaluation and latency records."""
    profiles = {record["key"]: record for record in kinds["profile"]}
    models = reported_models(task, baselines, profiles)
    for record in kinds["evaluation"]:
        if record["task"] != task or str(record.get("runtime") or "eager") != "eager":
            continue
        model = _model_for(models, record)
        if model.evaluation is None or _shown_first(record) > _shown_first(model.evaluation):
            model.evaluation = record
        checkpoint = official_checkpoint(record)
        if checkpoint is not None and checkpoint.reported:
            value = dict(checkpoint.reported).get(TASK_METRICS[task])
            if value is not None:
                model.checkpoint_reported = (value, checkpoint.source)
    for record in kinds["latency"]:
        if record["task"] == task:
            _model_for(models, record).latency.append(record)
    return sorted(models.values(), key=lambda m: (isinstance(m.key[0], str) and m.key[0] == "reported", m.label))


def _model_for(models: dict[tuple, Model], record: dict[str, Any]) -> Model:
    key = record_key(record)
    if key not in models:
        stem = f" ({key[3]})" if key[3] else ""
        models[key] = Model(key, f"{key[0]} {key[1]} @{key[2]}{stem}")
    return models[key]


def fastest(records: list[dict[str, Any]], precisions: Sequence[str]) -> dict[str, Any] | None:
    """The lowest p50 among records of these precisions whose accuracy gate did not fail."""
    usable = [r for r in records if r["precision"] in precisions and (r.get("accuracy") or {}).get("verdict") != "fail"]
    return min(usable, key=lambda r: (float(r["p50_ms"]), r["runtime"]), default=None)


def host_records(latency: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The host (and thread count) with most records of a model: one machine per row."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in latency:
        if not is_device_record(record):
            groups.setdefault((machine_label(record), int(record["threads"])), []).append(record)
    if not groups:
        return "–", []
    (host, threads), records = max(groups.items(), key=lambda item: (len(item[1]), item[0]))
    return f"{host}, {threads} thread{'s' if threads > 1 else ''}", records


# -- rows -----------------------------------------------------------------------------------------


def reported_cell(model: Model, metric: str) -> tuple[str, list[Note]]:
    """``72.0 (V2 T4); 71.8 (TF-slim)``: each printed value once, with its short sources."""
    values: dict[str, list[str]] = {}
    notes = []
    for row in model.reported:
        if row.value is not None:
            values.setdefault(row.value, []).append(short_source(row.source))
            notes.append(Note(f"reported {METRIC_LABELS[metric]} {row.value}: {row.source}"))
    if model.checkpoint_reported is not None:
        value, source = model.checkpoint_reported
        values.setdefault(value, []).append(short_source(source) + ", full val")
        notes.append(Note(f"reported {METRIC_LABELS[metric]} {value} for the official file: {source}"))
    parts = [f"{value} ({', '.join(dict.fromkeys(sources))})" for value, sources in values.items()]
    text = "; ".join(parts)
    return (text if len(text) <= 80 else "; ".join(parts[:2]) + f"; +{len(parts) - 2} more") or "–", notes


def counts_cells(model: Model) -> tuple[str, str, list[Note]]:
    """Params and MAdds: the suite's count of the same build where it has one, else as reported."""
    if model.profile is not None:
        note = Note(f"params and MAdds counted by the suite (bench profile), key {model.profile['key']}",
                    record_name(model.profile))  # fmt: skip
        return fmt_count(model.profile["params"], "M"), fmt_count(model.profile["madds"]), [note]
    printed = next((row for row in model.reported if row.params or row.madds), None)
    if printed is None:
        return "–", "–", []
    note = Note(f"params and MAdds as reported: {printed.source}")
    return f"{printed.params or '–'} (rep.)", f"{printed.madds or '–'} (rep.)", [note]


def measured_cell(model: Model, metric: str) -> tuple[str, list[Note]]:
    record = model.evaluation
    if record is None:
        return "–", []
    ci = (record.get("ci95") or {}).get(metric)
    interval = f" [{fmt_num(ci[0])}–{fmt_num(ci[1])}]" if isinstance(ci, list) and len(ci) == 2 else ""
    text = f"{fmt_num(record['metrics'].get(metric))}{interval}, {record.get('images')} img"
    return text, [Note(f"{METRIC_LABELS[metric]} and its 95 % CI on real images: {evaluation_source(record)}", record_name(record))]


def latency_cells(model: Model) -> tuple[list[str], list[Note]]:
    """fp32 p50, int8 p50 and their host; the fastest device time."""
    host, records = host_records(model.latency)
    cells, notes = [], []
    for what, precisions in (("fp32", ("fp32",)), ("int8", INT8)):
        best = fastest(records, precisions)
        cells.append(f"{fmt_num(best['p50_ms'])} {best['runtime']}" if best else "–")
        if best:
            notes.append(Note(f"fastest {what} p50 on this host: {latency_source(best)}", record_name(best)))
    devices = [r for r in model.latency if is_device_record(r)]
    best = fastest(devices, ("fp32", *INT8))
    device = f"{fmt_num(best['p50_ms'])} {best['runtime']}, {target_label(best)}" if best else "–"
    if best:
        notes.append(Note(f"fastest on a device: {latency_source(best)}", record_name(best)))
    return [*cells, host if records else "–", device], notes


def headline_rows(task: str, kinds: dict[str, list[dict[str, Any]]], baselines: Baselines) -> list[HeadlineRow]:
    """One row per model of ``task``: reported rows, official files and the suite's timed builds."""
    metric = TASK_METRICS[task]
    rows = []
    for model in gather(task, kinds, baselines):
        reported, reported_notes = reported_cell(model, metric)
        measured, measured_notes = measured_cell(model, metric)
        params, madds, count_notes = counts_cells(model)
        timing, timing_notes = latency_cells(model)
        notes = (*reported_notes, *measured_notes, *count_notes, *timing_notes)
        rows.append(HeadlineRow(task, anchor_of(task, model.label),
                                (model.label, reported, measured, params, madds, *timing, ""), notes))  # fmt: skip
    return rows


# -- rendering ------------------------------------------------------------------------------------


def headline_markdown(rows: list[HeadlineRow], records_dir: str = "records") -> str:
    """The table with an anchor per row and numbered notes below it, each linking to its record."""
    if not rows:
        return "_No models yet._"
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    notes: list[str] = []
    for row in rows:
        links = []
        for note in row.notes:
            notes.append(_note_line(row.task, len(notes) + 1, note, records_dir))
            links.append(f"[{len(notes)}](#{row.task}-n{len(notes)})")
        cells = [f'<a id="{row.anchor}"></a>{row.cells[0]}', *row.cells[1:-1], " ".join(links) or "–"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n\nNotes:\n\n" + "\n".join(notes)


def _note_line(task: str, number: int, note: Note, records_dir: str) -> str:
    link = f" ([record]({records_dir}/{note.record}))" if note.record else ""
    return f'{number}. <a id="{task}-n{number}"></a>{note.text}{link}'


def headline_csv_rows(rows: list[HeadlineRow]) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """The CSV form: the same cells, the notes' words and record names in the last column."""
    columns = (*COLUMNS[:-1], "sources")
    out = tuple((*row.cells[:-1], " | ".join(n.text + (f" [{n.record}]" if n.record else "") for n in row.notes))
                for row in rows)  # fmt: skip
    return columns, out
