"""Reported numbers as data: every row is what a paper table or a torchvision model card prints.

Values are kept as the source prints them ("72.0", "75.70", "0.8B", "575M") so a table shows
the source's own precision; ``number()`` turns them into floats for plots and differences.
Where the suite builds the same network, ``suite`` names it: ``bench leaderboard`` shows the
suite's counted params and MAdds beside the reported ones (counts cached as ``profile`` records).

Sources (numbers copied from ``shared/reference/paper-numbers.md``, itself from the papers):
- V1 = Howard et al., "MobileNets", arXiv 1704.04861.
- V2 = Sandler et al., "MobileNetV2", CVPR 2018, arXiv 1801.04381 v4.
- TF-slim = tensorflow/models research/slim/nets/mobilenet/README.md (MobileNetV2 checkpoints).
- Modern baselines (``CLASSIFICATION_MODERN``): timm's published results CSVs, the TF
  EfficientNet-Lite README (Pixel 4 latencies), the RepViT README and Apple's FastViT Core ML card
  (iPhone 12 latencies), the GhostNet readme; each row names its files.
- torchvision = the weights' ``meta`` in torchvision 0.29.1 (``num_params``, ``_metrics``, and
  ``_ops``, which torchvision labels GFLOPS but counts multiply-adds: mobilenet_v2 is 0.301).
- Official checkpoints (``benchmark.leaderboards.official``, beside ``bench eval`` records): TF Lite hosted
  models (tensorflow.org/lite/guide/hosted_models, the quantized MobileNet rows), DeepLab's
  quantize.md (tensorflow/models research/deeplab/g3doc/quantize.md), TF detection model zoo
  (tensorflow/models research/object_detection/g3doc/tf1_detection_zoo.md), all full val sets; and
  the official LiteRT runtime on the realdata slices (shared/realdata/README.md: ai-edge-litert 2.3.0,
  2 threads), measured on the same images the suite's evaluation records use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.facts import TASK_FACTS

V1_PAPER = "MobileNetV1 paper"
V2_PAPER = "MobileNetV2 paper"
TF_SLIM = "TF-slim MobileNetV2 checkpoints table"
TORCHVISION = "torchvision 0.29.1 model card"

# Dataset each task's reported numbers are on (the cards that differ say so in ``dataset``).
IMAGENET = "ImageNet val"
COCO = "COCO"
VOC = "PASCAL VOC 2012 val"

# Headline metric -> its column title (the per-task facts table says which metric a task reports).
METRIC_LABELS = {facts.metric: facts.metric_label for facts in TASK_FACTS.values()}


def number(printed: str | None) -> float | None:
    """``"4.2M"`` -> 4.2e6, ``"0.8B"`` -> 8e8, ``"72.0"`` -> 72.0, ``None`` -> None."""
    if printed is None:
        return None
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}.get(printed[-1], 1.0)
    return float(printed[:-1] if scale != 1.0 else printed) * scale


@dataclass(frozen=True)
class SuiteModel:
    """The suite's build of a reported network: the config (and ``bench profile`` flags) that count it."""

    task: str
    backbone: str
    resolution: int
    width: float | None = None
    # The task's own config values, e.g. (("output_stride", 16), ("aspp", False)).
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def flags(self) -> tuple[str, ...]:
        """``options`` as `bench profile` flags: ("--output-stride", "16", "--no-aspp")."""
        words: list[str] = []
        for key, value in self.options:
            flag = key.replace("_", "-")
            if isinstance(value, bool):
                words.append(f"--{flag}" if value else f"--no-{flag}")
            else:
                words += [f"--{flag}", str(value)]
        return tuple(words)

    @property
    def key(self) -> str:
        """Stable id: names the cached profile record and matches it to this row."""
        parts = [self.task, self.backbone]
        if self.width is not None:
            parts.append(f"w{self.width}")
        parts.append(f"r{self.resolution}")
        parts += [flag.lstrip("-") for flag in self.flags]
        return "-".join(parts)

    @property
    def label(self) -> str:
        width = f" {self.width}" if self.width is not None else ""
        options = f" {' '.join(self.flags)}" if self.flags else ""
        return f"{self.backbone}{width} @{self.resolution}{options}"

    def config(self, num_classes: int) -> dict[str, Any]:
        """The values ``resolve_config`` takes for this network."""
        return {"backbone": self.backbone, "resolution": self.resolution, "width": self.width,
                "num_classes": num_classes, **dict(self.options)}  # fmt: skip

    def profile_flags(self, num_classes: int) -> list[str]:
        """The same network as a `bench profile` command line (for messages and by hand)."""
        flags = ["--task", self.task, "--backbone", self.backbone, "--resolution", str(self.resolution)]
        if self.width is not None:
            flags += ["--width", str(self.width)]
        return [*flags, "--num-classes", str(num_classes), *self.flags]


@dataclass(frozen=True)
class Reported:
    """One row of a source table, values as printed there."""

    task: str
    model: str
    source: str  # "MobileNetV2 paper, Table 4"
    dataset: str
    value: str | None  # the task's headline metric (tasks.facts), percent
    params: str | None  # "4.2M"
    madds: str | None  # "575M", "0.8B"
    cpu_ms: str | None = None  # V2 paper: one Pixel 1 big core, TF-Lite
    suite: SuiteModel | None = None
    # "model" compares the whole network's counts; "head" the prediction layers alone (V2 Table 5).
    part: str = "model"
    # False where the reported MAdds are not one forward pass (multi-scale + flip evaluation).
    compare_madds: bool = True
    note: str = ""
    # A latency the source reports on its own device (``cpu_ms`` is the V2 paper's Pixel 1 column).
    device_ms: str | None = None
    device: str = ""  # "Pixel 4 CPU, TFLite fp32", "iPhone 12, Core ML"

    @property
    def metric(self) -> str:
        return TASK_FACTS[self.task].metric


def _cls(model, source, top1, params, madds, cpu=None, suite=None, dataset=IMAGENET, note="") -> Reported:
    return Reported("classification", model, source, dataset, top1, params, madds, cpu, suite, note=note)


def _mnv2(width: float, resolution: int) -> SuiteModel:
    return SuiteModel("classification", "mnv2", resolution, width)


def _mnv1(width: float, resolution: int) -> SuiteModel:
    return SuiteModel("classification", "mnv1", resolution, width)


# V2 paper, Table 4: ImageNet comparison; CPU = one Pixel 1 big core with TF-Lite.
V2_TABLE4 = "MobileNetV2 paper, Table 4"
CLASSIFICATION_V2 = [
    _cls("MobileNetV1", V2_TABLE4, "70.6", "4.2M", "575M", "113", _mnv1(1.0, 224)),
    _cls("ShuffleNet (1.5)", V2_TABLE4, "71.5", "3.4M", "292M"),
    _cls("ShuffleNet (x2)", V2_TABLE4, "73.7", "5.4M", "524M"),
    _cls("NasNet-A", V2_TABLE4, "74.0", "5.3M", "564M", "183"),
    _cls("MobileNetV2", V2_TABLE4, "72.0", "3.4M", "300M", "75", _mnv2(1.0, 224)),
    _cls("MobileNetV2 (1.4)", V2_TABLE4, "74.7", "6.9M", "585M", "143", _mnv2(1.4, 224)),
]

# V1 paper, Table 6 (width multiplier) and Table 7 (resolution multiplier); Table 8 compares
# 1.0 MobileNet-224 with GoogleNet and VGG 16, whose rows are not in the reference file.
CLASSIFICATION_V1 = [
    _cls("1.0 MobileNet-224", f"{V1_PAPER}, Table 6", "70.6", "4.2M", "569M", suite=_mnv1(1.0, 224)),
    _cls("0.75 MobileNet-224", f"{V1_PAPER}, Table 6", "68.4", "2.6M", "325M", suite=_mnv1(0.75, 224)),
    _cls("0.5 MobileNet-224", f"{V1_PAPER}, Table 6", "63.7", "1.3M", "149M", suite=_mnv1(0.5, 224)),
    _cls("0.25 MobileNet-224", f"{V1_PAPER}, Table 6", "50.6", "0.5M", "41M", suite=_mnv1(0.25, 224)),
    _cls("1.0 MobileNet-224", f"{V1_PAPER}, Table 7", "70.6", "4.2M", "569M", suite=_mnv1(1.0, 224)),
    _cls("1.0 MobileNet-192", f"{V1_PAPER}, Table 7", "69.1", "4.2M", "418M", suite=_mnv1(1.0, 192)),
    _cls("1.0 MobileNet-160", f"{V1_PAPER}, Table 7", "67.2", "4.2M", "290M", suite=_mnv1(1.0, 160)),
    _cls("1.0 MobileNet-128", f"{V1_PAPER}, Table 7", "64.4", "4.2M", "186M", suite=_mnv1(1.0, 128)),
    _cls("1.0 MobileNet-224", f"{V1_PAPER}, Table 8", "70.6", "4.2M", "569M", suite=_mnv1(1.0, 224)),
]

# TF-slim MobileNetV2 checkpoints: (width, params) then (resolution, MACs, top-1) per cell.
# Slim counts 1001 classes and no BatchNorm gamma, so its params differ slightly from the
# suite's (torchvision's) convention; the MACs are directly comparable.
_SLIM_CELLS: list[tuple[float, str, list[tuple[int, str, str]]]] = [
    (1.4, "6.06M", [(224, "582M", "75.0")]),
    (1.3, "5.34M", [(224, "509M", "74.4")]),
    (1.0, "3.47M", [(224, "300M", "71.8"), (192, "221M", "70.7"), (160, "154M", "68.8"), (128, "99M", "65.3"), (96, "56M", "60.3")]),
    (0.75, "2.61M", [(224, "209M", "69.8"), (192, "153M", "68.7"), (160, "107M", "66.4"), (128, "69M", "63.2"), (96, "39M", "58.8")]),
    (0.5, "1.95M", [(224, "97M", "65.4"), (192, "71M", "63.9"), (160, "50M", "61.0"), (128, "32M", "57.7"), (96, "18M", "51.2")]),
    (0.35, "1.66M", [(224, "59M", "60.3"), (192, "43M", "58.2"), (160, "30M", "55.7"), (128, "20M", "50.8"), (96, "11M", "45.5")]),
]  # fmt: skip
CLASSIFICATION_SLIM = [
    _cls(
        f"MobileNetV2 {width}-{resolution}",
        TF_SLIM,
        top1,
        params,
        macs,
        suite=_mnv2(width, resolution),
        note="slim params: 1001 classes, no BatchNorm gamma",
    )
    for width, params, cells in _SLIM_CELLS
    for resolution, macs, top1 in cells
]

CLASSIFICATION_TORCHVISION = [
    _cls("mobilenet_v2", f"{TORCHVISION}, MobileNet_V2_Weights.IMAGENET1K_V1", "71.878", "3.504872M", "301M",
         suite=SuiteModel("classification", "mnv2", 224, 1.0)),
    _cls("mobilenet_v3_large", f"{TORCHVISION}, MobileNet_V3_Large_Weights.IMAGENET1K_V1", "74.042", "5.483032M",
         "217M", suite=SuiteModel("classification", "mobilenet_v3_large", 224)),
    _cls("mobilenet_v3_small", f"{TORCHVISION}, MobileNet_V3_Small_Weights.IMAGENET1K_V1", "67.668", "2.542856M",
         "57M", suite=SuiteModel("classification", "mobilenet_v3_small", 224)),
]  # fmt: skip


# Modern baselines, built by the suite through timm (``--backbone timm:NAME``) and counted at the
# input size each row states (timm evaluates some at a larger size than they trained at; the row's
# resolution is the one its top-1 is for). Reparameterisable models are counted fused (as timed).
TIMM_RESULTS = "timm results/results-imagenet.csv (huggingface/pytorch-image-models aa4b585)"
TIMM_GMACS = "timm results/benchmark-infer-amp-nchw-pt240-cu124-rtx3090.csv (GMACs)"
EFFICIENTNET_LITE = "tensorflow/tpu models/official/efficientnet/lite/README.md"
REPVIT = "THU-MIG/RepViT README.md (300-epoch distilled)"
FASTVIT_COREML = "Apple's FastViT-T8 Core ML model card (copy: jflan-dd/coreml-FastViT-T8 README.md)"
GHOSTNET = "huawei-noah/Efficient-AI-Backbones readme.md (GhostNet 1.0x)"


def _timm(name: str, resolution: int) -> SuiteModel:
    return SuiteModel("classification", f"timm:{name}", resolution)


CLASSIFICATION_MODERN = [
    _cls("MobileNetV4-Conv-S (timm e2400_r224) @224", f"{TIMM_RESULTS}; {TIMM_GMACS}", "73.756", "3.77M", "0.19B",
         suite=_timm("mobilenetv4_conv_small", 224),
         note="counted 186M MAdds; the GMACs column prints two decimals (0.19 = 185-195M)"),
    Reported("classification", "EfficientNet-Lite0 @224", EFFICIENTNET_LITE, IMAGENET, "75.1", "4.7M", "407M",
             suite=_timm("efficientnet_lite0", 224), device_ms="12", device="Pixel 4 CPU, TFLite fp32",
             note="int8: 74.4 %, 6.5 ms on the Pixel 4 CPU; counted 385M MAdds (conv and linear "
                  "multiply-adds; the README's 407M is 5.7 % more, its counting rule is not stated)"),
    _cls("MobileOne-S0 (timm apple_in1k) @224", TIMM_RESULTS, "71.398", "5.29M", None, suite=_timm("mobileone_s0", 224),
         note="timm counts the training-time branches (5.29M); the suite counts the reparameterised "
              "network it times: 2.08M params, 275M MAdds"),
    Reported("classification", "RepViT-M0.9 @224", REPVIT, IMAGENET, "78.7", "5.1M", "0.8B",
             suite=_timm("repvit_m0_9", 224), device_ms="0.9", device="iPhone 12 (iOS 16), Core ML",
             note="counted fused (BatchNorms folded, the two heads merged): 5.07M, 816M"),
    Reported("classification", "FastViT-T8 (timm apple_in1k) @256", f"{TIMM_RESULTS}; {FASTVIT_COREML}", IMAGENET,
             "76.184", "3.6M", "0.7B", suite=_timm("fastvit_t8", 256), device_ms="0.79",
             device="iPhone 12 Pro Max (iOS 17.5), Core ML fp16, Neural Engine",
             note="params as Apple's card prints them; the suite counts timm's fastvit_t8 reparameterised at "
                  "3.92M (timm's training form 4.03M): 0.3M more, not explained here"),
    _cls("GhostNet 1.0x @224", f"{GHOSTNET}; {TIMM_RESULTS} (params)", "73.9", "5.18M", "141M",
         suite=_timm("ghostnet_100", 224), note="top-1 from the readme's 0.26066 top-1 error"),
    _cls("EfficientViT-B0 (timm r224_in1k) @224", f"{TIMM_RESULTS}; {TIMM_GMACS}", "71.408", "3.41M", "0.1B",
         suite=_timm("efficientvit_b0", 224), note="counted 100M MAdds"),
    _cls("PP-LCNet 1.0x (timm ra2_in1k) @224", f"{TIMM_RESULTS}; {TIMM_GMACS}", "72.130", "2.95M", "0.16B",
         suite=_timm("lcnet_100", 224), note="counted 156M MAdds"),
    _cls("MobileViTv2-0.5 (timm cvnets_in1k) @256", f"{TIMM_RESULTS}; {TIMM_GMACS}", "70.156", "1.37M", "0.48B",
         suite=_timm("mobilevitv2_050", 256),
         note="counted 465M MAdds (convs and matmuls); timm's GMACs column prints 3 % more"),
]  # fmt: skip


def _det(
    model, source, mAP, params, madds, cpu=None, suite=None, dataset=COCO, part="model", note=""
) -> Reported:
    return Reported("detection", model, source, dataset, mAP, params, madds, cpu, suite, part, note=note)


V2_TABLE5 = "MobileNetV2 paper, Table 5"
V2_TABLE6 = "MobileNetV2 paper, Table 6"
_SSDLITE_V2 = SuiteModel("detection", "mnv2", 320)
DETECTION = [
    _det("SSD300", V2_TABLE6, "23.2", "36.1M", "35.2B"),
    _det("SSD512", V2_TABLE6, "26.8", "36.1M", "99.5B"),
    _det("YOLOv2", V2_TABLE6, "21.6", "50.7M", "17.5B"),
    _det("MNet V1 + SSDLite", V2_TABLE6, "22.2", "5.1M", "1.3B", "270", SuiteModel("detection", "mnv1", 320)),
    _det("MNet V2 + SSDLite", V2_TABLE6, "22.1", "4.3M", "0.8B", "200", _SSDLITE_V2),
    # V1 paper, Table 13 (COCO): only the SSD300 + MobileNet row is in the reference file.
    _det("SSD300 + MobileNet", f"{V1_PAPER}, Table 13", "19.3", "6.8M", "1.2B"),
    # V2 paper, Table 5: the prediction layers alone on MobileNetV2, 80 classes (no mAP).
    _det("SSD prediction layers (MNet V2)", V2_TABLE5, None, "14.8M", "1.25B",
         suite=SuiteModel("detection", "mnv2", 320, options=(("head", "ssd"), ("predictor_kernel", 3))), part="head"),
    _det("SSDLite prediction layers (MNet V2)", V2_TABLE5, None, "2.1M", "0.35B", suite=_SSDLITE_V2, part="head"),
    _det("ssdlite320_mobilenet_v3_large", f"{TORCHVISION}, SSDLite320_MobileNet_V3_Large_Weights.COCO_V1", "21.3",
         "3.44006M", "0.583B", dataset="COCO val2017"),
    _det("ssd300_vgg16", f"{TORCHVISION}, SSD300_VGG16_Weights.COCO_V1", "25.1", "35.641826M", "34.858B",
         dataset="COCO val2017"),
]  # fmt: skip


V2_TABLE7 = "MobileNetV2 paper, Table 7"
_MF_NOTE = "MAdds of multi-scale + flipped evaluation (MF); only params compared"
COCO_VOC = "COCO val2017 subset, VOC classes"


def _seg(
    model, source, miou, params, madds, backbone=None, os=16, aspp=False, mf=False, dataset=VOC
) -> Reported:
    suite = None
    if backbone is not None:
        options = (("output_stride", os), ("aspp", aspp))
        suite = SuiteModel("segmentation", backbone, 513, options=options)
    return Reported("segmentation", model, source, dataset, miou, params, madds, suite=suite,
                    compare_madds=not mf, note=_MF_NOTE if mf and suite else "")  # fmt: skip


# V2 paper, Table 7 (PASCAL VOC 2012 val, 513x513 crops); MNet V2* = heads on the 320-channel map.
SEGMENTATION = [
    _seg("MNet V1, OS 16, ASPP", V2_TABLE7, "75.29", "11.15M", "14.25B", "mnv1", 16, aspp=True),
    _seg("MNet V1, OS 8, ASPP, MF", V2_TABLE7, "78.56", "11.15M", "941.9B", "mnv1", 8, aspp=True, mf=True),
    _seg("MNet V2*, OS 16, ASPP", V2_TABLE7, "75.70", "4.52M", "5.8B", "mnv2", 16, aspp=True),
    _seg("MNet V2*, OS 8, ASPP, MF", V2_TABLE7, "78.42", "4.52M", "387B", "mnv2", 8, aspp=True, mf=True),
    _seg("MNet V2*, OS 16", V2_TABLE7, "75.32", "2.11M", "2.75B", "mnv2", 16),
    _seg("MNet V2*, OS 8, MF", V2_TABLE7, "77.33", "2.11M", "152.6B", "mnv2", 8, mf=True),
    _seg("ResNet-101, OS 16, ASPP", V2_TABLE7, "80.49", "58.16M", "81.0B"),
    _seg("ResNet-101, OS 8, ASPP, MF", V2_TABLE7, "82.70", "58.16M", "4870.6B"),
    _seg("deeplabv3_mobilenet_v3_large", f"{TORCHVISION}, DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1",
         "60.3", "11.029328M", "10.452B", dataset=COCO_VOC),
    _seg("lraspp_mobilenet_v3_large", f"{TORCHVISION}, LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1",
         "57.9", "3.221538M", "2.086B", dataset=COCO_VOC),
    _seg("deeplabv3_resnet50", f"{TORCHVISION}, DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1", "66.4",
         "42.004074M", "178.722B", dataset=COCO_VOC),
]  # fmt: skip


@dataclass(frozen=True)
class Baselines:
    """All reported rows, grouped by task in reading order."""

    rows: tuple[Reported, ...] = field(
        default_factory=lambda: tuple(
            CLASSIFICATION_V2
            + CLASSIFICATION_V1
            + CLASSIFICATION_SLIM
            + CLASSIFICATION_TORCHVISION
            + CLASSIFICATION_MODERN
            + DETECTION
            + SEGMENTATION
        )  # fmt: skip
    )

    def for_task(self, task: str) -> list[Reported]:
        return [row for row in self.rows if row.task == task]

    def suite_models(self) -> list[SuiteModel]:
        """Distinct suite models to count, in first-seen order."""
        seen: dict[str, SuiteModel] = {}
        for row in self.rows:
            if row.suite is not None:
                seen.setdefault(row.suite.key, row.suite)
        return list(seen.values())


BASELINES = Baselines()
