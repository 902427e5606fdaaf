"""Leaderboard tables: the reported rows with the suite's counts, the measured runs, and
``generate_tables``, every table in page order (the CSV files and W&B tables). The table kinds live
in sibling modules (cells, provenance, evaluation_tables, latency_tables, headline); their names are
importable from here too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmark.leaderboards.ablations import ablation_table
from benchmark.leaderboards.baselines import BASELINES, METRIC_LABELS, Baselines, Reported, number
from benchmark.leaderboards.cells import (  # noqa: F401 - the tables' shared names, importable from here
    METRIC_COLUMNS,
    MODEL_OPTIONS,
    PIXEL1,
    REPORTED_DATASET,
    TASK_TITLES,
    TASKS,
    Table,
    dataset_label,
    evaluation_metrics,
    evaluation_runtime,
    fmt_count,
    fmt_diff,
    fmt_num,
    model_label,
    record_sort_key,
    split_records,
    timed_model_label,
    width_of,
)
from benchmark.leaderboards.evaluation_tables import evaluation_table, integer_execution_table
from benchmark.leaderboards.headline import headline_csv_rows, headline_rows
from benchmark.leaderboards.latency_tables import (  # noqa: F401
    accuracy_cell,
    device_latency_table,
    gated_on_synthetic,
    is_device_record,
    latency_summary_table,
    latency_table,
    postprocess_cell,
    reported_latency_table,
    target_label,
)
from benchmark.leaderboards.provenance import (  # noqa: F401
    device_of,
    evaluation_source,
    latency_source,
    reported_source,
    result_source,
)
from benchmark.leaderboards.store import TASK_METRICS, record_name


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
    return Table(f"{task}_measured", columns, tuple(rows), tuple(record_name(r) for r in results))


def generate_tables(records: Sequence[dict[str, Any]], baselines: Baselines = BASELINES) -> list[Table]:
    """All tables, in page order (what CSV files and W&B tables are made of)."""
    kinds = split_records(records)
    profiles = {record["key"]: record for record in kinds["profile"]}
    tables = []
    for task in TASKS:
        results = [r for r in kinds["result"] if r["task"] == task]
        tables.append(measured_table(task, results))
        tables.append(reported_table(task, baselines.for_task(task), profiles))
    ablations = ablation_table(kinds["result"])
    if ablations is not None:  # a table of its own once a result of the papers' ablation grid exists
        tables.append(ablations)
    for task in TASKS:
        columns, rows = headline_csv_rows(headline_rows(task, kinds, baselines))
        tables.append(Table(f"{task}_headline", columns, rows))
    tables.append(evaluation_table(kinds["evaluation"]))
    tables.append(integer_execution_table(kinds["evaluation"]))
    host_latency = [r for r in kinds["latency"] if not is_device_record(r)]
    tables.append(latency_table(host_latency))
    tables.append(latency_summary_table(host_latency))
    devices = [r for r in kinds["latency"] if is_device_record(r)]
    if devices:  # a table of its own, only when some record was timed on a device
        tables.append(device_latency_table(devices))
    tables.append(reported_latency_table(list(baselines.rows)))
    return tables
