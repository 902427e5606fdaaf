"""The training recipes' optimizers and learning-rate schedules (torch-free until an optimizer is made:
the run config checks its choices against these lists before anything heavy is imported).

Recipes (V2 paper section 6.1; torchvision's reference): ``rmsprop`` with decay 0.9, momentum 0.9
and ``exponential`` lr x0.98 per epoch is the paper's; ``sgd`` with momentum 0.9 and ``step``
StepLR(1, 0.98) is torchvision's reproduction; ``cosine`` adds a linear warm-up.
"""

from __future__ import annotations

import math
from typing import Any

OPTIMIZERS = ("rmsprop", "sgd", "adamw")
SCHEDULES = ("exponential", "step", "cosine", "poly", "constant")


def lr_factor(
    step: int, schedule: str, *, warmup: int, total: int, steps_per_epoch: int, decay_rate: float = 0.98
) -> float:
    """The learning rate at optimizer step ``step`` as a fraction of the initial one."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "poly":  # DeepLab's: (1 - step / total) ** 0.9
        return (1.0 - progress) ** 0.9
    if schedule == "exponential":  # smooth per-step decay reaching x0.98 per epoch
        return decay_rate ** (step / steps_per_epoch)
    if schedule == "step":  # StepLR(step_size=1 epoch, gamma=0.98)
        return decay_rate ** (step // steps_per_epoch)
    return 1.0


def make_optimizer(name: str, groups: list[dict[str, Any]], *, lr: float, momentum: float) -> Any:
    """The optimizer ``name`` (one of ``OPTIMIZERS``) over parameter ``groups``."""
    import torch

    if name == "rmsprop":
        # TF's RMSProp (timm's RMSpropTF): decay 0.9, momentum 0.9, epsilon 1.0 inside the square
        # root, mean square started at 1, lr inside the momentum (TF-slim's and the OD API's defaults).
        from timm.optim import RMSpropTF

        return RMSpropTF(groups, lr=lr, alpha=0.9, momentum=momentum, eps=1.0)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=False)
    # fused: one kernel for all tensors (CPU and GPU), a tenth of a CPU demo step less than the loop.
    return torch.optim.AdamW(groups, lr=lr, fused=True)
