"""Benchmark: training throughput of the Lightning task vs a plain PyTorch loop (same model, data, batch).

    python -m benchmarks.training_throughput [--backbone mnv2] [--steps 40] [--warmup 5] [--batch-size 32] [--rounds 4]

Both loops run in this one process, alternately, on the embedded synthetic data; the ratio
Lightning / plain images-per-second is printed (the goal is >= 0.95): of the best rounds, and the
median and spread of the per-round ratios (the machine may be shared; the spread says how much).
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
import torch.nn.functional as F

from backbones.classifier import ImageClassifier
from tasks.classification.data import ImageNetDataModule
from tasks.classification.module import ClassificationModule
from tasks.factory import backbone_from_config


class _StepClock(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.images = warmup, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            self.images += len(batch[1])
            self.end = time.perf_counter()


def make_model(backbone: str, num_classes: int) -> ImageClassifier:
    torch.manual_seed(0)
    return ImageClassifier(backbone_from_config({"backbone": backbone}), num_classes)


def plain_loop(dm: ImageNetDataModule, backbone: str, steps: int, warmup: int) -> float:
    model = make_model(backbone, dm.num_classes).train()
    # The optimizer BenchModule configures (so only the loop differs): SGD with momentum, weight decay
    # on weights but not on biases and norm parameters, a per-step (constant) lr schedule.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": 4e-5}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    images_seen, start = 0, 0.0
    for index, (images, labels) in enumerate(dm.train_dataloader()):
        if index == warmup:
            start = time.perf_counter()
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if index >= warmup:
            images_seen += len(labels)
        if index + 1 >= steps:
            break
    return images_seen / (time.perf_counter() - start)


def lightning_loop(dm: ImageNetDataModule, backbone: str, steps: int, warmup: int) -> float:
    module = ClassificationModule(make_model(backbone, dm.num_classes), dm.num_classes, optimizer="sgd", lr=0.01,
                                  schedule="constant")
    clock = _StepClock(warmup)
    trainer = L.Trainer(max_steps=steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock], accelerator="cpu")
    trainer.fit(module, train_dataloaders=dm.train_dataloader())
    return clock.images / (clock.end - clock.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mnv2")
    parser.add_argument("--resolution", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=2)
    args = parser.parse_args()
    dm = ImageNetDataModule(None, resolution=args.resolution, batch_size=args.batch_size, num_workers=args.num_workers)
    dm.prepare_data()
    dm.setup("fit")
    plain, lightning = [], []
    for index in range(args.rounds):
        # Alternate which loop goes first, so a slow start or drifting load on a shared machine does
        # not always fall on the same one; each round's ratio compares two neighbouring measurements.
        first, second = (plain_loop, lightning_loop) if index % 2 == 0 else (lightning_loop, plain_loop)
        results = {first: first(dm, args.backbone, args.steps, args.warmup)}
        results[second] = second(dm, args.backbone, args.steps, args.warmup)
        plain.append(results[plain_loop])
        lightning.append(results[lightning_loop])
    ratios = sorted(li / p for p, li in zip(plain, lightning, strict=True))
    print(f"model {args.backbone} @ {args.resolution}px, batch {args.batch_size}, {args.steps - args.warmup} timed steps, "
          f"{args.rounds} rounds, synthetic data, {args.num_workers} workers, {torch.get_num_threads()} threads")
    print(f"plain PyTorch loop : best {max(plain):8.1f} images/s  (rounds: {', '.join(f'{v:.1f}' for v in plain)})")
    print(f"Lightning task     : best {max(lightning):8.1f} images/s  (rounds: {', '.join(f'{v:.1f}' for v in lightning)})")
    print(f"ratio Lightning / plain: best-of {max(lightning) / max(plain):.3f}, per round median "
          f"{statistics.median(ratios):.3f} (min {ratios[0]:.3f}, max {ratios[-1]:.3f})")


if __name__ == "__main__":
    main()
