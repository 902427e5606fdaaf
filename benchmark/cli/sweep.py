"""``bench sweep``: run a tier's matrix of ``bench run`` / ``bench latency`` jobs into the records store."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

DEFAULT_RECORDS = Path("leaderboards") / "records"


def add_parser(sub, task_name: str) -> None:
    from benchmark.sweeps.plan import TIERS

    tiers = "; ".join(f"{tier.name}: {tier.description}" for tier in TIERS.values())
    parser = sub.add_parser(
        "sweep",
        help="run a matrix of bench run / bench latency jobs and store their records",
        description=f"Tiers. {tiers}. Then run `bench leaderboard` to regenerate the tables.",
    )
    add = parser.add_argument
    add(
        "--tier",
        required=True,
        choices=sorted(TIERS),
        help="quick (embedded data, CI) or full (real data, GPUs)",
    )
    add("--tasks", help="comma-separated subset of the tier's tasks")
    add("--backbones", help="comma-separated backbones (default: the tier's)")
    add("--widths", help="comma-separated width multipliers for backbones that take --width")
    add("--resolutions", help="comma-separated input sizes (default: the tier's per task)")
    add("--runtimes", help="comma-separated latency runtimes (default: the tier's that this machine has)")
    add("--stages", default="profile,run,latency", help="any of profile,run,latency (default: all three)")
    add("--data", action="append", default=[], metavar="TASK=ROOT", help="dataset root per task (full tier)")
    add("--run-args", default="", help='extra `bench run` flags, e.g. "--devices 8 --strategy ddp"')
    add("--latency-args", default="", help="extra `bench latency` flags")
    add("--devices", help="comma-separated `bench latency --device` targets (adb, adb:SERIAL, ssh://user@host[:port], "
                          "local): the latency stage times each cell on every target (default runtimes: litert)")
    add("--records", default=str(DEFAULT_RECORDS), help=f"records folder (default {DEFAULT_RECORDS})")
    add("--workdir", help="keep each job's run folder here (default: a temporary folder, removed after)")
    add("--timeout-s", type=float, help="per-job time limit in seconds (default: the tier's)")
    add("--dry-run", action="store_true", help="print the jobs without running them")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.sweeps.plan import device_plans

    plans = device_plans(args)
    if len(plans) == 1:
        return run_plan(args, plans[0])
    # One matrix on several targets: the first plan trains (if asked), the others time the same checkpoints.
    if not args.workdir and not args.dry_run:
        with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch:
            return max(run_plan(args, plan, Path(scratch)) for plan in plans)
    return max(run_plan(args, plan) for plan in plans)


def run_plan(args: argparse.Namespace, plan, scratch_dir: Path | None = None) -> int:
    from benchmark.sweeps.jobs import earlier_checkpoint, latency_command, run_command, run_sweep

    records = Path(args.records)
    if args.dry_run:
        for reason in plan.skipped:
            print(f"# skipped {reason}")
        if "profile" in plan.stages:
            print("# count params/MAdds of the baselines' suite models (bench profile) into", records)
        scratch = Path(args.workdir or "<workdir>")
        for cell in plan.cells:
            folder = scratch / cell.folder_name
            if "run" in plan.stages:
                print(" ".join(run_command(cell, plan, folder / "run")))
            if "latency" in plan.stages:
                checkpoint = earlier_checkpoint(folder, plan)
                print(" ".join(latency_command(cell, ",".join(plan.runtimes), plan, folder / "latency", checkpoint)))
        return 0
    if args.workdir or scratch_dir:
        reports = run_sweep(plan, records, Path(args.workdir or scratch_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch:
            reports = run_sweep(plan, records, Path(scratch))
    failed = [r for r in reports if r.status != "ok"]
    written = sum(len(r.records) for r in reports)
    print(
        f"sweep {args.tier}: {len(reports) - len(failed)} of {len(reports)} jobs ok, {written} records in {records}"
    )
    for report in failed:
        print(f"  failed: {report.name}: {report.message}")
    print("next: bench leaderboard")
    return 1 if failed else 0
