"""Where a quantized file's integer path and its float graph part, one op at a time.

Two errors per op, summed over every image compared (``tasks.tflite.compare`` feeds them):

- isolated (layer-wise, as TF's ``QuantizationDebugger``): the op run in float on the integer path's
  own dequantized inputs, against the op's dequantized integer output. In quantization steps of the
  output (``(q - f) / scale``): mean, RMSE and max abs; a kernel that rounds its float result
  correctly sits at RMSE ~0.29 (uniform rounding) and max 0.5. And as an SQNR in dB (the float
  output's power over the error's): the same 0.29 steps cost a layer whose values span few steps
  far more than one whose values span hundreds.
- kernel: the integer output against that float output rounded to the grid (half away from zero),
  in steps: what the kernel's fixed-point arithmetic adds to an exact rounding (TFLite's double
  rounding with a short final shift rounds ties up: +0.12 steps on MobileNetV2's first depthwise).
- accumulated: the dequantized integer output against the float graph run from the same image, as
  an SQNR in dB: every earlier layer's error included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch


def sqnr_db(signal: float, noise: float) -> float:
    """``10 log10(signal / noise)``; ``inf`` for no noise."""
    if noise <= 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0.0 else -math.inf


@dataclass
class LayerError:
    """Sums over the images compared for one op (``add`` once per batch)."""

    count: int = 0
    step_sum: float = 0.0  # isolated error in steps
    step_squares: float = 0.0
    step_max: float = 0.0
    isolated_power: float = 0.0  # sum of the isolated float output squared
    graph_power: float = 0.0  # sum of the float graph's output squared
    graph_error: float = 0.0  # sum of (integer - float graph) squared
    kernel_sum: float = 0.0  # integer - exactly rounded isolated output, in steps
    kernel_off: int = 0  # values where the two differ

    def add(self, integer: torch.Tensor, isolated: torch.Tensor, graph: torch.Tensor, scale: float,
            rounded: torch.Tensor | None = None) -> None:
        """``integer``: the op's dequantized integer output; ``isolated``: the op in float on the integer
        path's inputs; ``graph``: the float graph's output; ``scale``: the output's quantization step;
        ``rounded``: ``isolated`` rounded to the output's grid, dequantized (the kernel's reference)."""
        q, f, g = integer.double(), isolated.double(), graph.double()
        if rounded is not None:
            kernel = torch.round((q - rounded.double()) / scale)
            self.kernel_sum += float(kernel.sum())
            self.kernel_off += int((kernel != 0).sum())
        steps = (q - f) / scale
        self.count += steps.numel()
        self.step_sum += float(steps.sum())
        self.step_squares += float((steps * steps).sum())
        self.step_max = max(self.step_max, float(steps.abs().max())) if steps.numel() else self.step_max
        self.isolated_power += float((f * f).sum())
        self.graph_power += float((g * g).sum())
        self.graph_error += float(((q - g) ** 2).sum())

    def summary(self, scale: float) -> dict[str, Any]:
        """The report's numbers: the kernel's mean offset from exact rounding (steps) and how often it is
        off (%), isolated mean / RMSE / max abs error in steps and SQNR in dB, accumulated SQNR in dB
        against the float graph."""
        n = max(self.count, 1)
        return {
            "kernel_mean_steps": self.kernel_sum / n,
            "kernel_off_pct": 100.0 * self.kernel_off / n,
            "mean_error_steps": self.step_sum / n,
            "rmse_steps": math.sqrt(self.step_squares / n),
            "max_abs_error_steps": self.step_max,
            "isolated_sqnr_db": sqnr_db(self.isolated_power, self.step_squares * scale * scale),
            "accumulated_sqnr_db": sqnr_db(self.graph_power, self.graph_error),
        }
