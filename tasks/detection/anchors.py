"""SSD anchors as TF's object-detection API builds them (``create_ssd_anchors``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AnchorConfig:
    """ssdlite_mobilenet_v2_coco's anchor generator (TF sample config)."""

    num_layers: int = 6
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
    # One more box at ratio 1 with scale sqrt(s_k * s_k+1).
    interpolated_scale_for_ratio_one: bool = True
    # The finest map gets 3 boxes only: (0.1, 1), (min_scale, 2), (min_scale, 1/2).
    reduce_boxes_in_lowest_layer: bool = True

    def layer_box_specs(self) -> list[list[tuple[float, float]]]:
        """(scale, aspect ratio) of each box, per layer."""
        scales = [
            self.min_scale + (self.max_scale - self.min_scale) * i / (self.num_layers - 1)
            for i in range(self.num_layers)
        ] + [1.0]
        specs = []
        for layer, (scale, next_scale) in enumerate(zip(scales[:-1], scales[1:], strict=True)):
            if layer == 0 and self.reduce_boxes_in_lowest_layer:
                specs.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
                continue
            boxes = [(scale, ratio) for ratio in self.aspect_ratios]
            if self.interpolated_scale_for_ratio_one:
                boxes.append((math.sqrt(scale * next_scale), 1.0))
            specs.append(boxes)
        return specs

    def boxes_per_location(self) -> list[int]:
        return [len(boxes) for boxes in self.layer_box_specs()]


def anchor_boxes(config: AnchorConfig, feature_sizes: list[tuple[int, int]], image_size: tuple[int, int]) -> torch.Tensor:
    """Anchors in pixels (x0, y0, x1, y1), ordered map by map, row-major over cells, boxes within a cell.

    Centres sit at (i + 0.5) / size of each map (TF's default stride and offset); box sides are
    ``scale * sqrt(ratio)`` by ``scale / sqrt(ratio)`` of the image side.
    """
    height, width = image_size
    all_boxes = []
    for (fh, fw), specs in zip(feature_sizes, config.layer_box_specs(), strict=True):
        cy = (torch.arange(fh, dtype=torch.float32) + 0.5) / fh
        cx = (torch.arange(fw, dtype=torch.float32) + 0.5) / fw
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        sizes = torch.tensor([(s * math.sqrt(r), s / math.sqrt(r)) for s, r in specs], dtype=torch.float32)
        centers = torch.stack([cx, cy], -1).reshape(-1, 1, 2)
        half = sizes.reshape(1, -1, 2) / 2
        boxes = torch.cat([centers - half, centers + half], -1).reshape(-1, 4)
        all_boxes.append(boxes * torch.tensor([width, height, width, height], dtype=torch.float32))
    return torch.cat(all_boxes)
