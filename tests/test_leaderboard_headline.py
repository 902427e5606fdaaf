"""Leaderboards people can read: host labels, one machine per latency axis, the headline tables (at most
ten columns, no cell over 80 characters, a stable anchor per row, every number traced to a record or a
reported source), smoke runs apart from real-data numbers, and the table modules' sizes."""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path

import pytest

from backbones.errors import UserError
from benchmark.leaderboards.baselines import BASELINES
from benchmark.leaderboards.cells import TASKS, split_records
from benchmark.leaderboards.headline import COLUMNS, headline_markdown, headline_rows
from benchmark.leaderboards.hosts import machine_label, one_machine
from benchmark.leaderboards.plots import accuracy_vs_latency_spec, latency_by_runtime_spec
from benchmark.leaderboards.store import load_records
from benchmark.runs.host import host_label
from benchmark.runs.records import REPO_ROOT

COMMITTED = REPO_ROOT / "leaderboards"
RECORDS = COMMITTED / "records"
FIXTURES = Path(__file__).parent / "fixtures" / "leaderboard" / "records"
AVX512 = {"label": "AMD EPYC 9B14, AVX-512 VNNI BF16, 2 cores", "vendor": "AuthenticAMD", "model": "AMD EPYC 9B14",
          "flags": ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"], "cores": 2, "max_mhz": 2600}  # fmt: skip


@pytest.fixture(scope="module")
def kinds() -> dict:
    return split_records(load_records(RECORDS))


def test_host_label_from_the_record_or_marked_without_isa() -> None:
    assert host_label({"cpu": "AMD EPYC", "cpu_count": 2, "host": AVX512}) == "AMD EPYC 9B14, AVX-512 VNNI BF16, 2 cores"
    assert host_label({"cpu": "AMD EPYC", "cpu_count": 2, "device": "cpu"}) == "AMD EPYC, 2 cores (ISA not recorded)"
    assert host_label({"device": "cuda:0", "gpu": "NVIDIA H100 80GB HBM3"}) == "NVIDIA H100 80GB HBM3"
    device = {"environment": {"cpu": "x"}, "target": {"model": "Pixel 7", "transport": "adb"}}
    assert machine_label(device) == "Pixel 7 (adb)"


def test_two_instruction_sets_never_share_a_latency_axis() -> None:
    record = json.loads((FIXTURES / "latency-classification-mnv2-eager.json").read_text())
    other = copy.deepcopy(record)
    other["environment"]["host"] = AVX512
    spec = latency_by_runtime_spec([record, other])
    assert sorted(panel["title"] for panel in spec["panels"]) == [
        "AMD EPYC 9B14, AVX-512 VNNI BF16, 2 cores", f"{host_label(record['environment'])}"]
    with pytest.raises(UserError) as error:
        one_machine([record, other], "latency panel X")
    message = str(error.value)
    assert "\n" not in message and "two machines on one latency axis" in message and "AVX-512" in message


def test_headline_tables_are_narrow_and_traced(kinds: dict) -> None:
    records = {path.name for path in RECORDS.glob("*.json")}
    for task in TASKS:
        rows = headline_rows(task, kinds, BASELINES)
        assert rows and len(COLUMNS) <= 10
        assert len({row.anchor for row in rows}) == len(rows)  # one stable id per row
        for row in rows:
            assert all(len(cell) <= 80 for cell in row.cells), row.cells
            assert re.fullmatch(r"[a-z0-9_-]+", row.anchor)
            assert all(note.record in records for note in row.notes if note.record)
            # Every number shown has a note saying where it came from.
            shown = sum(cell != "–" for cell in row.cells[1:7]) - (row.cells[3] != "–")  # params/MAdds share one
            assert len(row.notes) >= shown
    # Numbers of the committed records: the official MobileNetV2 file on the 456-image slice, timed here.
    row = next(r for r in headline_rows("classification", kinds, BASELINES) if r.anchor.endswith("mobilenet-v2-1_0-224-quant"))
    assert row.cells[1:3] == ("70.8 (TFLite hosted, full val)", "81.14 [77.85–84.43], 456 img")
    assert row.cells[5:7] == ("4.54 litert", "2.40 litert-int8")
    paper = next(r for r in headline_rows("classification", kinds, BASELINES) if r.anchor == "classification-mnv2-1_0-224")
    assert paper.cells[1] == "72.0 (V2 T4); 71.8 (TF-slim); 71.878 (torchvision)"
    assert paper.cells[3:5] == ("3.50M", "300.8M")


def test_headline_markdown_links_rows_and_notes(kinds: dict) -> None:
    text = headline_markdown(headline_rows("detection", kinds, BASELINES))
    assert '<a id="detection-mnv2-1_0-320"></a>mnv2 1.0 @320 | 22.1 (V2 T6) |' in text
    links = re.findall(r"\]\(#(detection-n\d+)\)", text)
    assert links and all(f'<a id="{anchor}"></a>' in text for anchor in links)
    page = (COMMITTED / "detection.md").read_text()
    assert text in page  # the committed page carries this very table


def test_smoke_runs_never_share_a_table_or_chart_with_real_numbers(kinds: dict) -> None:
    synthetic = [r for r in kinds["result"] if r["dataset"].get("synthetic")]
    assert synthetic
    for task in TASKS:
        page = (COMMITTED / f"{task}.md").read_text()
        before, smoke = page.split("## Smoke runs (embedded synthetic data)")
        assert "[synthetic]" not in before.split("## Every record")[0].split("## Headline")[1].split("## Official")[0]
        assert "[synthetic]" in smoke
        spec = accuracy_vs_latency_spec(task, kinds["result"], kinds["latency"], BASELINES, kinds["evaluation"])
        assert all("synthetic" not in panel["title"] for panel in spec["panels"])


def test_table_modules_are_small() -> None:
    folder = REPO_ROOT / "benchmark" / "leaderboards"
    for name in ("tables", "cells", "provenance", "evaluation_tables", "latency_tables", "headline", "hosts",
                 "compare", "pages", "plots", "drawing", "site", "readme"):
        source = (folder / f"{name}.py").read_text()
        assert len(source.splitlines()) <= 400, name
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno + 1 <= 60, f"{name}.{node.name}"
