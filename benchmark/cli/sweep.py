"""``bench sweep``: run a tier's matrix of ``bench run`` / ``bench latency`` jobs into the records store."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmark.cli.arguments import add_progress_arguments

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
    add_executor_arguments(parser)
    add_progress_arguments(parser)
    parser.set_defaults(func=run)


def add_executor_arguments(parser) -> None:
    """submitit executors: each cell a job (local processes or Slurm), followed, requeued, collected."""
    add = parser.add_argument
    add("--executor", choices=["local", "slurm"], help="run the cells as submitit jobs (needs --workdir)")
    add("--status", metavar="DIR", help="show every cell of the sweep folder DIR and exit")
    add("--partition", help="Slurm partition")
    add("--account", help="Slurm account")
    add("--qos", help="Slurm QOS")
    add("--gpus-per-job", type=int, help="GPUs per job (DDP over them, ranks from SLURM)")
    add("--nodes", type=int, help="nodes per job")
    add("--cpus", type=int, help="CPUs per task")
    add("--mem-gb", type=float, help="memory per node in GB")
    add("--time-min", type=int, help="time limit per job in minutes")
    add("--array-parallelism", type=int, help="training jobs of an array running at once")
    add("--sbatch", action="append", default=[], metavar="--KEY=VALUE", help="an extra sbatch line (repeatable)")
    add("--slurm-config", metavar="YAML", help="a YAML file with a slurm: block of the settings above")
    add("--retries", type=int, default=2, help="resubmissions of a failed cell (it resumes), default 2")
    add("--no-wait", action="store_true", help="submit and exit; run the same command again to collect")


def slurm_options(args: argparse.Namespace):
    """The jobs' sbatch settings: the YAML's, then the flags'; every value checked (it reaches a batch script)."""
    from benchmark.sweeps.executors import SlurmOptions, check_slurm_values, load_slurm_yaml

    values = load_slurm_yaml(args.slurm_config) if args.slurm_config else {}
    flags = {"partition": args.partition, "account": args.account, "qos": args.qos,
             "gpus_per_job": args.gpus_per_job, "nodes": args.nodes, "cpus": args.cpus, "mem_gb": args.mem_gb,
             "time_min": args.time_min, "array_parallelism": args.array_parallelism}
    flags = check_slurm_values({k: v for k, v in flags.items() if v is not None} | {"sbatch_lines": list(args.sbatch)})
    values["sbatch_lines"] = list(values.get("sbatch_lines", [])) + flags.pop("sbatch_lines")
    values.update(flags)
    return SlurmOptions(**values)


def run(args: argparse.Namespace) -> int:
    from backbones.errors import UserError
    from benchmark.sweeps.plan import device_plans

    if args.status:
        from benchmark.sweeps.scheduled import format_status, sweep_status

        print(format_status(sweep_status(Path(args.status))))
        return 0
    if not args.tier:
        raise UserError("--tier: required (quick or full), unless --status DIR")
    if args.executor and not args.workdir:
        raise UserError("--executor: give --workdir DIR (the sweep folder: jobs, logs, run folders, sweep.json)")
    plans = device_plans(args)
    if len(plans) == 1:
        return run_plan(args, plans[0])
    if args.executor:
        raise UserError("--devices: one target per --executor sweep folder (run the sweep once per target)")
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
    if args.executor:
        import shlex
        import sys

        from benchmark.sweeps.scheduled import run_scheduled

        folder = Path(args.workdir)
        final = run_scheduled(plan, records, folder, args.executor, slurm_options(args), name=folder.resolve().name,
                              command=shlex.join(["bench", *sys.argv[1:]]), retries=args.retries,
                              wait=not args.no_wait)
        failed = [s for s in final if s.state == "failed"]
        for state in failed:
            print(f"  failed: {state.name}: {state.message} (log {state.log})")
        print("next: bench leaderboard")
        return 1 if failed else 0
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
