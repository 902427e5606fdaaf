"""bench sweep: the matrix a tier expands to, and a whole sweep driven by a fake job runner."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.errors import UserError
from benchmark.store import load_records
from benchmark.sweep import FULL, QUICK, JobOutcome, make_plan, run_sweep

RECORDS = Path(__file__).parent / "fixtures" / "leaderboard" / "records"
ALL_TASKS = ("classification", "detection", "segmentation")


def test_quick_tier_matrix() -> None:
    plan = make_plan(QUICK, registered_tasks=("classification", "detection"), gpu=False)
    assert plan.skipped == ("task segmentation: not registered in this checkout",)
    labels = [cell.label for cell in plan.cells]
    assert labels == [
        "classification mnv1 w1.0", "classification mnv2 w1.0", "classification mobilenet_v3_large",
        "classification mobilenet_v3_small", "detection mnv1 w1.0", "detection mnv2 w1.0",
        "detection mobilenet_v3_large", "detection mobilenet_v3_small",
    ]  # fmt: skip
    assert plan.runtimes == ("eager", "eager-cl", "compile", "onnxruntime", "onnxruntime-int8")
    assert "--max-epochs" in plan.run_args and plan.latency_args[:2] == ("--tier", "quick")


def test_full_tier_needs_real_data_and_narrows() -> None:
    with pytest.raises(UserError, match="--data classification=ROOT --data detection=ROOT"):
        make_plan(FULL, tasks="classification,detection", registered_tasks=ALL_TASKS, gpu=True)
    plan = make_plan(
        FULL, tasks="classification", backbones="mnv2,resnet18", widths="1.0,0.5", resolutions="224,96",
        data=["classification=/data/imagenet"], registered_tasks=ALL_TASKS, gpu=True,
    )  # fmt: skip
    assert [c.label for c in plan.cells] == [
        "classification mnv2 w1.0 @224", "classification mnv2 w1.0 @96", "classification mnv2 w0.5 @224",
        "classification mnv2 w0.5 @96", "classification resnet18 @224", "classification resnet18 @96",
    ]  # fmt: skip
    assert plan.runtimes[-1] == "cuda" and plan.data == {"classification": "/data/imagenet"}
    slim = make_plan(FULL, tasks="classification", backbones="mnv2", stages="latency", registered_tasks=ALL_TASKS,
                     gpu=False)  # fmt: skip
    assert len(slim.cells) == 6 * 5 and "cuda" not in slim.runtimes  # the slim table's grid, no GPU here


@pytest.mark.parametrize(
    "options, message",
    [
        ({"backbones": "mnv9"}, "--backbones: unknown backbone 'mnv9'"),
        ({"tasks": "depth"}, "--tasks: unknown task 'depth'"),
        ({"widths": "1.0,x"}, "--widths: cannot read"),
        ({"resolutions": "16"}, "--resolutions: resolutions must be >= 32"),
        ({"stages": "run,train"}, "--stages: unknown stage(s) train"),
        ({"data": ["imagenet"]}, "--data 'imagenet': expected TASK=ROOT"),
    ],
)
def test_bad_sweep_flags(options: dict, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_plan(QUICK, registered_tasks=ALL_TASKS, gpu=False, **options)


class FakeBench:
    """Stands in for `python -m benchmark.cli run/latency`: writes what the real commands write."""

    def __init__(self, fail: Iterable[str] = ()) -> None:
        self.calls: list[list[str]] = []
        self.fail = set(fail)  # "<command> <backbone> <runtime>" of the jobs that exit 2
        self.trained: dict[Path, str] = {}  # run folder -> backbone
        self.result = json.loads((RECORDS / "result-classification-mnv2-synthetic.json").read_text())
        self.latency = json.loads((RECORDS / "latency-classification-mnv2-onnxruntime.json").read_text())

    def __call__(self, argv: list[str], timeout_s: float | None) -> JobOutcome:
        assert argv[:3] == [sys.executable, "-m", "benchmark.cli"]
        self.calls.append(argv)
        command, args = argv[3], argv[4:]
        value = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
        output = Path(value["--output"])
        if "--checkpoint" in value:
            backbone = self.trained[Path(value["--checkpoint"]).parent.parent]
        else:
            backbone = value["--backbone"]
        if f"{command} {backbone} {value.get('--runtime', '')}".strip() in self.fail:
            return JobOutcome(2, "Traceback ...\nbench: error: --runtime compile: no C++ compiler found")
        output.mkdir(parents=True)
        if command == "run":
            self.trained[output] = backbone
            record = dict(self.result, task=value["--task"], backbone=backbone)
            (output / "checkpoints").mkdir()
            (output / "checkpoints" / "last.ckpt").write_bytes(b"weights")
            (output / "result.json").write_text(json.dumps(record))
        else:
            record = dict(self.latency, task=value["--task"], backbone=backbone, runtime=value["--runtime"])
            (output / f"{value['--task']}-{backbone}-{value['--runtime']}-x.json").write_text(
                json.dumps(record)
            )
            (output / "export_info.json").write_text('{"opset": 17}')  # not a record: ignored
        return JobOutcome(0, "")


def test_sweep_collects_records_and_goes_on_after_failures(tmp_path: Path) -> None:
    plan = make_plan(QUICK, tasks="classification", backbones="mnv2,mnv1,mobilenet_v3_small",
                     runtimes="eager,compile", stages="run,latency", registered_tasks=ALL_TASKS, gpu=False)  # fmt: skip
    fake = FakeBench(fail={"run mnv1", "latency mnv2 compile", "latency mobilenet_v3_small compile"})
    log: list[str] = []
    records = tmp_path / "records"
    reports = run_sweep(plan, records, tmp_path / "work", runner=fake, log=log.append)
    status = {r.name: r.status for r in reports}
    assert status == {
        "run classification mnv2 w1.0": "ok",
        "latency classification mnv2 w1.0 eager": "ok",
        "latency classification mnv2 w1.0 compile": "failed",
        "run classification mnv1 w1.0": "failed",
        "latency classification mnv1 w1.0 eager": "failed",
        "latency classification mnv1 w1.0 compile": "failed",
        "run classification mobilenet_v3_small": "ok",
        "latency classification mobilenet_v3_small eager": "ok",
        "latency classification mobilenet_v3_small compile": "failed",
    }
    failed = {r.name: r.message for r in reports if r.status == "failed"}
    assert (
        failed["latency classification mnv2 w1.0 compile"]
        == "bench: error: --runtime compile: no C++ compiler found"
    )
    assert failed["latency classification mnv1 w1.0 eager"] == "its run failed"
    # Runs got the tier's flags; latency timed the trained checkpoint (model flags come from it).
    run_call = fake.calls[0]
    assert run_call[3:9] == ["run", "--task", "classification", "--backbone", "mnv2", "--width"]
    assert "--max-epochs" in run_call and "--logger" in run_call
    latency_call = fake.calls[1]
    assert "--checkpoint" in latency_call and "--backbone" not in latency_call
    assert latency_call[latency_call.index("--checkpoint") + 1].endswith("run/checkpoints/last.ckpt")
    assert ["--tier", "quick"] == latency_call[
        latency_call.index("--tier") : latency_call.index("--tier") + 2
    ]
    # Four records, validated, under content-derived names; the non-record JSON was left out.
    stored = load_records(records)
    assert sorted((r["kind"], r["backbone"], r.get("runtime", "")) for r in stored) == [
        ("latency", "mnv2", "eager"), ("latency", "mobilenet_v3_small", "eager"),
        ("result", "mnv2", ""), ("result", "mobilenet_v3_small", ""),
    ]  # fmt: skip
    assert len({p.name for p in records.iterdir()}) == 4 and not list(records.glob(".*"))
    assert log[-1].startswith("[9/9] latency classification mobilenet_v3_small compile: failed")
    # The same sweep again writes the same files: no duplicates.
    run_sweep(plan, records, tmp_path / "work2", runner=FakeBench(fail={"run mnv1"}), log=log.append)
    assert len(list(records.iterdir())) == 6  # + the two compile records that failed before


def test_sweep_cli_dry_run_and_bad_flags(capsys) -> None:
    code = main(["sweep", "--tier", "quick", "--tasks", "classification", "--backbones", "mnv2", "--runtimes",
                 "eager,onnxruntime", "--dry-run"])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    commands = [line for line in out if not line.startswith("#")]
    assert len(commands) == 3
    assert (
        " -m benchmark.cli run --task classification --backbone mnv2 --width 1.0 --logger none" in commands[0]
    )
    assert (
        " -m benchmark.cli latency --task classification --backbone mnv2 --width 1.0 --runtime onnxruntime"
        in commands[2]
    )
    assert main(["sweep", "--tier", "full", "--tasks", "classification"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "bench sweep: error: --tier full trains on real data: give --data classification=ROOT (or narrow --tasks)"
    )
