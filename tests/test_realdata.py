"""Official TFLite checkpoints, imported into the suite's own modules, on real images.

Needs ``BENCH_REALDATA`` (the folder described in its README.md: ImageNet/VOC slices and the
official checkpoints). The reference numbers are LiteRT's own on the same images; the suite's float
models (dequantized weights) must land near them and agree with LiteRT image by image / pixel by
pixel.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("BENCH_REALDATA", ""))
if not os.environ.get("BENCH_REALDATA") or not (ROOT / "weights").is_dir():
    pytest.skip("BENCH_REALDATA is not set to the real-data folder", allow_module_level=True)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from PIL import Image  # noqa: E402

from tasks import get_task  # noqa: E402
from tasks.classification.data import ImageNetDataModule  # noqa: E402
from tasks.evaluate import evaluate  # noqa: E402
from tasks.preprocessing import central_crop, pil_bilinear_resize  # noqa: E402
from tasks.segmentation.voc import VocDataModule  # noqa: E402
from tasks.tflite.importer import import_tflite  # noqa: E402

THREADS = 2
# LiteRT (ai-edge-litert 2.3.0) on this folder: README.md of the real-data folder.
CLASSIFICATION = {
    "mobilenet_v2_1.0_224_quant": (80.70, 1.5),
    "mobilenet_v1_0.25_128_quant": (52.85, 2.0),
    "mobilenet_v1_0.5_160_quant": (73.25, 2.0),
    "mobilenet_v1_0.75_192_quant": (77.85, 2.0),
}
SEGMENTATION = {"deeplabv3_mnv2_pascal_quant": 77.31, "deeplabv3_mnv2_dm05_pascal_quant": 73.83}


@pytest.fixture(autouse=True)
def _threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(previous)


def litert(name: str) -> Interpreter:
    interpreter = Interpreter(model_path=str(ROOT / "weights" / f"{name}.tflite"), num_threads=THREADS)
    interpreter.allocate_tensors()
    return interpreter


def run_litert(interpreter: Interpreter, pixels: np.ndarray) -> np.ndarray:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels[None])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]


@pytest.mark.parametrize("name", sorted(CLASSIFICATION))
def test_imagenet_top1_matches_litert(name: str) -> None:
    model, report = import_tflite(ROOT / "weights" / f"{name}.tflite", task="classification")
    facts = report.facts
    assert report.preset == "tf-inception" and facts.num_classes == 1000
    datamodule = ImageNetDataModule(
        str(ROOT / "imagenet"), resolution=facts.resolution, batch_size=64, num_workers=0, preset=report.preset
    )
    result = evaluate(get_task("classification"), model, datamodule, keep_predictions=name.startswith("mobilenet_v2"))
    reference, tolerance = CLASSIFICATION[name]
    print(f"\n{name}: top-1 {result.metrics['top1']:.2f} (LiteRT {reference}), CI {result.ci95['top1']}")
    assert result.images == 456
    assert abs(result.metrics["top1"] - reference) <= tolerance, (name, result.metrics)
    low, high = result.ci95["top1"]
    assert low < result.metrics["top1"] < high
    if result.predictions:
        # Image by image against LiteRT's int8 arithmetic on the same crop and resize.
        interpreter = litert(name)
        same = 0
        for (path, _), predicted in zip(datamodule.val_set.samples, result.predictions, strict=True):
            crop = central_crop(np.asarray(Image.open(path).convert("RGB")))
            logits = run_litert(interpreter, pil_bilinear_resize(crop, facts.resolution))
            same += int(int(logits.argmax()) - 1 == predicted)  # file logit 0 = background
        print(f"{name}: top-1 agreement with LiteRT {same}/{result.images} = {100 * same / result.images:.2f} %")
        assert same / result.images >= 0.95, f"{name}: top-1 agreement with LiteRT {same}/{result.images}"


@pytest.mark.parametrize("name", sorted(SEGMENTATION))
def test_voc_miou_and_pixels_match_litert(name: str) -> None:
    model, report = get_task("segmentation").import_tflite(ROOT / "weights" / f"{name}.tflite")
    facts = report.facts
    assert report.preset == "tf-deeplab" and facts.output_stride == 16 and facts.num_classes == 21
    datamodule = VocDataModule(
        str(ROOT / "voc"), resolution=facts.resolution, batch_size=4, num_workers=0, preset=report.preset
    )
    result = evaluate(get_task("segmentation"), model, datamodule, keep_predictions=True)
    print(f"\n{name}: mIoU {result.metrics['miou']:.2f} (LiteRT {SEGMENTATION[name]}), CI {result.ci95['miou']}")
    assert result.images == 57
    assert abs(result.metrics["miou"] - SEGMENTATION[name]) <= 2.0, (name, result.metrics)
    interpreter = litert(name)
    size = facts.resolution
    same = total = 0
    for (image_path, _), predicted in zip(datamodule.val_set.samples, result.predictions, strict=True):
        pixels = np.asarray(Image.open(image_path).convert("RGB"))
        height, width = pixels.shape[:2]
        canvas = np.full((size, size, 3), 128, np.uint8)  # the LiteRT reference's padding
        canvas[:height, :width] = pixels
        labels = run_litert(interpreter, canvas)[:height, :width]
        same += int((labels == predicted).sum())
        total += height * width
    print(f"{name}: pixel agreement with LiteRT {100 * same / total:.2f} %")
    assert same / total >= 0.97, f"{name}: pixel agreement with LiteRT {same / total:.4f}"
