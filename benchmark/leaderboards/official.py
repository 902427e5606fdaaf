"""The official checkpoints: what their publishers report on the full val sets, and the official
runtime (LiteRT) on the same realdata slices the suite's ``bench eval`` records use; sources are named
in ``benchmark.leaderboards.baselines``' docstring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HOSTED_MODELS = "TF Lite hosted models (full ImageNet val)"
DEEPLAB_QUANTIZE = "DeepLab quantize.md (full VOC 2012 val)"
DETECTION_ZOO = "TF detection model zoo (COCO)"
LITERT = "LiteRT 2.3.0 (ai-edge-litert, 2 threads)"
REALDATA_README = "shared/realdata/README.md"
# Full val-set sizes: a record on fewer images is a slice (labelled so, and not comparable with the
# reported full-set numbers).
FULL_VAL_IMAGES = {"classification": 50_000, "detection": 5_000, "segmentation": 1_449}


@dataclass(frozen=True)
class RuntimeReference:
    """The official runtime's numbers for one checkpoint on a realdata slice (same images, same preset)."""

    images: int
    metrics: tuple[tuple[str, str], ...]  # (record metric key, value as printed)
    settings: tuple[tuple[str, Any], ...] = ()  # evaluation settings it holds for, e.g. 10 detections
    runtime: str = LITERT
    source: str = REALDATA_README

    def matches(self, record: dict[str, Any]) -> bool:
        settings = record.get("settings") or {}
        return record.get("images") == self.images and all(settings.get(k) == v for k, v in self.settings)


@dataclass(frozen=True)
class OfficialCheckpoint:
    """A published checkpoint ``bench eval --weights`` imports: its reported numbers and runtime references."""

    file: str
    sha256: str
    task: str
    label: str  # "official MobileNetV2 1.0 224 quant weights"
    reported: tuple[tuple[str, str], ...]  # (record metric key, value as printed)
    source: str
    note: str = ""
    references: tuple[RuntimeReference, ...] = ()

    def reference_for(self, record: dict[str, Any]) -> RuntimeReference | None:
        return next((ref for ref in self.references if ref.matches(record)), None)


def _imagenet(top1: str, top5: str) -> tuple[RuntimeReference, ...]:
    return (RuntimeReference(456, (("top1", top1), ("top5", top5))),)


OFFICIAL_CHECKPOINTS = (
    OfficialCheckpoint(
        "mobilenet_v2_1.0_224_quant.tflite", "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
        "classification", "official MobileNetV2 1.0 224 quant weights", (("top1", "70.8"), ("top5", "89.9")),
        HOSTED_MODELS, references=_imagenet("80.70", "93.64"),
    ),
    OfficialCheckpoint(
        "mobilenet_v1_0.75_192_quant.tflite", "41daeb22fdcf947e0e5ec32373aa9df7c31f3ef45dbd0ef7b5940fbce3c20f6a",
        "classification", "official MobileNetV1 0.75 192 quant weights", (("top1", "66.1"), ("top5", "86.2")),
        HOSTED_MODELS, references=_imagenet("77.85", "93.20"),
    ),
    OfficialCheckpoint(
        "mobilenet_v1_0.5_160_quant.tflite", "3cc6d2ca460abd2e0f699a6d0d2550c6b61c6e3b0e27a3616e384ea74cb86f43",
        "classification", "official MobileNetV1 0.5 160 quant weights", (("top1", "57.2"), ("top5", "80.5")),
        HOSTED_MODELS, references=_imagenet("73.25", "90.35"),
    ),
    OfficialCheckpoint(
        "mobilenet_v1_0.25_128_quant.tflite", "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785",
        "classification", "official MobileNetV1 0.25 128 quant weights", (("top1", "39.5"), ("top5", "64.4")),
        HOSTED_MODELS, references=_imagenet("52.85", "80.04"),
    ),
    OfficialCheckpoint(
        "ssd_mobilenet_v1_coco_quant.tflite", "e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13",
        "detection", "official SSD MobileNetV1 0.75 depth quant weights", (("map", "16"),), DETECTION_ZOO,
        note="ssd_mobilenet_v1_0.75_depth_quantized_coco",
        references=(RuntimeReference(80, (("map", "20.41"), ("map_50", "33.33")), (("max_detections", 10),)),),
    ),
    OfficialCheckpoint(
        "deeplabv3_mnv2_pascal_quant.tflite", "350af47fd346ea6d74b58833a351f583ba860e9806ec5bd292ff8d8f1f249398",
        "segmentation", "official DeepLabv3 MobileNetV2 quant weights", (("miou", "74.26"),), DEEPLAB_QUANTIZE,
        note="8-bit; float 75.32",
        references=(RuntimeReference(57, (("miou", "77.31"), ("pixel_acc", "95.32"))),),
    ),
    OfficialCheckpoint(
        "deeplabv3_mnv2_dm05_pascal_quant.tflite", "0470d2a782aa54eeeb99d32e7b6b3fb7722905c7c4f5d26bd957ec861366d48b",
        "segmentation", "official DeepLabv3 MobileNetV2 0.5 quant weights", (("miou", "69.65"),), DEEPLAB_QUANTIZE,
        note="8-bit; float 70.19",
        references=(RuntimeReference(57, (("miou", "73.83"), ("pixel_acc", "93.59"))),),
    ),
    OfficialCheckpoint(
        "tf2_mobilenet_v2_1.0_224_ptq.tflite", "5d3137241276e79c86d14a74fe43581398ae0e815191d3dba45495b810840e8c",
        "classification", "TF2 post-training quantized Keras MobileNetV2 1.0 224 weights (int8 per channel)", (),
        "google-coral/test_data (no accuracy published)", references=_imagenet("78.73", "94.52"),
    ),
    OfficialCheckpoint(
        "deeplabv3_257_mv_gpu.tflite", "9711334db2b01d5894feb8ed0f5cb3e97d125b8d229f8d8692f625801818f5ef",
        "segmentation", "float32 DeepLabv3 MobileNetV2 0.5 257 weights", (("miou", "70.19"),),
        "DeepLab model zoo (full VOC 2012 val)", note="mobilenetv2_dm05_coco_voc_trainaug, at 513",
        references=(RuntimeReference(57, (("miou", "63.10"), ("pixel_acc", "90.58"))),),
    ),
)  # fmt: skip


def official_checkpoint(record: dict[str, Any]) -> OfficialCheckpoint | None:
    """The published checkpoint an evaluation record evaluated: by the file's sha256 (by name only when
    the record has no hash), so a retrained file of the same name is never paired with the reported numbers."""
    weights = record.get("weights") or {}
    if weights.get("sha256"):
        return next((c for c in OFFICIAL_CHECKPOINTS if c.sha256 == weights["sha256"]), None)
    name = str(weights.get("file") or "").replace("\\", "/").rsplit("/", 1)[-1]
    return next((c for c in OFFICIAL_CHECKPOINTS if c.file == name), None)
