"""Device-timed latency rows (records with a ``target`` block): their own table and page section,
never in the host's table or charts; ``bench sweep --devices`` plans one latency pass per target."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from benchmark.leaderboards.pages import generate
from benchmark.leaderboards.tables import generate_tables
from benchmark.sweeps.plan import device_plans

RECORDS = Path(__file__).parent / "fixtures" / "leaderboard" / "records"


def host_latency_record() -> dict:
    path = next(p for p in sorted(RECORDS.glob("*.json")) if json.loads(p.read_text()).get("kind") == "latency")
    return json.loads(path.read_text())


def device_record(host: dict) -> dict:
    record = copy.deepcopy(host)
    record.update(runtime="litert", p50_ms=12.5, device="Pixel 7")
    record["target"] = {
        "transport": "adb", "address": "adb:28161FDH2000AB", "model": "Pixel 7", "manufacturer": "Google",
        "soc": "gs201", "abi": "arm64-v8a", "cpu_mask": "c0", "delegate": "TfLiteXNNPackDelegate",
        "delegated_nodes": 31, "total_nodes": 31, "delegate_fallback": None, "temp_before_c": 31.0,
        "temp_after_c": 35.5, "tool": {"name": "benchmark_model", "version": None},
    }  # fmt: skip
    return record


def test_device_rows_get_their_own_table_and_section():
    host = host_latency_record()
    tables = {t.name: t for t in generate_tables([host, device_record(host)])}
    assert len(tables["latency_measured"].rows) == 1  # the host row alone
    (row,) = tables["latency_devices"].rows
    columns = tables["latency_devices"].columns
    cell = dict(zip(columns, row, strict=True))
    assert cell["device"] == "Pixel 7 (Google, gs201)"
    assert cell["cpu mask"] == "c0"
    assert cell["delegate (nodes)"] == "TfLiteXNNPackDelegate (31/31)"
    assert cell["p50 (ms)"] == "12.50"
    assert cell["temp before → after (°C)"] == "31.0 → 35.5"
    page = generate([host, device_record(host)])["latency.md"].decode()
    assert "## Measured on devices" in page and "Pixel 7 (Google, gs201)" in page


def test_no_device_table_without_device_records():
    names = [t.name for t in generate_tables([host_latency_record()])]
    assert "latency_devices" not in names


def test_fallback_is_flagged():
    record = device_record(host_latency_record())
    record["target"].update(delegated_nodes=0, delegate_fallback="--delegate gpu: no nodes delegated")
    (row,) = {t.name: t for t in generate_tables([record])}["latency_devices"].rows
    assert "FALLBACK to CPU" in row[8]


def test_sweep_devices_plans_one_latency_pass_per_target():
    args = argparse.Namespace(tier="quick", tasks="classification", backbones="mnv1", widths="0.25", resolutions="128",
                              runtimes=None, stages="profile,run,latency", data=[], run_args="", latency_args="",
                              timeout_s=None, devices="local,ssh://pi@board:2222")  # fmt: skip
    first, second = device_plans(args)
    assert first.stages == ("profile", "run", "latency") and second.stages == ("latency",)
    assert first.runtimes == ("litert",)
    assert first.latency_args[-2:] == ("--device", "local")
    assert second.latency_args[-2:] == ("--device", "ssh://pi@board:2222")


def test_adding_a_device_record_brings_its_tool_log(tmp_path: Path):
    from benchmark.leaderboards.store import import_record_file

    source = tmp_path / "measured" / "classification-mnv1-litert-20261204T000000-abc123.json"
    source.parent.mkdir()
    source.write_text(json.dumps(device_record(host_latency_record())))
    source.with_suffix(".log").write_text("INFO: count=50 first=1 curr=2 min=1 max=3 avg=2 std=0\n")
    store = tmp_path / "records"
    target, changed = import_record_file(source, store)
    assert changed and target.name != source.name  # the store's own descriptive name
    assert target.with_suffix(".log").read_text() == source.with_suffix(".log").read_text()
    assert sorted(p.suffix for p in store.iterdir()) == [".json", ".log"]


def test_an_emulated_target_is_refused_and_never_drawn(tmp_path: Path, capsys) -> None:
    """A record timed under qemu-user (the device lab's aarch64 userland) says so; --add refuses it in
    one line, and one copied in by hand is left out of every page while --check fails on it."""
    from benchmark.cli import main
    from benchmark.devices.facts import parse_facts

    facts = parse_facts("machine aarch64\nuname Linux 6.1 aarch64\nemulated qemu-aarch64 (binfmt_misc)\nnproc 2\n")
    assert (facts["abi"], facts["emulated"]) == ("aarch64", "qemu-aarch64 (binfmt_misc)")
    assert parse_facts("machine aarch64\nnproc 8\n")["emulated"] is None
    record = device_record(host_latency_record())
    record["target"]["emulated"] = facts["emulated"]
    source = tmp_path / "emulated.json"
    source.write_text(json.dumps(record))
    records = tmp_path / "out" / "records"
    assert main(["leaderboard", "--out", str(tmp_path / "out"), "--records", str(records), "--add", str(source)]) == 2
    assert capsys.readouterr().err.strip() == (f"bench leaderboard: error: --add: {source}: timed on an emulated target "
                                               "(qemu-aarch64 (binfmt_misc)): its timings are the emulator's")  # fmt: skip
    records.mkdir(parents=True)
    (records / "by-hand.json").write_text(json.dumps(record))
    main(["leaderboard", "--out", str(tmp_path / "out"), "--records", str(records)])
    assert "Pixel 7" not in (tmp_path / "out" / "latency.md").read_text()
    assert main(["leaderboard", "--out", str(tmp_path / "out"), "--records", str(records), "--check"]) == 1
