"""The segmentation task definition ``bench`` uses: Mobile DeepLabv3 (V2 paper, section 6.3)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backbones.counting import count_madds, count_params
from tasks.base import BenchDataModule, BenchModule, Config, Task
from tasks.facts import TASK_FACTS
from tasks.segmentation.deeplabv3 import DeepLabV3, table7_row
from tasks.segmentation.inference import MF_SCALES, segment
from tasks.segmentation.options import DEFAULTS, SegmentationOptions


class SegmentationTask(Task):
    name = "segmentation"
    default_resolution = TASK_FACTS["segmentation"].default_resolution
    default_num_classes = TASK_FACTS["segmentation"].default_num_classes

    def defaults(self) -> Config:
        # The paper's on-device pick (V2 paper, Table 7): V2*, output stride 16, no ASPP, single scale.
        return {"output_stride": 16, **DEFAULTS.config_defaults()}

    def parse_options(self, cfg: Config) -> SegmentationOptions:
        """The segmentation settings of ``cfg``, checked once; the model, module and predictions take them."""
        return SegmentationOptions.from_config(cfg)

    def model_options(self, cfg: Config) -> dict[str, Any]:
        options = self.parse_options(cfg)
        return {"feature": options.feature, "aspp": options.aspp}

    def assemble(
        self, backbone, *, num_classes: int, feature: str = DEFAULTS.feature, aspp: bool = DEFAULTS.aspp
    ) -> nn.Module:
        tap = backbone.segmentation_tap if feature == "body" else "stride32"
        return DeepLabV3(backbone, num_classes, tap=tap, aspp=aspp)

    def profile(self, model: nn.Module, cfg: Config) -> dict[str, Any]:
        """Params and MAdds, split into backbone and head; Table 7's numbers beside them where the
        configuration is one of its rows; with eval scales/flip, the MAdds of the whole MF inference."""
        options = self.parse_options(cfg)
        result = super().profile(model, cfg)
        result["backbone_params"] = count_params(model.backbone)
        result["head_params"] = result["params"] - result["backbone_params"]
        spec = model.feature
        result["feature"] = f"{spec.name} ({spec.channels} ch, stride {spec.stride})"
        result["aspp_rates"] = list(model.head.rates)
        if options.eval_scales != (1.0,) or options.eval_flip:
            # Shapes alone decide the count: a copy on the meta device counts MF inference
            # (hundreds of GMAdds at 513, output stride 8) without computing it.
            meta = copy.deepcopy(model).to("meta")
            size = int(cfg["resolution"])
            total = sum(
                count_madds(meta, torch.empty(1, 3, round(size * s), round(size * s), device="meta"))
                for s in options.eval_scales
            )
            result["madds_eval"] = total * (2 if options.eval_flip else 1)
        default_shape = cfg.get("width") in (None, 1.0) and cfg.get("expansion") in (None, 6.0)
        mf = options.eval_scales == MF_SCALES and options.eval_flip
        row = table7_row(cfg["backbone"], options.feature, spec.stride, options.aspp, mf)
        if row and default_shape and cfg["resolution"] == 513 and cfg["num_classes"] == 21:
            madds_key = "paper_madds_eval" if mf else "paper_madds"
            result.update(
                {
                    "paper_params": round(row.params_m * 1e6),
                    madds_key: round(row.madds_b * 1e9),
                    "paper_miou": row.miou,
                }
            )
        return result

    def import_tflite(self, path: str, *, backbone: str | None = None, width: float | None = None):
        """TF DeepLab files (MobileNetV2, no ASPP): the suite's DeepLabV3 with the file's upsampling."""
        from tasks.segmentation.deeplabv3 import deeplab_for_tflite
        from tasks.tflite.importer import import_tflite

        return import_tflite(path, task=self.name, backbone=backbone, width=width, builder=deeplab_for_tflite)

    def tflite_class_names(self, cfg: Config) -> list[str]:
        from tasks.segmentation.labels import VOC_CLASSES

        return list(VOC_CLASSES)

    def evaluator(self):
        from tasks.segmentation.evaluate import segmentation_evaluator

        return segmentation_evaluator

    def build_datamodule(self, cfg: Config) -> BenchDataModule:
        from tasks.segmentation.voc import VocDataModule

        return VocDataModule.from_config(cfg)

    def build_module(self, cfg: Config, model: nn.Module) -> BenchModule:
        from tasks.segmentation.module import SegmentationModule

        return SegmentationModule.from_config(cfg, model, self.parse_options(cfg))

    @torch.no_grad()
    def evaluate_callable(self, forward, cfg: Config, max_images: int | None = None, *, decoder=None) -> dict[str, float]:
        """mIoU/pixel accuracy of ``forward`` on the validation split, for runtimes with a fixed input
        shape: each image is fitted into a resolution x resolution canvas (padded with the mean pixel
        and void labels, as DeepLab evaluates VOC at 513x513; larger images are shrunk to fit)."""
        from tasks.images import fit_canvas, fitted_size
        from tasks.segmentation.metrics import scores_from_confusion
        from tasks.segmentation.voc import VOID

        datamodule = self.build_datamodule(dict(cfg, num_workers=0))
        datamodule.prepare_data()
        datamodule.setup("validate")
        size, num_classes = int(cfg["resolution"]), datamodule.num_classes
        confusion = np.zeros((num_classes, num_classes), np.int64)
        seen = 0
        for index in range(len(datamodule.val_set)):
            item = datamodule.val_set[index]
            if item is None:
                continue
            image, mask = item
            canvas = fit_canvas(image, size)[None]
            if max(mask.shape) > size:
                new = fitted_size(*mask.shape, size)
                mask = F.interpolate(mask[None, None].float(), size=new, mode="nearest")[0, 0].long()
            height, width = mask.shape
            logits = torch.as_tensor(forward(canvas))[0, :, :height, :width]
            predicted = logits.argmax(0).flatten().numpy()
            truth = mask.flatten().numpy()
            keep = truth != VOID
            confusion += np.bincount(
                truth[keep] * num_classes + predicted[keep], minlength=num_classes * num_classes
            ).reshape(num_classes, num_classes)
            seen += 1
            if max_images is not None and seen >= max_images:
                break
        scores = scores_from_confusion(confusion, datamodule.class_names())
        return {"miou": scores["miou"], "pixel_acc": scores["pixel_acc"], "images": seen}

    @torch.no_grad()
    def predict(self, checkpoint: str, images: list[str], out_dir: str, given: dict[str, Any]) -> list[str]:
        """Write each image with its predicted classes painted in VOC colours (``<stem>_seg.png``)
        and the class-index mask as a VOC palette PNG (``<stem>_mask.png``)."""
        from tasks.images import load_rgb
        from tasks.loading import load_file
        from tasks.segmentation.drawing import overlay, palette_image
        from tasks.segmentation.voc import eval_transform

        loaded = load_file(self, checkpoint)
        cfg, model = dict(loaded.config), loaded.model
        # Evaluation flags given to predict override the ones the run used.
        chosen = {k: given[k] for k in ("eval_scales", "eval_flip") if given.get(k) is not None}
        options = self.parse_options({**cfg, **chosen})
        names = list(cfg.get("class_names") or [])
        transform = eval_transform(cfg.get("preset") or "torchvision")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for path in images:
            pixels = load_rgb(path)
            inputs = transform(image=pixels)["image"][None]
            labels = segment(model, inputs, options.eval_scales, options.eval_flip).argmax(1)[0].numpy()
            stem = out / Path(path).stem
            overlay(pixels, labels, names).save(f"{stem}_seg.png")
            palette_image(labels).save(f"{stem}_mask.png")
            written += [f"{stem}_seg.png", f"{stem}_mask.png"]
        return written
