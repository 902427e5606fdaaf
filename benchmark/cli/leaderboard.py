"""``bench leaderboard``: regenerate (or ``--check``) leaderboards/ and the README's measured tables
from the records and the baselines; ``--check`` also fails on a record made from uncommitted changes."""

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
        help="change nothing; exit 1 if the committed files or README tables differ from the records, "
        "or a record was made from a dirty tree or timed below its task's tier",
    )
    add(
        "--add",
        nargs="+",
        metavar="RECORD",
        default=[],
        help="copy records in first: result.json files or the folders holding them (bench run, eval, latency)",
    )
    add(
        "--readme",
        help="README whose <!-- bench:begin NAME --> blocks are generated (default: README.md beside the "
        "--out folder, when it has such blocks)",
    )
    add("--site", metavar="DIR", help="write (with --check: check) only the static HTML site, into DIR; without "
        "--site the site is part of the leaderboards, in <out>/site")
    add("--screenshot", metavar="PNG", help="then open the site's latency page in headless Chromium, offline, "
        "and save a screenshot (e.g. leaderboards/plots/site-latency.png)")
    add("--recount", action="store_true", help="count the suite models' params/MAdds (profile records) first")
    add("--wandb", action="store_true", help="also log every table to Weights & Biases as a wandb.Table")
    add("--wandb-project", default="mobile-vision-bench", help="W&B project (default mobile-vision-bench)")
    parser.set_defaults(func=run)


def existing_generated(out: Path, site_only: bool = False) -> set[str]:
    from benchmark.leaderboards.pages import is_generated
    from benchmark.leaderboards.site import is_site_file

    if not out.is_dir():
        return set()
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    return {name for name in names if (is_site_file(name) if site_only else is_generated(name))}


def differences(out: Path, files: dict[str, bytes], site_only: bool = False) -> list[str]:
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
    for name in sorted(existing_generated(out, site_only) - set(files)):
        lines.append(f"{out / name}: not generated from the records (stale)")
    return lines


def readme_diff(old: str, new: str) -> str:
    changed = [
        line for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]  # fmt: skip
    return f"{len(changed)} changed line(s), first: {changed[0][:100] if changed else ''}"


def write_files(out: Path, files: dict[str, bytes], site_only: bool = False) -> list[str]:
    """Write what changed; remove generated files the records no longer give. Returns changed names."""
    from benchmark.leaderboards.pages import same_content

    changed = []
    for name, data in files.items():
        path = out / name
        if path.is_file() and same_content(name, path.read_bytes(), data):
            continue
        write_bytes_atomic(path, data)
        changed.append(name)
    for name in sorted(existing_generated(out, site_only) - set(files)):
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


def record_files(source: str) -> list[Path]:
    """``--add`` arguments: a record file, or a folder holding ``result.json`` (bench run / eval output)."""
    path = Path(source)
    if path.is_dir():
        found = sorted(path.rglob("result.json")) or sorted(path.glob("*.json"))
        if not found:
            raise UserError(f"--add: {source} holds no result.json or other .json record")
        return found
    if not path.is_file():
        raise UserError(f"--add: {source} does not exist")
    return [path]


def add_records(sources: list[str], records_dir: Path) -> None:
    """Copy records into the store under their descriptive names; a dirty-tree, too-brief or emulated record is refused."""
    from benchmark.leaderboards.store import emulated_reason, import_record_file, load_record, refusal_reason

    for source in sources:
        for path in record_files(source):
            record = load_record(path)
            reason = refusal_reason(record)
            if reason:
                advice = "" if emulated_reason(record) else "; commit, then measure again"
                raise UserError(f"--add: {path}: {reason}{advice}")
            target, changed = import_record_file(path, records_dir)
            print(f"{'added' if changed else 'already present'}: {path} -> {target}")


def readme_path(args: argparse.Namespace, out: Path) -> Path | None:
    """The README to generate blocks in: --readme, else README.md beside --out if it has blocks."""
    from benchmark.leaderboards.readme import has_blocks

    if args.readme:
        path = Path(args.readme)
        if not path.is_file():
            raise UserError(f"--readme: {path} does not exist")
        return path
    path = out.resolve().parent / "README.md"
    if path.is_file() and has_blocks(path.read_text(encoding="utf-8")):
        return path
    return None


def readme_update(path: Path | None, records) -> tuple[str, str] | None:
    """(current, generated) README text, or None when there is no README to generate into."""
    from benchmark.leaderboards.readme import render_blocks, replace_blocks

    if path is None:
        return None
    text = path.read_text(encoding="utf-8")
    return text, replace_blocks(text, render_blocks(records), str(path))


def take_screenshot(args: argparse.Namespace, site: Path) -> None:
    if args.screenshot:
        from benchmark.leaderboards.browser import screenshot

        print(f"screenshot: {screenshot(site, Path(args.screenshot))}")


def run_site(args: argparse.Namespace, site: Path, files: dict[str, bytes], count: int, refused: list[str]) -> int:
    """``--site DIR``: write or check the HTML site alone (leaderboards/*.md and the README untouched)."""
    if args.check:
        diffs = differences(site, files, site_only=True) + [f"{line}; remove it or measure again" for line in refused]
        if diffs:
            print(f"{site}/ does not match the {count} records ({len(diffs)} problem(s)); run `bench leaderboard --site {site}`:")
            for line in diffs[:20]:
                print(f"  {line}")
            return 1
        print(f"{site}/ matches its {count} records ({len(files)} files)")
        return 0
    changed = write_files(site, files, site_only=True)
    print(f"{site}/: {len(files)} site files from {count} records; {len(changed)} changed")
    for name in changed:
        print(f"  {name}")
    take_screenshot(args, site)
    return 0


def run(args: argparse.Namespace) -> int:
    from benchmark.leaderboards.pages import generate
    from benchmark.leaderboards.site import SITE_DIR, generate_site
    from benchmark.leaderboards.store import emulated_reason, load_store, refusal_reason
    from benchmark.leaderboards.tables import generate_tables

    out = Path(args.out)
    records_dir = Path(args.records) if args.records else out / "records"
    if args.check and (args.add or args.recount):
        raise UserError("--check changes nothing: run --add/--recount without --check first")
    if args.check and args.screenshot:
        raise UserError("--check changes nothing: run --screenshot without --check")
    add_records(args.add, records_dir)
    if args.recount:
        from benchmark.sweeps.counting import recount

        for line in recount(records_dir):
            print(line)
    store = load_store(records_dir)
    # An emulated target's rows are never drawn, even when copied into the records by hand (--check fails on them).
    records = [record for _, record in store if not emulated_reason(record)]
    refused = [f"{path}: {reason}" for path, record in store if (reason := refusal_reason(record))]
    site = generate_site(records)
    if args.site:
        return run_site(args, Path(args.site), site, len(records), refused)
    files = {**generate(records), **{f"{SITE_DIR}/{name}": data for name, data in site.items()}}
    readme = readme_path(args, out)
    readme_text = readme_update(readme, records)
    if args.check:
        diffs = differences(out, files)
        if readme_text is not None and readme_text[0] != readme_text[1]:
            diffs.append(f"{readme}: its generated tables differ from the records ({readme_diff(*readme_text)})")
        diffs += [f"{line}; remove it from the committed records or measure again" for line in refused]
        if diffs:
            print(
                f"{out}/ does not match {records_dir}/ ({len(diffs)} problem(s)); run `bench leaderboard`:"
            )
            for line in diffs[:20]:
                print(f"  {line}")
            if len(diffs) > 20:
                print(f"  ... and {len(diffs) - 20} more")
            return 1
        shown = f" and {readme}'s tables" if readme_text is not None else ""
        print(f"{out}/{shown} match its {len(records)} records ({len(files)} files)")
        return 0
    changed = write_files(out, files)
    if readme_text is not None and readme_text[0] != readme_text[1]:
        write_bytes_atomic(readme, readme_text[1].encode("utf-8"))
        changed.append(f"{readme} (tables)")
    print(f"{out}/: {len(files)} files from {len(records)} records; {len(changed)} changed")
    for name in changed:
        print(f"  {name}")
    for line in refused:
        print(f"warning: {line} (bench leaderboard --check fails while it is in {records_dir}/)")
    take_screenshot(args, out / SITE_DIR)
    if args.wandb:
        folder = log_to_wandb(generate_tables(records), args.wandb_project)
        print(f"W&B: logged {len(generate_tables(records))} tables ({folder})")
    return 0
