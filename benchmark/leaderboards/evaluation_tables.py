"""Tables of ``bench eval`` records: given weights (the official checkpoints) on real images, beside
the official runtime on the same images and the publisher's full-set number, and the float import
beside the integer runtimes."""

from __future__ import annotations

import json
from typing import Any

from benchmark.leaderboards.cells import (
    Table,
    _values,
    evaluation_metrics,
    evaluation_runtime,
    fmt_num,
    model_label,
    settings_words,
)
from benchmark.leaderboards.official import official_checkpoint
from benchmark.leaderboards.provenance import evaluation_source
from benchmark.leaderboards.store import record_name, weights_name
from tasks.tflite.executions import EXECUTIONS


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
    return Table(name, columns, tuple(rows), tuple(record_name(r) for r in evaluations))


# The columns of the integer-execution table: the float import, then the file's integers as TFLite's
# builtin kernels and as XNNPACK (LiteRT's default interpreter) compute them.
INTEGER_EXECUTION_COLUMNS = ("checkpoint", "setting", "metrics (%)", *[e.title for e in EXECUTIONS.values()],
                             "official runtime, same images")  # fmt: skip


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
    columns = (*INTEGER_EXECUTION_COLUMNS, "records' commits")
    rows = []
    for _key, cells in sorted(groups.items()):
        any_record = next(iter(cells.values()))
        keys = [key for key, _ in evaluation_metrics(any_record["task"])]
        reference = official_checkpoint(any_record).reference_for(any_record)
        measured = []
        for runtime in EXECUTIONS:
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
