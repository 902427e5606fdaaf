"""Leaderboard cells: the ``Table`` every page and CSV is made of, number formatting, model labels,
and the one order records are listed in. Every other table module builds on these."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# A page's cells are at most this long; the CSV beside the page keeps every character.
MAX_CELL = 80


@dataclass(frozen=True)
class Table:
    """One table: rendered as markdown inside a page and written beside it as ``<name>.csv``.

    ``records`` names, per row, the record file the row was made from (measured rows), so a page can
    show a short link where the CSV keeps the long source words (``view``)."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    records: tuple[str | None, ...] = ()

    def view(self, columns: Sequence[str], short: Sequence[str] = (), records_dir: str = "records",
             keep: Callable[[tuple[str, ...]], bool] | None = None) -> str:
        """Markdown of some ``columns`` for a page: cells of the ``short`` columns cut before their first
        parenthesis (the CSV keeps the rest), and a last column linking each row's record (when the table has them)."""
        index = [self.columns.index(c) for c in columns]
        links = self.records or (None,) * len(self.rows)
        shown = (*columns, "record") if self.records else tuple(columns)
        lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
        for row, record in zip(self.rows, links, strict=True):
            if keep is not None and not keep(row):
                continue
            cells = [_short(row[i]) if self.columns[i] in short else row[i] for i in index]
            cells = [cell if len(cell) <= MAX_CELL else cell[: MAX_CELL - 1] + "…" for cell in cells]
            if self.records:
                cells.append(f"[{record.rsplit('-', 1)[-1].removesuffix('.json')}]({records_dir}/{record})" if record else "–")
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines)

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


def _short(text: str) -> str:
    return text.split(" (", 1)[0]


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


def dataset_label(dataset: dict[str, Any]) -> str:
    name = str(dataset.get("name") or "unknown dataset")
    return f"{name} [synthetic]" if dataset.get("synthetic") else name


# Dataset names as records store them -> as people write them.
DATASET_NAMES = {"imagenet": "ImageNet", "coco": "COCO", "voc2012": "PASCAL VOC 2012", "voc2012+sbd": "PASCAL VOC 2012"}


# Evaluation settings (record ``settings``) as words in a source label.
SETTING_WORDS = {"max_detections": "{} detections per image", "nms_iou": "NMS IoU {}", "score_threshold": "score threshold {:g}",
                 "nms": "{} NMS", "max_classes_per_detection": "{} class(es) per detection", "box_scales": "box scales {}",
                 "execution": "{} execution"}


def settings_words(record: dict[str, Any]) -> list[str]:
    settings = record.get("settings") or {}
    return [SETTING_WORDS.get(key, key + " {}").format(value) for key, value in sorted(settings.items())]


def evaluation_runtime(record: dict[str, Any]) -> str:
    """``eager`` (the float import; records before integer execution name no runtime), ``tflite-int8``, ..."""
    return str(record.get("runtime") or "eager")


def evaluation_metrics(task: str) -> list[tuple[str, str]]:
    """The two metrics an evaluation row shows: the headline one and the next (top-5, AP50, pixel acc)."""
    return METRIC_COLUMNS[task][:1] + [m for m in METRIC_COLUMNS[task] if m[0] in ("top5", "map_50", "pixel_acc")]


def _values(values: dict[str, Any], keys: list[str], decimals: int = 2) -> str:
    return " / ".join(fmt_num(values.get(key), decimals) if not isinstance(values.get(key), str) else values[key]
                      for key in keys)  # fmt: skip


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


def split_records(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {"result": [], "evaluation": [], "latency": [], "profile": []}
    for record in sorted(records, key=record_sort_key):
        kinds[record["kind"]].append(record)
    return kinds
