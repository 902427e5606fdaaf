"""The MobileNetV2 paper's Table 3: the largest tensor that must be materialized (16-bit values).

Table 3 of the MobileNetV2 paper lists, per spatial resolution, the largest tensor that must
be materialized (16-bit values) and the maximum over the network: 1600K for MobileNetV1 and
400K for MobileNetV2 at 224. What is materialized: every layer output of V1 (Table 1 lists the
depthwise and pointwise convs as separate layers); for V2 the bottleneck tensors only, i.e. block
outputs, since the expanded tensor inside a block can be streamed (V2 paper, section 5.1), and the
first conv is fused into the first bottleneck ("for the first layer of MobileNetV2 ... we can
employ the trick described in Section 5", Table 3 caption). The tensors are found by running the
backbone with forward hooks, so they follow the built network (width, resolution, output stride).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from backbones.errors import UserError
from backbones.features import Backbone

BYTES_PER_VALUE = 2  # Table 3: "We assume 16-bit floats for activations"
KB = 1000  # the paper's K: 64 x 112 x 112 x 2 bytes = 1,605,632 bytes is its "1600K"

# MobileNetV2 paper, Table 3: size -> (max channels, memory in Kb), and the network maximum.
PAPER_TABLE3: dict[str, dict[str, Any]] = {
    "mnv1": {"rows": {112: (64, 1600), 56: (128, 800), 28: (256, 400), 14: (512, 200), 7: (1024, 199), 1: (1024, 2)}, "max_kb": 1600},
    "mnv2": {"rows": {112: (16, 400), 56: (32, 200), 28: (64, 100), 14: (160, 62), 7: (320, 32), 1: (1280, 2)}, "max_kb": 400},
}


@dataclass(frozen=True)
class Materialized:
    """One tensor that must be materialized: the output of ``layer``, and what it was computed from."""

    layer: str
    channels: int
    size: int  # spatial side (square inputs)
    input_bytes: int

    @property
    def bytes(self) -> int:
        return self.channels * self.size * self.size * BYTES_PER_VALUE


@dataclass(frozen=True)
class Table3Row:
    size: int
    max_channels: int
    kb: float


@dataclass(frozen=True)
class Table3:
    backbone: str
    resolution: int
    rows: tuple[Table3Row, ...]
    max_kb: float
    # A stricter count the paper does not make: a layer's input and output alive together.
    max_input_plus_output_kb: float
    max_input_plus_output_layer: str
    tensors: tuple[Materialized, ...]


def _layers(backbone: Backbone) -> list[tuple[str, torch.nn.Module]]:
    """Modules whose output has the shape of a tensor Table 3 counts as materialized, in order."""
    from backbones.mobilenet_v1 import MobileNetV1
    from backbones.mobilenet_v2 import MobileNetV2

    if isinstance(backbone, MobileNetV2):
        # A block's output has its projection's shape (the residual add keeps it). The projection is
        # hooked, not the block: the SSDLite tap calls ``forward_with_expansion``, which skips block hooks.
        # The stem's output is internal to the first (fused) bottleneck; expansions are streamed.
        blocks = [(f"block{i + 1}", block.project) for i, block in enumerate(backbone.blocks)]
        return [*blocks, ("last_conv", backbone.last_conv)]
    if isinstance(backbone, MobileNetV1):
        layers: list[tuple[str, torch.nn.Module]] = [("conv1", backbone.stem)]
        for i, block in enumerate(backbone.blocks):
            layers += [(f"dw{i + 1}", block[0]), (f"pw{i + 1}", block[1])]
        return layers
    raise UserError(f"--backbone {type(backbone).__name__}: the Table 3 memory measure is defined for mnv1 and mnv2")


@torch.no_grad()
def materialized_tensors(backbone: Backbone, resolution: int) -> list[Materialized]:
    """Run the backbone once and list the tensors Table 3 counts, the pooled feature vector last.

    The layers form a chain, so each one reads the previous tensor (the first reads the image).
    """
    shapes: list[tuple[str, int, int]] = []
    handles = [
        module.register_forward_hook(
            lambda _module, _inputs, output, name=name: shapes.append((name, output.shape[1], output.shape[-1]))
        )
        for name, module in _layers(backbone)
    ]
    try:
        backbone.eval()(torch.zeros(1, 3, resolution, resolution))
    finally:
        for handle in handles:
            handle.remove()
    found: list[Materialized] = []
    previous = 3 * resolution * resolution * BYTES_PER_VALUE
    for name, channels, size in shapes:
        found.append(Materialized(name, channels, size, previous))
        previous = found[-1].bytes
    found.append(Materialized("avgpool", found[-1].channels, 1, previous))
    return found


def table3(backbone: Backbone, name: str, resolution: int = 224) -> Table3:
    """Per spatial size, the widest materialized tensor and its 16-bit size; the network maximum."""
    tensors = materialized_tensors(backbone, resolution)
    widest: dict[int, int] = {}
    for tensor in tensors:
        widest[tensor.size] = max(widest.get(tensor.size, 0), tensor.channels)
    rows = tuple(
        Table3Row(size, channels, channels * size * size * BYTES_PER_VALUE / KB)
        for size, channels in sorted(widest.items(), reverse=True)
    )
    alive = max(tensors, key=lambda t: t.input_bytes + t.bytes)
    return Table3(
        backbone=name,
        resolution=resolution,
        rows=rows,
        max_kb=max(row.kb for row in rows),
        max_input_plus_output_kb=(alive.input_bytes + alive.bytes) / KB,
        max_input_plus_output_layer=alive.layer,
        tensors=tuple(tensors),
    )


def format_table3(tables: list[Table3]) -> str:
    """Table 3 layout: one column per network, ``channels/Kb`` per size, the paper's value beside."""
    sizes = sorted({row.size for table in tables for row in table.rows}, reverse=True)
    header = f"{'size':>9}" + "".join(f" | {t.backbone + ' (ours)':>16} {'paper':>10}" for t in tables)
    lines = [f"max channels / memory in Kb (K = 1000 bytes), 16-bit activations, input {tables[0].resolution}x{tables[0].resolution}", header, "-" * len(header)]

    def paper(table: Table3, size: int | None) -> str:
        ref = PAPER_TABLE3.get(table.backbone) if table.resolution == 224 else None
        if ref is None:
            return ""
        if size is None:
            return f"{ref['max_kb']}K"
        return "{}/{}".format(*ref["rows"][size]) if size in ref["rows"] else ""

    for size in sizes:
        cells = []
        for table in tables:
            row = next((r for r in table.rows if r.size == size), None)
            ours = f"{row.max_channels}/{row.kb:.0f}" if row else ""
            cells.append(f" | {ours:>16} {paper(table, size):>10}")
        lines.append(f"{f'{size}x{size}':>9}" + "".join(cells))
    lines.append(f"{'max':>9}" + "".join(f" | {f'{t.max_kb:.0f}K':>16} {paper(t, None):>10}" for t in tables))
    lines.append(
        f"{'in+out':>9}"
        + "".join(f" | {f'{t.max_input_plus_output_kb:.0f}K':>16} {'':>10}" for t in tables)
        + "   (largest input + output of one layer, alive together; not a Table 3 column)"
    )
    return "\n".join(lines)


