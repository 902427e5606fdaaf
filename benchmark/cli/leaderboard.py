"""``bench leaderboard``: regenerate (or ``--check``) leaderboards/ from its records and the baselines."""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from backbones.errors import UserError
from benchmark.runs.records import write_bytes_atomic

DEFAULT_OUT = Path("leaderboards")


def add_parser(sub, task_name: str) -> None:
    parser = sub.add_parser("leaderboard", help="regenerate leaderboard tables, CSVs and plots from records")
    add = parser.add_argument
    add("--out", default=str(DEFAULT_OUT), help=f"leaderboards folder (default {DEFAULT_OUT})")
    add("--records", help="records folder (default <out>/records)")
    add(
        "--check",
        action="store_true",
        help="change nothing; exit 1 if the committed files differ from the records",
    )
    add(
        "--add",
        nargs="+",
        metavar="RECORD",
        default=[],
        help="copy record files (e.g. runs/x/result.json) in first",
    )
    add("--recount", action="store_true", help="count the suite models' params/MAdds (profile records) first")
    add("--wandb", action="store_true", help="also log every table to Weights & Biases as a wandb.Table")
    add("--wandb-project", default="mobile-vision-bench", help="W&B project (default mobile-vision-bench)")
    parser.set_defaults(func=run)


def existing_generated(out: Path) -> set[str]:
    from benchmark.leaderboards.pages import is_generated

    if not out.is_dir():
        return set()
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    return {name for name in names if is_generated(name)}


def differences(out: Path, files: dict[str, bytes]) -> list[str]:
    """One line per file that differs from what the records give."""
    from benchmark.leaderboards.pages import same_content

    lines = []
    for name, new in files.items():
        path = out / name
        if not path.is_file():
            lines.append(f"{out / name}: missing")
            continue
        old = path.read_bytes()
        if same_content(name, old, new):
            continue
        if name.endswith(".png"):
            lines.append(f"{out / name}: plot drawn from different data")
            continue
        old_lines = old.decode("utf-8", errors="replace").splitlines()
        new_lines = new.decode("utf-8").splitlines()
        changed = [
            line for line in difflib.unified_diff(old_lines, new_lines, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]  # fmt: skip
        first = next((line for line in changed), "")
        lines.append(f"{out / name}: {len(changed)} changed line(s), first: {first[:100]}")
    for name in sorted(existing_generated(out) - set(files)):
        lines.append(f"{out / name}: not generated from the records (stale)")
    return lines


def write_files(out: Path, files: dict[str, bytes]) -> list[str]:
    """Write what changed; remove generated files the records no longer give. Returns changed names."""
    from benchmark.leaderboards.pages import same_content

    changed = []
    for name, data in files.items():
        path = out / name
        if path.is_file() and same_content(name, path.read_bytes(), data):
            continue
        write_bytes_atomic(path, data)
        changed.append(name)
    for name in sorted(existing_generated(out) - set(files)):
        (out / name).unlink()
        changed.append(f"{name} (removed)")
    return changed


def log_to_wandb(tables, project: str) -> str:
    """Log every table as a ``wandb.Table`` in one run (offline unless logged in); returns its folder."""
    import wandb

    from benchmark.runs.training import wandb_mode

    run = wandb.init(
        project=project, job_type="leaderboard", name="leaderboard", mode=wandb_mode(), reinit=True
    )
    for table in tables:
        run.log(
            {
                f"leaderboard/{table.name}": wandb.Table(
                    columns=list(table.columns), data=[list(r) for r in table.rows]
                )
            }
        )
    folder = str(Path(run.dir).parent)
    run.finish()
    return folder


def run(args: argparse.Namespace) -> int:
    from benchmark.leaderboards.pages import generate
    from benchmark.leaderboards.store import import_record_file, load_records
    from benchmark.leaderboards.tables import generate_tables

    out = Path(args.out)
    records_dir = Path(args.records) if args.records else out / "records"
    if args.check and (args.add or args.recount):
        raise UserError("--check changes nothing: run --add/--recount without --check first")
    for source in args.add:
        path, changed = import_record_file(source, records_dir)
        print(f"{'added' if changed else 'already present'}: {source} -> {path}")
    if args.recount:
        from benchmark.sweeps.counting import recount

        for line in recount(records_dir):
            print(line)
    records = load_records(records_dir)
    files = generate(records)
    if args.check:
        diffs = differences(out, files)
        if diffs:
            print(
                f"{out}/ is out of date with {records_dir}/ ({len(diffs)} file(s)); run `bench leaderboard`:"
            )
            for line in diffs[:20]:
                print(f"  {line}")
            if len(diffs) > 20:
                print(f"  ... and {len(diffs) - 20} more")
            return 1
        print(f"{out}/ matches its {len(records)} records ({len(files)} files)")
        return 0
    changed = write_files(out, files)
    print(f"{out}/: {len(files)} files from {len(records)} records; {len(changed)} changed")
    for name in changed:
        print(f"  {name}")
    if args.wandb:
        folder = log_to_wandb(generate_tables(records), args.wandb_project)
        print(f"W&B: logged {len(generate_tables(records))} tables ({folder})")
    return 0
