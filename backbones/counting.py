"""Parameter and multiply-add counts (torchvision's conventions)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """All trainable parameters, BatchNorm affine included (torchvision's ``num_params``).

    A part that runs a reparameterised copy in eval mode (timm's MobileOne, RepViT, FastViT: a
    ``TimmPart`` with ``reparameterize`` set) counts as that copy, the network its papers report and
    the runtimes time, not its multi-branch training form.
    """
    total = _trainable(model)
    for module in model.modules():
        if getattr(module, "reparameterize", False) is True and hasattr(module, "inference_module"):
            total += sum(p.numel() for p in module.inference_module().parameters()) - _trainable(module)
    return total


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def count_madds(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """Multiply-adds of one forward pass: ``torch.utils.flop_counter`` FLOPs / 2.

    The counter counts 2 FLOPs per multiply-accumulate of conv and matmul, and nothing for
    BatchNorm, activations or pooling, which is the convention of the papers' MAdds columns.
    """
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(*example) if isinstance(example, tuple) else model(example)
    model.train(was_training)
    return counter.get_total_flops() // 2
