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
    add("--records", default=str(DEFAULT_RECORDS), help=f"records folder (default {DEFAULT_RECORDS})")
    add("--workdir", help="keep each job's run folder here (default: a temporary folder, removed after)")
    add("--timeout-s", type=float, help="per-job time limit in seconds (default: the tier's)")
    add("--dry-run", action="store_true", help="print the jobs without running them")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.sweeps.jobs import earlier_checkpoint, latency_command, run_command, run_sweep
    from benchmark.sweeps.plan import TIERS, make_plan

    plan = make_plan(
        TIERS[args.tier],
        tasks=args.tasks,
        backbones=args.backbones,
        widths=args.widths,
        resolutions=args.resolutions,
        runtimes=args.runtimes,
        stages=args.stages,
        data=args.data,
        run_args=args.run_args,
        latency_args=args.latency_args,
        timeout_s=args.timeout_s,
    )
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
    if args.workdir:
        reports = run_sweep(plan, records, Path(args.workdir))
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
