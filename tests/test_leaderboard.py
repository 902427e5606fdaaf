"""Leaderboards: golden files from fixed records, determinism, --check, bad records, baselines as data.

Regenerate the golden files after an intended change of the generator:
``BENCH_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_leaderboard.py -k golden``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.leaderboards.baselines import BASELINES, number
from benchmark.leaderboards.pages import generate, same_content
from benchmark.leaderboards.plots import png_data_digest, render_cached
from benchmark.leaderboards.store import add_record, load_records, record_name
from benchmark.runs.records import REPO_ROOT

FIXTURES = Path(__file__).parent / "fixtures" / "leaderboard"
RECORDS = FIXTURES / "records"
GOLDEN = FIXTURES / "golden"
COMMITTED = REPO_ROOT / "leaderboards"


@pytest.fixture(scope="module")
def fixture_files() -> dict[str, bytes]:
    return generate(load_records(RECORDS))


def test_golden_files(fixture_files: dict[str, bytes]) -> None:
    """Markdown and CSV byte for byte; PNGs by the plotted data they embed (renderer-independent)."""
    texts = {name: data for name, data in fixture_files.items() if not name.endswith(".png")}
    digests = {name: png_data_digest(data) for name, data in fixture_files.items() if name.endswith(".png")}
    if os.environ.get("BENCH_UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for name, data in texts.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_bytes(data)
        (GOLDEN / "png_digests.json").write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
    golden = {p.relative_to(GOLDEN).as_posix(): p.read_bytes() for p in GOLDEN.rglob("*") if p.is_file()}
    expected_digests = json.loads(golden.pop("png_digests.json"))
    assert sorted(golden) == sorted(texts)
    for name, data in texts.items():
        assert data.decode() == golden[name].decode(), f"{name} differs from its golden file"
    assert digests == expected_digests
    assert all(digests.values())


def test_same_records_give_byte_identical_files(tmp_path: Path, fixture_files: dict[str, bytes]) -> None:
    """Two CLI runs into two folders: every file, PNGs included, is byte-identical (and equals generate())."""
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        render_cached.cache_clear()  # draw every plot again, not from the memo
        assert main(["leaderboard", "--records", str(RECORDS), "--out", str(out)]) == 0
    trees = [{p.relative_to(o).as_posix(): p.read_bytes() for p in o.rglob("*") if p.is_file()} for o in outs]
    from benchmark.leaderboards.site import generate_site

    site = {f"site/{name}": data for name, data in generate_site(load_records(RECORDS)).items()}
    assert trees[0] == trees[1] == {**fixture_files, **site}
    assert sum(name.endswith(".png") for name in trees[0]) == 10  # 3 per task (MAdds, latency, smoke runs) + latency


def _line_with(text: str, *needles: str) -> str | None:
    return next((line for line in text.splitlines() if all(n in line for n in needles)), None)


@pytest.mark.parametrize("source", ["fixture", "committed"])
def test_tables_carry_reported_values_with_citations(source: str, fixture_files: dict[str, bytes]) -> None:
    if source == "committed":
        pages = {name: (COMMITTED / name).read_text() for name in ("classification.md", "detection.md",
                                                                     "segmentation.md", "latency.md")}  # fmt: skip
    else:
        pages = {name: fixture_files[name].decode() for name in fixture_files if name.endswith(".md")}
    assert _line_with(
        pages["classification.md"], "| MobileNetV2 |", "| 72.0 |", "reported (MobileNetV2 paper, Table 4)"
    )
    assert _line_with(
        pages["classification.md"],
        "| 1.0 MobileNet-224 |",
        "| 70.6 |",
        "reported (MobileNetV1 paper, Table 6)",
    )
    assert _line_with(
        pages["detection.md"], "| MNet V2 + SSDLite |", "| 22.1 |", "reported (MobileNetV2 paper, Table 6)"
    )
    assert _line_with(
        pages["segmentation.md"], "| MNet V2*, OS 16 |", "| 75.32 |", "reported (MobileNetV2 paper, Table 7)"
    )
    assert _line_with(pages["latency.md"], "| MobileNetV2 |", "| 75 |", "Pixel 1")
    if source == "committed":
        for plot in (
            "classification_accuracy_vs_madds",
            "detection_accuracy_vs_latency",
            "latency_by_runtime",
        ):
            assert png_data_digest((COMMITTED / "plots" / f"{plot}.png").read_bytes())


def test_counted_columns_and_measured_labels(fixture_files: dict[str, bytes]) -> None:
    classification = fixture_files["classification.md"].decode()
    # mnv2 1.0/224 counted 3,504,872 params, 300.77M MAdds beside Table 4's 3.4M / 300M.
    row = _line_with(classification, "| MobileNetV2 |", "Table 4")
    assert "| 3.50M | +3.1% |" in row and "| 300.8M | +0.3% |" in row
    row = _line_with(classification, "| MobileNetV2 (1.4) |")  # no profile record in the fixtures
    assert "| 6.9M | – | – |" in row
    # Smoke runs (embedded synthetic data) have their own section, after every real-data and reported table.
    smoke = classification.split("## Smoke runs (embedded synthetic data)")[1]
    synthetic = _line_with(smoke, "| mnv2 1.0 @96 |")
    assert "[synthetic]" in synthetic and "](records/result-classification-mnv2-" in synthetic
    assert "| mnv2 1.0 @96 |" not in classification.split("## Smoke runs")[0]
    real = _line_with(classification.split("## Runs on real data")[1].split("## ")[0], "| mnv1 1.0 @96 |")
    assert "[synthetic]" not in real
    # The long provenance words live in the CSV row.
    csv_text = fixture_files["classification_measured.csv"].decode()
    assert "measured (synthetic-shapes (ImageFolder) [synthetic], AMD EPYC" in _line_with(csv_text, "mnv2 1.0 @96")
    assert "40f99e3ab293" in csv_text and "NVIDIA H100 80GB HBM3" in _line_with(csv_text, "mnv1 1.0 @96")
    latency = fixture_files["latency.md"].decode()
    assert "FLAGGED" in _line_with(latency, "| onnxruntime-int8 |")
    assert "decode+NMS 3.25, end to end 25.50" in _line_with(latency, "| onnxruntime-int8 |")
    # Every column of every record, the source words included, is in the CSV.
    assert "onnxruntime-int8 (onnxruntime 1.32.0)" in _line_with(fixture_files["latency_measured.csv"].decode(), "onnxruntime-int8")
    # Table 5: the prediction layers alone compare with the detector's head counts.
    assert _line_with(fixture_files["detection.md"].decode(), "SSDLite prediction layers", "| 2.11M |")


def _leaderboard(tmp_path: Path, records: Path, *extra: str) -> int:
    return main(["leaderboard", "--records", str(records), "--out", str(tmp_path / "out"), *extra])


def test_check_reports_drift_and_regenerating_fixes_it(tmp_path: Path, capsys) -> None:
    records = tmp_path / "records"
    shutil.copytree(RECORDS, records)
    out = tmp_path / "out"
    assert _leaderboard(tmp_path, records) == 0
    assert _leaderboard(tmp_path, records, "--check") == 0
    page = out / "classification.md"
    page.write_text(page.read_text().replace("| 72.0 |", "| 72.5 |"))
    (out / "plots" / "latency_by_runtime.png").unlink()
    (out / "old_table.csv").write_text("a,b\n")
    capsys.readouterr()
    assert _leaderboard(tmp_path, records, "--check") == 1
    report = capsys.readouterr().out
    assert "classification.md: 2 changed line(s)" in report
    assert "latency_by_runtime.png: missing" in report
    assert "old_table.csv: not generated from the records (stale)" in report
    assert _leaderboard(tmp_path, records) == 0
    assert not (out / "old_table.csv").exists()
    assert _leaderboard(tmp_path, records, "--check") == 0
    # A new record is all it takes: --check fails until `bench leaderboard` runs again.
    new = json.loads((records / "result-classification-mnv2-synthetic.json").read_text())
    new.update(created="2026-11-24T00:00:00+00:00", metrics={"top1": 50.0, "top5": 90.0})
    new_file = tmp_path / "new_result.json"
    new_file.write_text(json.dumps(new))
    assert _leaderboard(tmp_path, records, "--check") == 0
    assert _leaderboard(tmp_path, records, "--add", str(new_file)) == 0
    assert len(list(records.glob("*.json"))) == 13
    assert "| 50.00 | 90.00 |" in page.read_text()
    assert _leaderboard(tmp_path, records, "--check") == 0


def test_png_comparison_uses_the_embedded_data_digest(fixture_files: dict[str, bytes]) -> None:
    """A plot re-encoded by another renderer (same data) is current; a plot of other data is not."""
    import io

    from PIL import Image, PngImagePlugin

    name = "plots/classification_accuracy_vs_madds.png"
    original = fixture_files[name]
    image = Image.open(io.BytesIO(original))
    info = PngImagePlugin.PngInfo()
    info.add_text("leaderboard-data-sha256", png_data_digest(original))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", pnginfo=info, compress_level=1)
    reencoded = buffer.getvalue()
    assert reencoded != original and same_content(name, original, reencoded)
    other = fixture_files["plots/detection_accuracy_vs_madds.png"]
    assert not same_content(name, original, other)
    assert png_data_digest(b"not a png") is None


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: "{not json", "not valid JSON"),
        (lambda r: dict(r, schema_version=2), "schema_version 2 is not the supported 1"),
        (lambda r: dict(r, kind="benchmark"), "unknown record kind 'benchmark'"),
        (lambda r: dict(r, metrics={"top5": 1.0}), "has no numeric metrics['top1']"),
        (lambda r: dict(r, params="3.4M"), "field 'params' must be int"),
        (
            lambda r: {k: v for k, v in r.items() if k != "dataset"},
            "field 'dataset' must be dict, got missing",
        ),
        (lambda r: dict(r, task="depth"), "unknown task 'depth'"),
        (lambda r: dict(r, steps=True), "field 'steps' must be int, got bool True"),
        (lambda r: dict(r, top1=71.8), "result record has unknown field(s) 'top1'"),
    ],
)
def test_bad_record_is_one_line_naming_the_file(tmp_path: Path, capsys, mutate, message: str) -> None:
    records = tmp_path / "records"
    shutil.copytree(RECORDS, records)
    good = json.loads((records / "result-classification-mnv2-synthetic.json").read_text())
    bad = records / "zz-bad.json"
    changed = mutate(good)
    bad.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    assert _leaderboard(tmp_path, records) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and message in err
    assert not (tmp_path / "out").exists()  # nothing written from a bad store


def test_store_names_are_unique_and_idempotent(tmp_path: Path) -> None:
    record = json.loads((RECORDS / "result-classification-mnv2-synthetic.json").read_text())
    first, changed = add_record(record, tmp_path)
    again, changed_again = add_record(record, tmp_path)
    other, _ = add_record(dict(record, created="2026-11-24T00:00:00+00:00"), tmp_path)
    assert changed and not changed_again and first == again and other != first
    assert first.name == record_name(record) and first.name.startswith("result-classification-mnv2-w1-r96-")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [first.name, other.name]
    )  # no temp files left
    latency = json.loads((RECORDS / "latency-classification-mnv2-onnxruntime.json").read_text())
    assert record_name(latency).startswith("latency-classification-mnv2-w1-r96-onnxruntime-t2-b1-")
    profile = json.loads((RECORDS / "profile-detection-mnv2-r320.json").read_text())
    assert record_name(profile) == "profile-detection-mnv2-r320.json"


def test_baselines_are_cited_data() -> None:
    rows = BASELINES.rows
    assert all(row.source for row in rows)
    for row in rows:
        assert row.source.startswith(
            ("MobileNetV1 paper, Table", "MobileNetV2 paper, Table", "TF-slim", "torchvision", "timm results",
             "tensorflow/tpu", "THU-MIG/RepViT", "huawei-noah")
        )
        for printed in (row.value, row.params, row.madds, row.cpu_ms, row.device_ms):
            assert printed is None or number(printed) > 0
    slim = [row for row in rows if row.source.startswith("TF-slim")]
    assert len(slim) == 22 and {row.suite.width for row in slim} == {1.4, 1.3, 1.0, 0.75, 0.5, 0.35}
    tables = {row.source for row in rows}
    for table in ("MobileNetV2 paper, Table 4", "MobileNetV2 paper, Table 6", "MobileNetV2 paper, Table 7",
                  "MobileNetV1 paper, Table 6", "MobileNetV1 paper, Table 7", "MobileNetV1 paper, Table 8",
                  "MobileNetV1 paper, Table 13"):  # fmt: skip
        assert table in tables
    assert len([r for r in rows if r.source == "MobileNetV2 paper, Table 7"]) == 8
    assert number("0.8B") == 8e8 and number("575M") == 575e6 and number("75.70") == 75.7


def test_torchvision_rows_match_the_installed_model_cards() -> None:
    """The card rows copy torchvision's weights meta: checked against the installed torchvision."""
    import torchvision
    from torchvision.models import get_weight

    if not torchvision.__version__.startswith("0.29.1"):
        pytest.skip(f"cards copied from torchvision 0.29.1, installed {torchvision.__version__}")
    cards = [row for row in BASELINES.rows if row.source.startswith("torchvision")]
    assert len(cards) == 8
    for row in cards:
        meta = get_weight(row.source.split(", ")[1]).meta
        assert number(row.params) == pytest.approx(meta["num_params"], abs=0.5)
        assert number(row.madds) == pytest.approx(meta["_ops"] * 1e9, rel=1e-9)
        metrics = next(iter(meta["_metrics"].values()))
        value = metrics.get("acc@1", metrics.get("box_map", metrics.get("miou")))
        assert float(row.value) == value


def test_committed_counts_match_a_fresh_count(tmp_path: Path) -> None:
    """The cached profile records are what `bench profile` counts now (cheap configurations), counted
    through ``recount``: the road `bench leaderboard --recount` and a sweep's profile stage take."""
    from benchmark.leaderboards.baselines import Baselines, Reported, SuiteModel
    from benchmark.sweeps.counting import recount

    models = (SuiteModel("classification", "mnv2", 96, 0.35), SuiteModel("classification", "mnv1", 128, 1.0))
    rows = tuple(Reported("classification", m.key, "test", "ImageNet", None, None, None, suite=m) for m in models)
    lines = recount(tmp_path, Baselines(rows))
    fresh = {record["key"]: record for record in load_records(tmp_path)}
    assert sorted(fresh) == sorted(model.key for model in models)
    for model, line in zip(models, lines, strict=True):
        committed = json.loads((COMMITTED / "records" / f"profile-{model.key}.json").read_text())
        assert (fresh[model.key]["params"], fresh[model.key]["madds"]) == (committed["params"], committed["madds"])
        assert line == (f"count {model.key}: {committed['params']:,} params, "
                        f"{committed['madds'] / 1e6:,.1f}M MAdds (updated)")  # fmt: skip


def test_wandb_logs_each_table_offline(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert _leaderboard(tmp_path, RECORDS, "--wandb") == 0
    # The run's own folder, as printed: W&B keeps the directory of the first run in this process.
    folder = Path(re.search(r"W&B: logged 14 tables \((.+)\)", capsys.readouterr().out).group(1))
    tables = sorted(folder.rglob("media/table/leaderboard/*.table.json"))
    assert len(tables) == 14, [p.name for p in tables]  # headlines, real_data, integer_execution, latency summary
    table = next(folder.rglob("media/table/leaderboard/classification_reported_*.table.json"))
    data = json.loads(table.read_text())
    assert "model" in data["columns"] and any("72.0" in row for row in data["data"])


# -- bench eval records, README blocks, dirty records (issues 11.5 and 13.3) ------------------------

EVALUATION = RECORDS / "evaluation-classification-mnv2-official.json"


def test_add_takes_an_eval_output_folder_and_labels_the_row(tmp_path: Path, capsys) -> None:
    """`--add DIR` of a `bench eval` output: a descriptive file name, and a row beside the checkpoint's
    reported number and the official runtime's number on the same images."""
    records = tmp_path / "records"
    shutil.copytree(RECORDS, records)
    (records / EVALUATION.name).unlink()
    run_dir = tmp_path / "ev-mnv2"
    run_dir.mkdir()
    shutil.copy(EVALUATION, run_dir / "result.json")
    assert _leaderboard(tmp_path, records, "--add", str(run_dir)) == 0
    added = [p.name for p in records.glob("evaluation-*-tf-inception-*.json")]
    assert len(added) == 1
    assert re.fullmatch(r"evaluation-classification-mobilenet-v2-1.0-224-quant-tf-inception-imagenet-n456-[0-9a-f]{10}\.json",
                        added[0])  # fmt: skip
    page = (tmp_path / "out" / "classification.md").read_text()
    row = _line_with(page, "| mobilenet_v2_1.0_224_quant | eager |")
    assert row is not None
    assert "| 81.14 / 93.86 | 77.85–84.43 | 80.70 / 93.64 | 70.8 / 89.9 |" in row
    assert f"](records/{added[0]}) |" in row  # the row links its record
    csv_row = _line_with((tmp_path / "out" / "real_data.csv").read_text(), "mobilenet_v2_1.0_224_quant,mnv2 1.0 @224")
    assert ("measured (ImageNet val slice, 456 images, official MobileNetV2 1.0 224 quant weights, "
            "tf-inception preset, runtime eager fp32, PyTorch 2.14.1+cu130, commit b1be50caaaa3)") in csv_row  # fmt: skip
    assert "80.70 / 93.64 (LiteRT 2.3.0" in csv_row
    assert "70.8 / 89.9 (reported: TF Lite hosted models (full ImageNet val))" in csv_row
    # The headline row of the file: reported on the full set, measured on the slice with its CI.
    headline = _line_with(page, "mnv2 1.0 @224 (mobilenet_v2_1.0_224_quant)")
    assert "| 70.8 (TFLite hosted, full val) | 81.14 [77.85–84.43], 456 img |" in headline
    assert (tmp_path / "out" / "real_data.csv").read_text().count("\n") == 3  # header, eager, xnnpack-int8


def _evaluation(**changes) -> dict:
    record = json.loads(EVALUATION.read_text())
    record.update(changes)
    return record


def test_real_data_rows_pair_only_the_same_checkpoint_images_and_settings() -> None:
    from benchmark.leaderboards.tables import evaluation_table

    ssd = {"file": "/x/ssd_mobilenet_v1_coco_quant.tflite", "source": "tflite",
           "sha256": "e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13"}  # fmt: skip
    detection = dict(task="detection", weights=ssd, images=80, preset="tf-ssd", metrics={"map": 22.17, "map_50": 35.0},
                     ci95={"map": [18.0, 26.0]}, dataset={"name": "coco", "synthetic": False})  # fmt: skip
    rows = evaluation_table([
        _evaluation(**detection, settings={"max_detections": 10}),
        _evaluation(**detection, settings={"max_detections": 100}),
        _evaluation(**dict(detection, images=79), settings={"max_detections": 10}),
        _evaluation(weights=dict(json.loads(EVALUATION.read_text())["weights"], sha256="0" * 64)),
    ]).rows  # fmt: skip
    ten, hundred, fewer, retrained = rows
    assert ten[7].startswith("20.41 / 33.33 (LiteRT 2.3.0") and "10 detections per image" in ten[9]
    assert "COCO val slice, 80 images" in ten[9] and "16 / – (reported: TF detection model zoo" in ten[8]
    assert hundred[7] == "–" and "100 detections per image" in hundred[9]
    assert fewer[7] == "–"
    # Another file of the same name is not the official checkpoint: no reported or runtime number.
    assert retrained[7] == retrained[8] == "–" and "official" not in retrained[9]


def test_integer_execution_table_puts_each_files_runtimes_side_by_side() -> None:
    """One row per file and setting: the float import, both integer runtimes (the newest record of each)
    and the official runtime; a retrained file of the same name and a plain checkpoint have no row."""
    from benchmark.leaderboards.store import record_name
    from benchmark.leaderboards.tables import integer_execution_table

    agree = {"raw_values_equal": 100.0, "argmax_equal": 100.0}
    int8 = dict(precision="uint8", litert_agreement=agree, created="2026-12-04T00:00:00+00:00")
    records = [
        _evaluation(),
        _evaluation(runtime="tflite-int8", metrics={"top1": 80.9211, "top5": 93.6404}, **int8),
        _evaluation(runtime="xnnpack-int8", metrics={"top1": 80.0, "top5": 93.0}, **int8),
        _evaluation(runtime="xnnpack-int8", metrics={"top1": 80.7018, "top5": 93.6404},
                    **dict(int8, created="2026-12-05T00:00:00+00:00")),
        _evaluation(weights=dict(json.loads(EVALUATION.read_text())["weights"], sha256="0" * 64)),
    ]  # fmt: skip
    table = integer_execution_table(records)
    assert table.rows == ((
        "mobilenet_v2_1.0_224_quant", "–", "top-1 / top-5", "81.14 / 93.86", "80.92 / 93.64 (raw = LiteRT 100.00 %)",
        "80.70 / 93.64 (raw = LiteRT 100.00 %)", "80.70 / 93.64 (LiteRT 2.3.0 (ai-edge-litert, 2 threads))",
        "b1be50caaaa3",
    ),)  # fmt: skip
    # The integer runtimes' records are named apart from the float import's.
    assert record_name(records[1]).split("-n456-")[1].startswith("tflite-int8-")
    assert "int8" not in record_name(records[0])


README_TEXT = """# Project

Intro text that is not generated.

<!-- bench:begin default-runs -->
<!-- bench:end default-runs -->

Middle.

<!-- bench:begin real-data -->
stale content
<!-- bench:end real-data -->

<!-- bench:begin integer-execution -->
<!-- bench:end integer-execution -->

<!-- bench:begin latency -->
<!-- bench:end latency -->
Tail.
"""


def test_readme_blocks_are_generated_and_checked(tmp_path: Path, capsys) -> None:
    records = tmp_path / "records"
    shutil.copytree(RECORDS, records)
    readme = tmp_path / "README.md"  # beside the --out folder: found without --readme
    readme.write_text(README_TEXT)
    assert _leaderboard(tmp_path, records) == 0
    text = readme.read_text()
    assert text.startswith("# Project\n\nIntro text that is not generated.\n") and "Middle." in text
    assert text.endswith("<!-- bench:end latency -->\nTail.\n") and "stale content" not in text
    assert "| `bench run --task segmentation --backbone mnv2" in text
    assert _line_with(text, "| mobilenet_v2_1.0_224_quant |", "| 81.14 / 93.86 |", "80.70 / 93.64")
    assert _line_with(text, "| mnv2 1.0 @96 | classification | 2 | 1 |")  # latency: p50 per runtime
    assert _leaderboard(tmp_path, records, "--check") == 0
    capsys.readouterr()
    readme.write_text(text.replace("| eager | top-1 / top-5 | 81.14 / 93.86 |", "| eager | top-1 / top-5 | 82.00 / 93.86 |"))
    assert _leaderboard(tmp_path, records, "--check") == 1
    assert f"{readme}: its generated tables differ from the records (2 changed line(s)" in capsys.readouterr().out
    assert _leaderboard(tmp_path, records) == 0 and readme.read_text() == text
    # A block's markers removed: one line naming the README and the block, exit 2.
    readme.write_text(text.replace("<!-- bench:end latency -->", ""))
    assert _leaderboard(tmp_path, records, "--check") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(readme) in err and "bench:begin latency" in err


def test_dirty_records_fail_check_and_are_refused_by_add(tmp_path: Path, capsys) -> None:
    records = tmp_path / "records"
    shutil.copytree(RECORDS, records)
    assert _leaderboard(tmp_path, records) == 0
    assert _leaderboard(tmp_path, records, "--check") == 0
    dirty = _evaluation(environment=dict(_evaluation()["environment"], commit="b1be50caaaa3+dirty"))
    dirty_file = tmp_path / "dirty.json"
    dirty_file.write_text(json.dumps(dirty))
    capsys.readouterr()
    assert _leaderboard(tmp_path, records, "--add", str(dirty_file)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "dirty.json" in err and "uncommitted changes (commit b1be50caaaa3+dirty)" in err
    # Copied in by hand (or by an old sweep): the pages can be regenerated, --check still fails.
    add_record(dirty, records)
    assert _leaderboard(tmp_path, records) == 0
    assert "warning:" in capsys.readouterr().out
    assert _leaderboard(tmp_path, records, "--check") == 1
    out = capsys.readouterr().out
    assert "made from a tree with uncommitted changes (commit b1be50caaaa3+dirty)" in out


def test_segmentation_latency_below_the_normal_tier_fails_check_and_is_refused_by_add(tmp_path: Path, capsys) -> None:
    """Issue 13.7: segmentation rows are timed at the normal tier; a quick-tier one cannot enter the leaderboard."""
    records = tmp_path / "records"
    shutil.copytree(RECORDS, records)
    assert _leaderboard(tmp_path, records) == 0
    quick = json.loads((RECORDS / "latency-classification-mnv2-eager.json").read_text())
    quick.update(task="segmentation", resolution=513, tier="quick")
    quick_file = tmp_path / "quick.json"
    quick_file.write_text(json.dumps(quick))
    capsys.readouterr()
    assert _leaderboard(tmp_path, records, "--add", str(quick_file)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "quick.json" in err
    assert "segmentation latency timed at the quick tier; its rows need --tier normal" in err
    # Copied in by hand (or by an old sweep): the pages can be regenerated, --check still fails.
    quick_path, _ = add_record(quick, records)
    assert _leaderboard(tmp_path, records) == 0
    assert "warning:" in capsys.readouterr().out
    assert _leaderboard(tmp_path, records, "--check") == 1
    assert "its rows need --tier normal; remove it from the committed records" in capsys.readouterr().out
    # The same record at the normal tier is taken, and its tier is on the page.
    normal_file = tmp_path / "normal.json"
    normal_file.write_text(json.dumps(dict(quick, tier="normal", runs=1024)))
    quick_path.unlink()
    assert _leaderboard(tmp_path, records, "--add", str(normal_file)) == 0
    csv_text = (tmp_path / "out" / "latency_measured.csv").read_text()
    assert _line_with(csv_text, "mnv2 1.0 @513,segmentation,", ",eager,", ",1024,normal,") is not None


def test_committed_records_are_all_from_committed_trees_and_timed_long_enough() -> None:
    from benchmark.leaderboards.store import load_store, refusal_reason

    refused = [path.name for path, record in load_store(COMMITTED / "records") if refusal_reason(record)]
    assert refused == []


def test_latency_points_pair_with_the_evaluation_of_their_weights_or_the_trained_model() -> None:
    """A row that timed an official checkpoint takes that checkpoint's evaluation (same input size);
    another pairs with the newest trained run of its model and width, both input sizes stated."""
    from benchmark.leaderboards.plots import accuracy_vs_latency_spec

    evaluation = _evaluation()
    timed_official = json.loads((RECORDS / "latency-classification-mnv2-onnxruntime.json").read_text())
    timed_official["weights"] = {"source": "tflite", "sha256": evaluation["weights"]["sha256"]}
    timed_trained = json.loads((RECORDS / "latency-classification-mnv2-eager.json").read_text())
    timed_trained.pop("weights", None)
    trained = json.loads((RECORDS / "result-classification-mnv2-synthetic.json").read_text())
    trained["resolution"] = 64
    spec = accuracy_vs_latency_spec("classification", [trained], [timed_official, timed_trained], BASELINES, [evaluation])
    measured = [panel for panel in spec["panels"] if panel["title"].startswith("measured")]
    # The trained run is on the embedded synthetic data: its accuracy is never plotted against latency.
    assert len(measured) == 1
    points = {n: (x, y) for panel in measured for x, y, n, _ in panel["points"]}
    official = next(name for name in points if name.startswith("mobilenet_v2_1.0_224_quant"))
    gate = timed_official["accuracy"]
    expected = gate["value"] if gate.get("metric") == "top1" else evaluation["metrics"]["top1"]
    assert points[official] == (timed_official["p50_ms"], expected)
    assert len(points) == 1
    # The same run on real data pairs with the latency row of its model, both input sizes stated.
    trained["dataset"] = dict(trained["dataset"], synthetic=False, name="imagenet")
    spec = accuracy_vs_latency_spec("classification", [trained], [timed_official, timed_trained], BASELINES, [evaluation])
    points = {n: (x, y) for panel in spec["panels"] if panel["title"].startswith("measured")
              for x, y, n, _ in panel["points"]}  # fmt: skip
    other = next(name for name in points if f"trained @64, timed @{timed_trained['resolution']}" in name)
    assert other.startswith("mnv2 1.0 eager") and len(points) == 2


def test_a_float_row_of_a_reported_network_plots_at_its_reported_accuracy() -> None:
    """A baseline timed with fresh weights (no accuracy of its own) takes its source's top-1 in a panel of
    its own; its int8 row, whose accuracy no source reports, is not plotted."""
    from benchmark.leaderboards.plots import accuracy_vs_latency_spec

    eager = json.loads((RECORDS / "latency-classification-mnv2-eager.json").read_text())
    eager.pop("weights", None)
    timm = dict(eager, backbone="timm:mobilenetv4_conv_small", resolution=224, width=None, p50_ms=7.5)
    int8 = dict(timm, runtime="onnxruntime-int8", precision="int8", p50_ms=4.0)
    spec = accuracy_vs_latency_spec("classification", [], [timm, int8], BASELINES)
    reported = [panel for panel in spec["panels"] if "as reported" in panel["title"]]
    assert len(reported) == 1 and reported[0]["title"].startswith("ImageNet")
    [(x, y, name, runtime)] = reported[0]["points"]
    assert (x, y, runtime) == (7.5, 73.756, "eager")
    assert name.startswith("MobileNetV4-Conv-S (timm e2400_r224) @224 eager") and name.endswith("(reported accuracy)")
    assert not [p for p in spec["panels"] if p["title"].startswith("measured")]


def test_the_ablation_table_joins_the_classification_page_once_a_result_exists() -> None:
    from benchmark.leaderboards.pages import generate

    base = json.loads((RECORDS / "result-classification-mnv2-synthetic.json").read_text())
    shallow = dict(base, backbone="mnv1_shallow", width=1.0, resolution=224, metrics={"top1": 64.9},
                   dataset=dict(base["dataset"], synthetic=False, name="imagenet"))
    assert "## The papers' ablations" not in generate([base])["classification.md"].decode()
    files = generate([base, shallow])
    page = files["classification.md"].decode()
    assert "## The papers' ablations (V1 Tables 4-5, V2 Figure 6)" in page and "ablations.csv" in files
    assert "Shallow MobileNet" in page and "64.90" in page


def test_latency_page_names_the_official_file_it_timed() -> None:
    """Rows that timed an official checkpoint are told apart from the suite's own models of that shape."""
    from benchmark.leaderboards.tables import latency_table

    own = json.loads((RECORDS / "latency-classification-mnv2-eager.json").read_text())
    own.pop("weights", None)
    official = dict(own, weights={"source": "tflite", "file": "/x/mobilenet_v2_1.0_224_quant.tflite", "sha256": "0" * 64})
    labels = [row[0] for row in latency_table([own, official]).rows]
    assert labels == ["mnv2 1.0 @96", "mnv2 1.0 @96 (mobilenet_v2_1.0_224_quant)"]


def test_headline_shows_the_evaluation_the_official_runtime_compares_with() -> None:
    """A newer evaluation in a setting LiteRT was not run in (here 100 detections instead of the file's 10)
    keeps its own row in the real-data table; the model's headline shows the like-for-like one."""
    from benchmark.leaderboards.headline import _shown_first

    like_for_like = json.loads(EVALUATION.read_text())
    other = dict(like_for_like, images=455, created="2099-01-01T00:00:00")  # no LiteRT number on 455 images
    assert _shown_first(like_for_like) > _shown_first(other)
    assert _shown_first(dict(like_for_like, created="2099-01-02T00:00:00")) > _shown_first(like_for_like)
