"""What every runtime is: a ``Runtime`` turns an eager model into a ``Prepared`` timed callable.

``RUNTIMES`` maps a name (``bench latency --runtime``) to a ``Runtime``. ``prepare(model, example)``
does the runtime's one-off work (export, quantization, compilation, loading; timed as init) and
returns a ``Prepared``: callable on a CPU fp32 NCHW batch, returning outputs as CPU torch tensors
shaped like eager's, plus ``bind(x)``, the zero-argument call the latency loop times (input already
converted and placed, output left where the runtime puts it).
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from backbones.errors import UserError


@dataclass
class Prepared:
    forward: Callable[[torch.Tensor], Any]
    bind: Callable[[torch.Tensor], Callable[[], Any]]
    device: str = "cpu"
    # Set when the runtime only accepts the batch size it was prepared for.
    static_batch: int | None = None
    # Duration of one call in seconds; None: wall clock.
    timer: Callable[[Callable[[], Any]], float] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # Objects the callables need alive (ExecuTorch reads its program buffer in place).
    keep_alive: Any = None

    def __call__(self, x: torch.Tensor) -> Any:
        return self.forward(x)


class Runtime(ABC):
    name: str
    description: str
    precision: str = "fp32"
    layout: str = "NCHW"
    # Runs on the task's calibration images during prepare (static quantization).
    needs_calibration: bool = False
    # Eager fp32 itself: the accuracy gate's reference.
    is_reference: bool = False
    # The deployable file it runs (``bench export --format``), or None for in-process runtimes.
    export_format: str | None = None
    # Where it can run: this host, and, with a deployable file, an ssh board or an adb phone.
    targets: tuple[str, ...] = ("host",)

    def unavailable_reason(self) -> str | None:
        """Why this runtime cannot run here (a missing package, no GPU), or None."""
        return None

    def check_available(self) -> None:
        reason = self.unavailable_reason()
        if reason:
            raise UserError(f"--runtime {self.name}: {reason}")

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def prepare(
        self, model: nn.Module, example: torch.Tensor, *, threads: int = 1, calibration: Sequence[torch.Tensor] = ()
    ) -> Prepared: ...


def missing_package(module: str, install: str) -> str | None:
    try:
        importlib.import_module(module)
    except ImportError as error:
        return f"needs the {install.split()[0]} package, which is not installed ({error.msg}); install it with: pip install {install}"
    return None


def to_cpu(outputs: Any) -> Any:
    return pytree.tree_map(lambda t: t.detach().float().cpu() if isinstance(t, torch.Tensor) else t, outputs)


class FlatOutputs(nn.Module):
    """The model with its outputs flattened to a tuple (export formats take tensors, not dicts)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(pytree.tree_leaves(self.model(x)))


@torch.no_grad()
def output_spec(model: nn.Module, example: torch.Tensor) -> pytree.TreeSpec:
    """The structure of eager's outputs, to rebuild it from an exported model's flat outputs."""
    return pytree.tree_flatten(model(example))[1]


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm that directly follows a conv in a Sequential folded
    into that conv's weights (what deployment converters do; eval-mode statistics)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = module._modules[first], module._modules[second]
            # Exactly BatchNorm2d: timm's BatchNormAct2d subclasses it and carries an activation to keep.
            if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
    return model

