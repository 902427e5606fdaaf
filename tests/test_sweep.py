"""bench sweep: the matrix a tier expands to, and a whole sweep driven by a fake job runner."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from backbones.errors import UserError
from benchmark.cli import main
from benchmark.leaderboards.store import load_records
from benchmark.sweeps.jobs import JobOutcome, run_sweep
from benchmark.sweeps.plan import FULL, QUICK, make_plan

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
    assert "--max-epochs" not in plan.run_args and plan.latency_args[:2] == ("--tier", "quick")


def test_quick_tier_times_segmentation_at_the_normal_tier(tmp_path: Path) -> None:
    """The leaderboard refuses quick-tier segmentation latency (issue 13.7), so the sweep never makes one."""
    from benchmark.sweeps.jobs import latency_command

    plan = make_plan(QUICK, tasks="classification,segmentation", backbones="mnv2", registered_tasks=ALL_TASKS,
                     gpu=False)  # fmt: skip
    tiers = {}
    for cell in plan.cells:
        call = latency_command(cell, "eager", plan, tmp_path, None)
        tiers[cell.task] = [call[i + 1] for i, flag in enumerate(call) if flag == "--tier"][-1]
    assert tiers == {"classification": "quick", "segmentation": "normal"}


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
        output.mkdir(parents=True)
        if command == "run":
            if f"run {backbone}" in self.fail:
                return JobOutcome(2, "bench run: error: --data: /nope does not exist")
            self.trained[output] = backbone
            record = dict(self.result, task=value["--task"], backbone=backbone)
            (output / "checkpoints").mkdir()
            (output / "checkpoints" / "last.ckpt").write_bytes(b"weights")
            (output / "result.json").write_text(json.dumps(record))
            return JobOutcome(0, "")
        (output / "export_info.json").write_text('{"opset": 17}')  # not a record: ignored
        for runtime in value["--runtime"].split(","):  # records are written one by one, as bench latency does
            if f"latency {backbone} {runtime}" in self.fail:
                return JobOutcome(1, f"Traceback ...\nRuntimeError: {runtime} crashed")
            record = dict(self.latency, task=value["--task"], backbone=backbone, runtime=runtime)
            (output / f"{value['--task']}-{backbone}-{runtime}-x.json").write_text(json.dumps(record))
        return JobOutcome(0, "")


def test_sweep_collects_records_and_goes_on_after_failures(tmp_path: Path) -> None:
    plan = make_plan(QUICK, tasks="classification", backbones="mnv2,mnv1,mobilenet_v3_small",
                     runtimes="eager,compile,onnxruntime", stages="run,latency", registered_tasks=ALL_TASKS,
                     gpu=False)  # fmt: skip
    fake = FakeBench(fail={"run mnv1", "latency mnv2 compile", "latency mobilenet_v3_small compile"})
    log: list[str] = []
    records = tmp_path / "records"
    reports = run_sweep(plan, records, tmp_path / "work", runner=fake, log=log.append)
    assert [(r.name, r.status, len(r.records)) for r in reports] == [
        ("run classification mnv2 w1.0", "ok", 1),
        # compile crashed after eager: eager's record is kept, then the others are retried alone.
        ("latency classification mnv2 w1.0 eager,compile,onnxruntime", "failed", 1),
        ("latency classification mnv2 w1.0 compile", "failed", 0),
        ("latency classification mnv2 w1.0 onnxruntime", "ok", 1),
        ("run classification mnv1 w1.0", "failed", 0),
        ("latency classification mnv1 w1.0", "failed", 0),
        ("run classification mobilenet_v3_small", "ok", 1),
        ("latency classification mobilenet_v3_small eager,compile,onnxruntime", "failed", 1),
        ("latency classification mobilenet_v3_small compile", "failed", 0),
        ("latency classification mobilenet_v3_small onnxruntime", "ok", 1),
    ]
    messages = [r.message for r in reports]
    assert messages[1] == "no record for compile, onnxruntime (RuntimeError: compile crashed)"
    assert messages[4] == "bench run: error: --data: /nope does not exist"
    assert messages[5] == "its run failed"
    # Runs got the tier's flags; latency timed the trained checkpoint (its config fixes the model).
    run_call = fake.calls[0]
    assert run_call[3:9] == ["run", "--task", "classification", "--backbone", "mnv2", "--width"]
    assert "--logger" in run_call and "--num-workers" in run_call
    latency_call = fake.calls[1]
    assert "--checkpoint" in latency_call and "--backbone" not in latency_call
    assert latency_call[latency_call.index("--checkpoint") + 1].endswith("run/checkpoints/last.ckpt")
    assert latency_call[latency_call.index("--runtime") + 1] == "eager,compile,onnxruntime"
    assert ["--tier", "quick"] == latency_call[
        latency_call.index("--tier") : latency_call.index("--tier") + 2
    ]
    # Six records, validated, under content-derived names; the non-record JSON was left out.
    stored = load_records(records)
    assert sorted((r["kind"], r["backbone"], r.get("runtime", "")) for r in stored) == [
        ("latency", "mnv2", "eager"), ("latency", "mnv2", "onnxruntime"),
        ("latency", "mobilenet_v3_small", "eager"), ("latency", "mobilenet_v3_small", "onnxruntime"),
        ("result", "mnv2", ""), ("result", "mobilenet_v3_small", ""),
    ]  # fmt: skip
    assert len(list(records.iterdir())) == 6 and not list(records.glob(".*"))
    assert log[-1].startswith("[10] latency classification mobilenet_v3_small onnxruntime: ok")
    # The same sweep again writes the same files, no duplicates; compile now works and adds two.
    run_sweep(plan, records, tmp_path / "work2", runner=FakeBench(fail={"run mnv1"}), log=log.append)
    assert len(list(records.iterdir())) == 8


def test_latency_only_sweep_over_a_kept_workdir_times_the_trained_models(tmp_path: Path) -> None:
    common = {"tasks": "classification", "backbones": "mnv2,mobilenet_v3_small", "runtimes": "eager",
              "registered_tasks": ALL_TASKS, "gpu": False}  # fmt: skip
    fake = FakeBench()
    run_sweep(make_plan(QUICK, stages="run", **common), tmp_path / "records", tmp_path / "work", runner=fake,
              log=lambda line: None)  # fmt: skip
    # Narrowed to one backbone, the later sweep still finds that cell's run folder.
    plan = make_plan(QUICK, stages="latency", **{**common, "backbones": "mobilenet_v3_small"})
    reports = run_sweep(plan, tmp_path / "records", tmp_path / "work", runner=fake, log=lambda line: None)
    assert [(r.name, r.status) for r in reports] == [("latency classification mobilenet_v3_small eager", "ok")]
    call = fake.calls[-1]
    checkpoint = Path(call[call.index("--checkpoint") + 1])
    assert checkpoint == tmp_path / "work" / "classification_mobilenet_v3_small" / "run" / "checkpoints" / "last.ckpt"


def test_a_broken_latency_record_fails_its_job(tmp_path: Path) -> None:
    plan = make_plan(QUICK, tasks="classification", backbones="mnv2", runtimes="eager", stages="latency",
                     registered_tasks=ALL_TASKS, gpu=False)  # fmt: skip

    def runner(argv: list[str], timeout_s: float | None) -> JobOutcome:
        output = Path(argv[argv.index("--output") + 1])
        output.mkdir(parents=True)
        (output / "bad.json").write_text(json.dumps({"schema_version": 1, "kind": "latency", "task": "classification",
                                                     "backbone": "mnv2", "width": None, "runtime": "eager"}))  # fmt: skip
        return JobOutcome(0, "")

    reports = run_sweep(plan, tmp_path / "records", tmp_path / "work", runner=runner, log=lambda line: None)
    assert [r.status for r in reports] == ["failed"]
    assert "bad.json: latency record field 'width'" not in reports[0].message  # width may be null
    assert "bad.json: latency record field 'resolution' must be int, got missing" in reports[0].message


def test_sweep_cli_dry_run_and_bad_flags(capsys) -> None:
    code = main(["sweep", "--tier", "quick", "--tasks", "classification", "--backbones", "mnv2", "--runtimes",
                 "eager,onnxruntime", "--dry-run"])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    commands = [line for line in out if not line.startswith("#")]
    assert len(commands) == 2
    assert (
        " -m benchmark.cli run --task classification --backbone mnv2 --width 1.0 --logger none" in commands[0]
    )
    assert (
        " -m benchmark.cli latency --task classification --backbone mnv2 --width 1.0 --runtime eager,onnxruntime"
        in commands[1]
    )
    assert main(["sweep", "--tier", "full", "--tasks", "classification"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "bench sweep: error: --tier full trains on real data: give --data classification=ROOT (or narrow --tasks)"
    )


def test_ci_workflow_runs_ci_script_sweep_and_leaderboard(capsys) -> None:
    """The GitHub workflow calls .ci/run, and its bench commands are valid (checked with --dry-run)."""
    import shlex

    import yaml

    from benchmark.runs.records import REPO_ROOT

    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = next(iter(workflow["jobs"].values()))["steps"]
    commands = [
        line.strip() for step in steps for line in str(step.get("run", "")).splitlines() if line.strip()
    ]
    assert "bash .ci/run" in commands
    bench = [shlex.split(c)[1:] for c in commands if c.startswith(".venv/bin/bench ")]
    assert [argv[0] for argv in bench] == ["sweep", "leaderboard"]
    assert main([*bench[0], "--dry-run", "--stages", "run,latency"]) == 0
    assert any(
        "upload-artifact" in str(step.get("uses")) and step["with"]["path"] == "leaderboards/"
        for step in steps
    )


def test_documented_full_tier_command_plans(capsys) -> None:
    """The full-tier command of leaderboards/README.md expands to the papers' matrix."""
    argv = ["sweep", "--tier", "full", "--data", "classification=/data/imagenet", "--data", "detection=/data/coco",
            "--data", "segmentation=/data/voc", "--stages", "run", "--dry-run"]  # fmt: skip
    from benchmark.leaderboards.pages import SWEEP_HELP

    assert " ".join(argv[:-3]).replace("sweep ", "bench sweep ") in " ".join(SWEEP_HELP.split())
    assert main(argv) == 0
    runs = [line for line in capsys.readouterr().out.splitlines() if " run " in line]
    assert sum("--task classification --backbone mnv2 " in line for line in runs) == 6 * 5
    assert all("--data /data/" in line for line in runs)
