"""The detection task definition ``bench`` uses: SSDLite (V2 paper, section 6.2) on COCO."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from backbones.counting import count_madds, count_params
from backbones.errors import UserError
from tasks.base import BenchDataModule, BenchModule, Config, Task
from tasks.detection.decoder import DetectionDecoder
from tasks.detection.options import DEFAULTS, HEADS, PREDICT_SCORE_THRESHOLD, DetectionOptions
from tasks.detection.postprocess import label_category_ids
from tasks.detection.ssdlite import SSDLite
from tasks.facts import TASK_FACTS


class DetectionTask(Task):
    name = "detection"
    default_resolution = TASK_FACTS["detection"].default_resolution
    default_num_classes = TASK_FACTS["detection"].default_num_classes

    def defaults(self) -> Config:
        """The task's keys of a run config with ``DetectionOptions``' defaults (the one place they live)."""
        return DEFAULTS.config_defaults()

    # -- the network ----------------------------------------------------------------------------
    def parse_options(self, cfg: Config) -> DetectionOptions:
        """The detection settings of ``cfg``, checked once; every part of the task takes this object."""
        options = DetectionOptions.from_config(cfg)
        if options.label_map == "coco90" and cfg.get("num_classes") is not None and int(cfg["num_classes"]) != 90:
            raise UserError(f"--label-map coco90 needs --num-classes 90, got {cfg['num_classes']}")
        return options

    def model_options(self, cfg: Config) -> dict[str, Any]:
        # The extra layers follow the backbone's width (TF's depth multiplier) unless --head-width says.
        options = self.parse_options(cfg)
        return {"head": options.head, "predictor_kernel": options.predictor_kernel,
                "head_width": options.head_width or cfg.get("width")}

    def assemble(
        self, backbone, *, num_classes: int, head: str | None = None, predictor_kernel: int | None = None,
        head_width: float | None = None,
    ) -> SSDLite:
        head = head or DEFAULTS.head
        if head not in HEADS:
            raise UserError(f"--head: unknown value {head!r}; choose from {', '.join(HEADS)}")
        return SSDLite(backbone, num_classes, head=head, width=head_width or 1.0,
                       predictor_kernel=predictor_kernel or DEFAULTS.predictor_kernel)

    def profile(self, model: nn.Module, cfg: Config) -> dict[str, Any]:
        """The whole detector, and its own layers alone (extras + predictors: the paper's Table 5)."""
        example = self.example_input(cfg)
        total = count_madds(model, example)
        backbone = count_madds(model.backbone, example)
        layers = model.prediction_layers()
        return {
            "params": count_params(model),
            "madds": total,
            "head": self.parse_options(cfg).head,
            "head_params": count_params(layers),
            "head_madds": total - backbone,
            "backbone_params": count_params(model.backbone),
            "backbone_madds": backbone,
            "anchors": int(model.anchors(tuple(example.shape[-2:])).shape[0]),
            "feature_maps": [list(size) for size in model.feature_sizes(tuple(example.shape[-2:]))],
        }

    has_decoder = True

    def decoder(self, model: nn.Module, cfg: Config) -> DetectionDecoder:
        """The model's own anchors and the config's post-processing (an imported file's op by default)."""
        return DetectionDecoder.for_model(model, self.parse_options(cfg))

    # -- data and training ----------------------------------------------------------------------
    def tflite_class_names(self, cfg: Config) -> list[str]:
        """COCO's names by category id (torchvision's list); TF's 90-id label i is category i + 1."""
        from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

        names = FasterRCNN_ResNet50_FPN_Weights.DEFAULT.meta["categories"]
        return list(names[1:]) if self.parse_options(cfg).label_map == "coco90" else []

    def evaluator(self):
        from tasks.detection.bootstrap import detection_evaluator

        return detection_evaluator

    def import_tflite(self, path: str, *, backbone: str | None = None, width: float | None = None):
        """TF Object Detection API SSD files: the suite's SSD with TF's head (tasks/tflite/detection.py)."""
        from tasks.tflite.detection import import_ssd
        from tasks.tflite.facts import checked_facts, read_tflite

        graph = read_tflite(path)
        return import_ssd(graph, checked_facts(graph, self.name), ssd_class=SSDLite, backbone=backbone, width=width)

    def tflite_file_config(self, path: str, *, backbone: str | None = None, width: float | None = None):
        from tasks.tflite.detection import ssd_file_config
        from tasks.tflite.facts import checked_facts, read_tflite

        graph = read_tflite(path)
        return ssd_file_config(graph, checked_facts(graph, self.name), backbone=backbone, width=width)

    def build_datamodule(self, cfg: Config) -> BenchDataModule:
        from tasks.detection.coco import CocoDataModule

        # Checked before any data is read or generated; the datamodule carries them to the evaluator.
        return CocoDataModule.from_config(cfg, self.parse_options(cfg))

    def build_module(self, cfg: Config, model: nn.Module) -> BenchModule:
        from tasks.detection.module import DetectionModule

        return DetectionModule.from_config(cfg, model, self.parse_options(cfg))

    @torch.no_grad()
    def evaluate_callable(
        self, forward, cfg: Config, max_images: int | None = None, *, decoder: DetectionDecoder | None = None
    ) -> dict[str, float]:
        """COCO numbers (percent) of ``forward`` (images -> raw outputs) on the validation split,
        decoded by ``decoder`` (the evaluated model's own: ``self.decoder(model, cfg)``)."""
        if decoder is None:
            raise ValueError("detection needs the evaluated model's decoder (Task.decoder(model, cfg))")
        from tasks.detection.evaluation import CocoEvaluator
        from tasks.detection.module import to_original_size

        datamodule = self.build_datamodule(dict(cfg, num_workers=0))
        datamodule.prepare_data()
        datamodule.setup("validate")
        label_map = datamodule.options.label_map
        evaluator = CocoEvaluator(datamodule.val_ground_truth(), label_category_ids(label_map, datamodule.category_ids()))
        seen = 0
        for batch in datamodule.val_dataloader():
            if batch is None:
                continue
            images = batch["images"]
            detections = decoder(forward(images), tuple(images.shape[-2:]))
            evaluator.update(batch["image_ids"].tolist(),
                             to_original_size(detections, tuple(images.shape[-2:]), batch["orig_sizes"]))
            seen += len(images)
            if max_images is not None and seen >= max_images:
                break
        return evaluator.compute()

    @torch.no_grad()
    def predict(self, checkpoint: str, images: list[str], out_dir: str, given: dict[str, Any]) -> list[str]:
        """Write each image with its detections (boxes, class names, scores) drawn on it."""
        from pathlib import Path

        from tasks.images import load_rgb
        from tasks.loading import load_file

        loaded = load_file(self, checkpoint)
        cfg, model = loaded.config, loaded.model
        threshold = given.get("score_threshold")
        overrides = {key: given[key] for key in ("nms_iou", "max_detections", "nms") if given.get(key) is not None}
        # The checkpoint's (or file's) settings, the flags given over them; checked once, here.
        options = replace(self.parse_options(cfg), **overrides,
                          score_threshold=PREDICT_SCORE_THRESHOLD if threshold is None else threshold)
        decoder = DetectionDecoder.for_model(model, options)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for path in images:
            picture = self._picture(model, decoder, cfg, load_rgb(path))
            target = out / f"{Path(path).stem}_pred.png"
            picture.save(target)
            written.append(str(target))
        return written

    @torch.no_grad()
    def draw_validation(self, checkpoint: str, out_dir: str, count: int = 4) -> list[str]:
        """The first ``count`` validation images with objects, predicted boxes (score >= 0.5) and
        true boxes (white) drawn: what a trained run detects, to look at (``bench run`` ends with it)."""
        from pathlib import Path

        from tasks.detection.coco import load_split
        from tasks.detection.drawing import draw_truth
        from tasks.images import load_rgb
        from tasks.loading import load_file

        loaded = load_file(self, checkpoint)
        cfg, model = loaded.config, loaded.model
        decoder = DetectionDecoder.for_model(model, replace(self.parse_options(cfg), score_threshold=PREDICT_SCORE_THRESHOLD))
        datamodule = self.build_datamodule(dict(cfg, num_workers=0))
        records = [r for r in load_split(datamodule.dataset_root(), "val").images if len(r.boxes)][:count]
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        names = cfg.get("class_names") or []
        written = []
        for record in records:
            picture = draw_truth(self._picture(model, decoder, cfg, load_rgb(record.path)), record.boxes, record.labels,
                                 names)
            target = out / f"{Path(record.path).stem}_pred_and_true.png"
            picture.save(target)
            written.append(str(target))
        return written

    def _picture(self, model: nn.Module, decoder: DetectionDecoder, cfg: Config, pixels) -> Any:
        """``pixels`` (HxWx3 uint8) with ``model``'s detections (by ``decoder``) drawn, in its own pixels;
        ``cfg`` gives the input size, preset and class names."""
        from tasks.detection.augment import eval_transform
        from tasks.detection.drawing import draw_detections
        from tasks.detection.module import to_original_size

        transform = eval_transform(cfg["resolution"], cfg.get("preset") or "torchvision")
        tensor = transform(image=pixels)["image"][None]
        detections = decoder(model(tensor), tuple(tensor.shape[-2:]))
        detection = to_original_size(detections, tuple(tensor.shape[-2:]), torch.tensor([pixels.shape[:2]]))[0]
        return draw_detections(pixels, detection["boxes"].numpy(), detection["labels"].numpy(),
                               detection["scores"].numpy(), cfg.get("class_names") or [])
