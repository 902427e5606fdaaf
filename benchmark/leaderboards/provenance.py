"""Where each measured or reported number came from, as words: the long form the CSVs keep in their
``source`` column (data, weights, preset, device, runtime, versions, commit). Pages show a short
record link instead and put these words in a footnote."""

from __future__ import annotations

from typing import Any

from benchmark.leaderboards.baselines import Reported
from benchmark.leaderboards.cells import (
    DATASET_NAMES,
    dataset_label,
    evaluation_runtime,
    fmt_num,
    settings_words,
)
from benchmark.leaderboards.official import FULL_VAL_IMAGES, official_checkpoint
from benchmark.leaderboards.store import weights_name
from benchmark.runs.host import host_label


def device_of(environment: dict[str, Any]) -> str:
    """The machine a record ran on, as the leaderboards group it (``hosts.host_label``)."""
    return host_label(environment)


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


def device_source(record: dict[str, Any]) -> str:
    target = record["target"]
    tool = target.get("tool") or {}
    version = record.get("runtime_version")
    env = record.get("environment") or {}
    return (f"measured on the device ({target.get('transport')} {target.get('address')}, {tool.get('name')}, "
            f"{record['runtime']} {version or ''}".rstrip() + f", {env.get('commit', '?')})")  # fmt: skip
