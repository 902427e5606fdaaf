"""One schema for every record: the class that writes a kind is the class the store checks its files
against (``benchmark.runs.schema``)."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest

from backbones.errors import UserError
from benchmark.leaderboards.store import load_store
from benchmark.runs.schema import (
    RECORD_TYPES,
    EvaluationRecord,
    GateResult,
    LatencyRecord,
    LatencyStats,
    ProfileRecord,
    ResultRecord,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = {"commit": "0123456789ab", "command": "bench run --task classification"}


def latency_record() -> LatencyRecord:
    stats = LatencyStats(runs=50, duration_s=1.5, first_ms=40.0, min_ms=20.0, mean_ms=22.0, std_ms=1.0, p50_ms=21.5,
                         p90_ms=23.0, p99_ms=30.0, max_ms=31.0)  # fmt: skip
    return LatencyRecord.of_model(
        "classification", {"backbone": "mnv2", "width": 1.0, "resolution": 224, "num_classes": 1000},
        runtime="eager", runtime_version="2.14.1", device="cpu", threads=2, batch_size=1, precision="fp32",
        layout="NCHW", tier="quick", methodology={}, input="synthetic", init_ms=3.0, stats=stats, postprocess=None,
        accuracy=GateResult(metric="top1", value=71.0, verdict="reference"), peak_memory_mb=None, memory={},
        details={}, environment=ENVIRONMENT,
    )  # fmt: skip


def result_record() -> ResultRecord:
    return ResultRecord(task="classification", backbone="mnv2", width=1.0, resolution=96, num_classes=8,
                        dataset={"name": "shapes", "synthetic": True}, metrics={"top1": 57.9}, params=2, madds=3,
                        profile={}, config={}, steps=240, resumed_from_step=None, epochs=8, wall_time_s=90.0,
                        environment=ENVIRONMENT)  # fmt: skip


def test_every_kind_has_one_class_and_the_committed_store_passes_it() -> None:
    assert set(RECORD_TYPES) == {"result", "evaluation", "latency", "profile"}
    assert RECORD_TYPES["evaluation"] is EvaluationRecord and RECORD_TYPES["profile"] is ProfileRecord
    kinds = {record["kind"] for _, record in load_store(REPO_ROOT / "leaderboards" / "records")}
    assert kinds == set(RECORD_TYPES)


def test_a_latency_record_is_flat_in_its_file_and_checked_field_by_field() -> None:
    data = latency_record().to_json()
    assert data["kind"] == "latency" and data["p50_ms"] == 21.5 and "stats" not in data
    assert data["accuracy"]["verdict"] == "reference"
    LatencyRecord.check(data, "x.json")
    stat_names = {f.name for f in fields(LatencyStats)}
    assert stat_names <= set(LatencyRecord.file_fields())
    with pytest.raises(UserError, match=r"x.json: latency record field 'p50_ms' must be float, got str"):
        LatencyRecord.check(dict(data, p50_ms="21 ms"), "x.json")
    with pytest.raises(UserError, match=r"field 'accuracy' must be dict or null, got list"):
        LatencyRecord.check(dict(data, accuracy=[]), "x.json")
    # A device tool that prints no p99 leaves it null; the median is required.
    LatencyRecord.check(dict(data, p99_ms=None), "x.json")
    with pytest.raises(UserError, match=r"field 'p50_ms' must be float, got NoneType"):
        LatencyRecord.check(dict(data, p50_ms=None), "x.json")
    assert replace(latency_record(), raw_log="run.log").to_json()["raw_log"] == "run.log"


def test_a_written_record_reads_back_through_the_store(tmp_path: Path) -> None:
    record = result_record()
    (tmp_path / "result.json").write_text(json.dumps(record.to_json()))
    [(_, loaded)] = load_store(tmp_path)
    assert loaded == json.loads(json.dumps(record.to_json())) and loaded["environment"]["command"]
    with pytest.raises(UserError, match="result record field 'resumed_from_step' must be int or null, got missing"):
        ResultRecord.check({k: v for k, v in record.to_json().items() if k != "resumed_from_step"}, "r.json")


@pytest.mark.parametrize(
    "cfg, width",
    [({"width": 0.35}, 0.35), ({"backbone": "mnv2"}, 1.0), ({"backbone": "mobilenet_v3_small"}, None)],
)
def test_every_writer_states_the_width_the_network_was_built_at(cfg: dict, width: float | None) -> None:
    """A backbone with a multiplier left at its default says 1.0; one without a multiplier says null."""
    network = {"backbone": "mnv2", "resolution": 96, "num_classes": 8, **cfg}
    record = ResultRecord.of_model("classification", network, **{
        k: v for k, v in vars(result_record()).items() if k not in ("task", "backbone", "width", "resolution", "num_classes")
    })  # fmt: skip
    assert record.width == width and record.backbone == network["backbone"]
