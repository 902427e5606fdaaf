"""``bench run``: train and evaluate a task on a backbone, write a result record."""

from __future__ import annotations

import argparse
import sys

from benchmark.cli.arguments import add_model_arguments, add_task_argument, config_values


def add_parser(sub, task_name: str) -> None:
    parser = sub.add_parser("run", help="train + evaluate, write <output>/result.json")
    add_task_argument(parser, task_name)
    add_model_arguments(parser)
    add = parser.add_argument
    add("--data", help="dataset root, or 'synthetic' for the embedded default (default)")
    add("--pretrained", choices=["torchvision", "timm", "none"], help="start from torchvision's or timm's ImageNet weights")
    add("--max-epochs", type=int)
    add("--max-steps", type=int, help="stop after this many optimizer steps (-1: no limit)")
    add("--batch-size", type=int, help="per-device batch size")
    add("--num-workers", type=int, help="DataLoader workers per device")
    add("--threads", type=int, help="PyTorch intra-op threads of the training process (default: torch's, one per core)")
    add("--channels-last", action="store_true", default=None,
        help="train with NHWC (channels-last) tensors: depthwise convolutions run about 1.5x faster per step on CPU")
    add("--val-every-n-epochs", type=int, help="validate every N epochs while training (default 1; the run "
        "always ends with a validation of the final weights)")
    add("--lr", type=float, help="initial learning rate")
    add("--optimizer", help="rmsprop (the paper's), sgd (torchvision's), adamw")
    add("--schedule", help="exponential (x0.98/epoch), step (StepLR(1, 0.98)), cosine, poly (DeepLab's, power 0.9), constant")
    add("--weight-decay", type=float)
    add("--warmup-epochs", type=float)
    add("--label-smoothing", type=float)
    add("--ema-decay", type=float, help="keep an EMA of the weights and evaluate it (e.g. 0.9999)")
    add("--seed", type=int)
    add("--devices", help="devices per node (int, list or 'auto')")
    add("--accelerator", help="cpu, gpu, auto")
    add("--strategy", help="auto, ddp, ddp_spawn, fsdp, ...")
    add("--num-nodes", type=int)
    add("--precision", help="32-true, 16-mixed, bf16-mixed")
    add("--logger", help="wandb (default; offline when not logged in), csv, tensorboard, none")
    add("--wandb-project", help="W&B project name")
    add("--output", help="run folder (default runs/<task>-<backbone>-<time>)")
    add("--resume", action="store_true", default=None, help="continue from <output>/checkpoints/last.ckpt")
    add("--on-bad-sample", choices=["error", "skip"], help="unreadable images: stop (default) or skip with a warning")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    given = config_values(args)  # checked before the heavy imports
    from benchmark.runs.config import resolve_config
    from benchmark.runs.summary import print_summary
    from benchmark.runs.training import Preempted
    from benchmark.runs.training import run as run_training
    from tasks import get_task

    task = get_task(args.task)
    if isinstance(given.get("devices"), str) and given["devices"].isdigit():
        given["devices"] = int(given["devices"])
    cfg = resolve_config(task, given, recipe=args.config)
    try:
        trained = run_training(cfg, num_classes_given=args.num_classes is not None)
    except Preempted as stop:
        print(f"bench run: {stop}", file=sys.stderr)
        return 143  # 128 + SIGTERM, what schedulers expect of a pre-empted job
    if _is_rank_zero():
        print_summary(trained.record)
        print(f"result record: {cfg['output']}/result.json", file=sys.stderr)
        _draw_validation(task, cfg)
        if trained.wandb_offline_dir:
            print(f"W&B ran offline; upload later with: wandb sync {trained.wandb_offline_dir}", file=sys.stderr)
    return 0


def _is_rank_zero() -> bool:
    import os

    # Lightning's launcher sets LOCAL_RANK/NODE_RANK; under srun each task gets SLURM_PROCID instead.
    ranks = ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(int(os.environ.get(name, "0")) == 0 for name in ranks)


def _draw_validation(task, cfg: dict) -> None:
    """A few validation images with the trained model's predicted and true boxes, for the eye."""
    from pathlib import Path

    checkpoint = Path(cfg["output"]) / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        return
    pictures = task.draw_validation(str(checkpoint), str(Path(cfg["output"]) / "validation-pictures"))
    if pictures:
        print(f"{len(pictures)} validation images with predicted (coloured, score >= 0.5) and true (white) boxes: "
              f"{Path(pictures[0]).parent}", file=sys.stderr)
