"""The V2 paper's Table 3 memory measure, and measured peak memory."""

from __future__ import annotations

import json

import pytest
import torch

from backbones import create_backbone
from benchmark.cli import main
from benchmark.memory.peak import PeakMemory
from benchmark.memory.table3 import PAPER_TABLE3, format_table3, table3


@pytest.mark.parametrize(("name", "paper_max_kb"), [("mnv1", 1600), ("mnv2", 400)])
def test_table3_maxima_match_the_paper(name: str, paper_max_kb: int) -> None:
    table = table3(create_backbone(name), name, 224)
    assert table.max_kb == pytest.approx(paper_max_kb, rel=0.01)  # 1606K and 401K (the paper rounds)
    top = table.rows[0]
    assert top.size == 112 and top.max_channels == PAPER_TABLE3[name]["rows"][112][0]
    assert top.kb == pytest.approx(paper_max_kb, rel=0.01)
    assert table.rows[-1].size == 1


def test_table3_counts_what_is_materialized() -> None:
    v2 = table3(create_backbone("mnv2"), "mnv2", 224)
    names = [t.layer for t in v2.tensors]
    # V2: the stem is fused into the first bottleneck; expansions (e.g. 96 x 112 x 112) are never listed
    assert names[0] == "block1" and "stem" not in names and len(names) == 17 + 2
    assert max(t.channels for t in v2.tensors if t.size == 112) == 16
    v1 = table3(create_backbone("mnv1"), "mnv1", 224)
    assert [t.layer for t in v1.tensors][:3] == ["conv1", "dw1", "pw1"] and len(v1.tensors) == 1 + 26 + 1
    # the stricter count: pw1 reads 32 x 112^2 and writes 64 x 112^2
    assert v1.max_input_plus_output_layer == "pw1" and v1.max_input_plus_output_kb == pytest.approx(96 * 112 * 112 * 2 / 1000)
    # width shrinks the measure
    assert table3(create_backbone("mnv2", width=0.5), "mnv2", 224).max_kb == pytest.approx(8 * 112 * 112 * 2 / 1000)


def test_bench_memory_prints_table_and_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["memory"]) == 0
    text = capsys.readouterr().out
    assert "1606K" in text and "1600K" in text and "401K" in text and "400K" in text
    assert format_table3([table3(create_backbone("mnv2"), "mnv2", 160)]).count("paper") == 1
    assert main(["memory", "--backbone", "mnv2", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["backbone"] == "mnv2" and round(item["max_kb"]) == 401


@pytest.mark.parametrize(("argv", "message"), [
    (["memory", "--backbone", "resnet18"], "defined for mnv1 and mnv2"),
    (["memory", "--backbone", "nope"], "--backbone"),
    (["memory", "--resolution", "8"], "--resolution must be >= 32"),
])
def test_bench_memory_bad_input_is_one_line(capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_peak_memory_sees_a_large_allocation() -> None:
    with PeakMemory("cpu") as peak:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        del block
    assert peak.growth_mb is not None and peak.growth_mb >= 60, peak.method
    assert "high-water" in peak.method
