"""A quantized ``.tflite`` file run in integers (``tasks.tflite.int8``) as the suite's model, so the
suite's evaluation scores the deployed arithmetic rather than its float shadow.

The suite's batch is the preset's normalised float image; the file takes the image's bytes
(uint8 0..255, its input quantization says what they mean), so each batch is turned back into
those bytes exactly (``round((x * std + mean) * 255)``), run, and the raw outputs mapped onto the
imported float model's outputs (``tasks.tflite.outputs``). ``arithmetic`` picks whose integers:
TFLite's builtin kernels ("tflite") or XNNPACK's, LiteRT's default ("xnnpack"). With
``check_litert=N`` the first N batches also go through LiteRT on the same bytes (builtin kernels, or
the default interpreter), and ``agreement()`` says how often the two agree on them: every raw
integer output value, and the arg-max over the last axis (classification: top-1; segmentation: each
pixel's label; detection: each anchor's class). The check is off by default: the arithmetic is
tested against LiteRT tensor by tensor (``tests/test_realdata_tflite_int8.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree as pytree

from backbones.errors import UserError
from tasks.tflite.int8 import QuantizedTFLite
from tasks.tflite.outputs import match_reference
from tasks.tflite.reader import TFLiteGraph


class IntegerTFLiteModel(nn.Module):
    """``forward(batch)`` -> the float model's output structure, computed by the file's integers."""

    def __init__(
        self,
        path: str | Path | TFLiteGraph,
        float_model: nn.Module,
        pixels: tuple[tuple[float, ...], tuple[float, ...]],
        *,
        arithmetic: str = "tflite",
        check_litert: int = 0,
    ) -> None:
        super().__init__()
        self.engine = QuantizedTFLite(path, arithmetic=arithmetic)
        if self.engine.graph.input.dtype != "uint8":
            raise UserError(f"{self.engine.path}: integer execution takes uint8 image input; the file's is "
                            f"{self.engine.graph.input.dtype}")
        # One blank image first: an op the arithmetic lacks is a one-line error before any data is read.
        self.engine.run(np.zeros((1, *self.engine.graph.input.shape[1:]), np.uint8))
        self.float_model = float_model.eval()
        first = self.engine.graph.convs()[0].inputs[0] if self.engine.graph.convs() else self.engine.input
        self.precision = self.engine.graph.tensors[first].dtype  # the layers' type: uint8 (TF1) or int8 (TF2)
        self.mean, self.std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in pixels)
        # What the suite's evaluators read off a model besides its outputs (detection: anchors, labels).
        for name in ("label_map", "num_classes"):
            if hasattr(float_model, name):
                setattr(self, name, getattr(float_model, name))
        self._spec: pytree.TreeSpec | None = None
        self._reference: list[torch.Tensor] = []
        if check_litert < 0:
            raise ValueError(f"check_litert={check_litert}: a number of batches, 0 or more")
        self.check_litert = check_litert
        self._litert = _LiteRT(self.engine.path, self.engine.raw_outputs()[0], delegate=arithmetic == "xnnpack") if check_litert else None
        self.counts = {"batches": 0, "images": 0, "values": 0, "values_equal": 0, "positions": 0, "positions_equal": 0}

    def anchors(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.float_model.anchors(*args, **kwargs)

    def to_pixels(self, x: torch.Tensor) -> np.ndarray:
        """The batch's image bytes, NHWC uint8 (exact: the normalisation is undone and rounded)."""
        values = ((x.detach().cpu().float() * self.std + self.mean) * 255.0).round().clamp(0, 255)
        return np.ascontiguousarray(values.permute(0, 2, 3, 1).numpy().astype(np.uint8))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> Any:
        pixels = self.to_pixels(x)
        raw_ids, _ = self.engine.raw_outputs()
        raw, env = self.engine.run(pixels)
        if self._litert is not None and self.counts["batches"] < self.check_litert:
            self._count(pixels, [env[i].long() for i in raw_ids], raw_ids)
        return self.outputs(raw, x)

    @torch.no_grad()
    def outputs(self, raw: list[torch.Tensor], x: torch.Tensor, *, quantized: bool = True) -> Any:
        """The file's raw outputs for the batch ``x`` in the structure the suite's evaluation takes:
        dequantized integers, or (``quantized=False``) floats from a float run of the same graph,
        whose logits have no 8-bit ties to break."""
        if self._spec is None:  # the suite's output structure and shapes, read once from the float model
            out = self.float_model(x[:1])
            self._reference = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
            self._spec = pytree.tree_structure(out)
        raw_ids, final_op = self.engine.raw_outputs()
        shapes = [torch.empty(len(x), *t.shape[1:]) for t in self._reference]
        matched = match_reference(raw, shapes, final_op)
        if final_op == "SOFTMAX" and quantized:
            matched[0] = _ties_to_lower_index(matched[0], self.engine.graph.tensors[raw_ids[0]].scale)
        if final_op == "TFLite_Detection_PostProcess":
            # The file scores boxes with its 8-bit LOGISTIC output; the suite's decoder takes logits and
            # applies the sigmoid: hand it the logits of those probabilities (0 stays below any threshold).
            p = matched[0].double().clamp(1e-30, 1 - 1e-12)
            matched[0] = torch.log(p / (1 - p)).float()
        return pytree.tree_unflatten(matched, self._spec)

    def _count(self, pixels: np.ndarray, ours: list[torch.Tensor], raw_ids: list[int]) -> None:
        theirs = self._litert.raw(pixels, raw_ids)
        self.counts["batches"] += 1
        self.counts["images"] += len(pixels)
        for mine, other in zip(ours, theirs, strict=True):
            self.counts["values"] += mine.numel()
            self.counts["values_equal"] += int((mine == other).sum())
            self.counts["positions"] += mine[..., 0].numel()
            self.counts["positions_equal"] += int((mine.argmax(-1) == other.argmax(-1)).sum())

    def agreement(self) -> dict[str, float] | None:
        """On the batches checked: their count and images, the percent of raw integer outputs equal to
        LiteRT's and of arg-maxes (None when none was checked)."""
        if self._litert is None or not self.counts["values"]:
            return None
        c = self.counts
        return {
            "batches": c["batches"],
            "images": c["images"],
            "raw_values_equal": round(100.0 * c["values_equal"] / c["values"], 4),
            "argmax_equal": round(100.0 * c["positions_equal"] / c["positions"], 4),
        }


def _ties_to_lower_index(logits: torch.Tensor, scale: float) -> torch.Tensor:
    """8-bit logits tie often (a few images in a hundred at the top); the deployed file's answer is
    the arg-max of its SOFTMAX, the lowest index among equals, while ``topk`` orders ties as it
    likes. Subtracting less than half a quantization step, growing with the index, keeps every
    strict order and breaks each tie toward the lower index."""
    step = scale / (2.0 * logits.shape[-1])
    return logits - step * torch.arange(logits.shape[-1], dtype=logits.dtype)


class _LiteRT:
    """LiteRT on the same bytes, the raw outputs to compare with: its builtin kernels (no delegate,
    every tensor kept) or, with ``delegate``, its default interpreter (XNNPACK), the file repacked
    so the raw tensors are graph outputs (a delegate keeps no inner tensors)."""

    def __init__(self, path: str | Path, raw_ids: list[int], *, delegate: bool = False) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if delegate:
            self.interpreter = Interpreter(model_content=_with_outputs(Path(path).read_bytes(), raw_ids))
        else:
            self.interpreter = Interpreter(
                model_path=str(path), experimental_preserve_all_tensors=True,
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
        self.interpreter.allocate_tensors()
        self.input = int(self.interpreter.get_input_details()[0]["index"])

    def raw(self, pixels: np.ndarray, raw_ids: list[int]) -> list[torch.Tensor]:
        found: list[list[torch.Tensor]] = [[] for _ in raw_ids]
        for image in pixels:  # the file's batch is 1
            self.interpreter.set_tensor(self.input, image[None])
            self.interpreter.invoke()
            for slot, index in zip(found, raw_ids, strict=True):
                slot.append(torch.from_numpy(self.interpreter.get_tensor(index).astype(np.int64)))
        return [torch.cat(slot) for slot in found]


def _with_outputs(data: bytes, tensors: list[int]) -> bytes:
    """The model with ``tensors`` (of subgraph 0) added to its outputs."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    subgraph = model.subgraphs[0]
    outputs = [int(i) for i in subgraph.outputs]
    subgraph.outputs = np.array(outputs + [i for i in tensors if i not in outputs], dtype=np.int32)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
