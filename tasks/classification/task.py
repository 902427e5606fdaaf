"""The classification task definition ``bench`` uses."""

from __future__ import annotations

import torch
from torch import nn

from backbones.classifier import ImageClassifier
from tasks.base import BenchDataModule, BenchModule, Config, Task
from tasks.classification.options import ClassificationOptions
from tasks.facts import TASK_FACTS


class ClassificationTask(Task):
    name = "classification"
    default_resolution = TASK_FACTS["classification"].default_resolution
    default_num_classes = TASK_FACTS["classification"].default_num_classes
    is_classifier = True

    def assemble(self, backbone, *, num_classes: int, **options) -> nn.Module:
        return ImageClassifier(backbone, num_classes)

    def parse_options(self, cfg: Config) -> ClassificationOptions:
        """The classification settings of ``cfg``, checked once; the datamodule takes them."""
        return ClassificationOptions.from_config(cfg)

    def evaluate_callable(self, forward, cfg: Config, max_images: int | None = None, *, decoder=None) -> dict[str, float]:
        """Top-1/top-5 of ``forward`` on the validation split; also returns the predicted labels."""
        datamodule = self.build_datamodule(dict(cfg, num_workers=0))
        datamodule.prepare_data()
        datamodule.setup("validate")
        correct1 = correct5 = seen = 0
        predictions: list[int] = []
        for batch in datamodule.val_dataloader():
            if batch is None:
                continue
            images, labels = batch
            logits = torch.as_tensor(forward(images))
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            correct1 += int((top[:, 0] == labels).sum())
            correct5 += int((top == labels[:, None]).any(1).sum())
            predictions.extend(top[:, 0].tolist())
            seen += len(labels)
            if max_images is not None and seen >= max_images:
                break
        return {"top1": 100.0 * correct1 / max(1, seen), "top5": 100.0 * correct5 / max(1, seen), "images": seen,
                "predictions": predictions}

    @torch.no_grad()
    def predict(self, checkpoint: str, images: list[str], out_dir: str, given: dict) -> list[str]:
        """Write each image with its top-3 classes and probabilities drawn on it."""
        from pathlib import Path

        from PIL import Image, ImageDraw

        from tasks.classification.data import eval_transform
        from tasks.images import load_rgb
        from tasks.loading import load_file

        loaded = load_file(self, checkpoint)
        cfg, model = dict(loaded.config), loaded.model
        names = cfg.get("class_names") or []
        transform = eval_transform(cfg["resolution"], cfg.get("preset") or "torchvision")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for path in images:
            pixels = load_rgb(path)
            probs = model(transform(image=pixels)["image"][None]).softmax(1)[0]
            top = probs.topk(min(3, len(probs)))
            picture = Image.fromarray(pixels)
            draw = ImageDraw.Draw(picture)
            for row, (p, i) in enumerate(zip(top.values.tolist(), top.indices.tolist(), strict=True)):
                label = names[i] if i < len(names) else str(i)
                draw.text((4, 4 + 12 * row), f"{label} {100 * p:.1f}%", fill=(255, 255, 0))
            target = out / f"{Path(path).stem}_pred.png"
            picture.save(target)
            written.append(str(target))
        return written

    def tflite_class_names(self, cfg: Config) -> list[str]:
        """ImageNet's wnids in class-index order (the ILSVRC-2012 list shipped with the package)."""
        from tasks.classification.data import imagenet_wnids

        return imagenet_wnids()

    def evaluator(self):
        from tasks.classification.evaluate import classification_evaluator

        return classification_evaluator

    def build_datamodule(self, cfg: Config) -> BenchDataModule:
        from tasks.classification.data import ImageNetDataModule

        return ImageNetDataModule.from_config(cfg, self.parse_options(cfg))

    def build_module(self, cfg: Config, model: nn.Module) -> BenchModule:
        from tasks.classification.module import ClassificationModule

        return ClassificationModule.from_config(cfg, model)
