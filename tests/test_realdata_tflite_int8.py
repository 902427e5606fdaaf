"""Integer execution of the official uint8 MobileNets (tasks/tflite/int8.py) against LiteRT's
builtin integer kernels, op by op, on real ImageNet images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

if not os.environ.get("BENCH_REALDATA"):
    pytest.skip("BENCH_REALDATA is not set (real ImageNet slice and official checkpoints)", allow_module_level=True)

from ai_edge_litert.interpreter import Interpreter, OpResolverType
from PIL import Image

from tasks.preprocessing import central_crop, pil_bilinear_resize
from tasks.tflite.int8 import QuantizedTFLite, multiply_by_quantized_multiplier, quantize_multiplier

REALDATA = Path(os.environ["BENCH_REALDATA"])


def test_requantization_matches_gemmlowp_examples() -> None:
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    m, s = quantize_multiplier(0.1)
    x = torch.tensor([5, 15, 25, -15, -25, 1000])
    # 0.1 * x rounded half away from zero: 0.5 -> 1, 1.5 -> 2, 2.5 -> 3 (gemmlowp), negatives symmetric.
    assert multiply_by_quantized_multiplier(x, torch.tensor(m), torch.tensor(s)).tolist() == [1, 2, 3, -2, -3, 100]


def test_integer_mobilenet_v1_follows_litert_op_by_op() -> None:
    path = REALDATA / "weights" / "mobilenet_v1_0.25_128_quant.tflite"
    model = QuantizedTFLite(path)
    reference = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    reference.allocate_tensors()
    detail = reference.get_input_details()[0]
    images = sorted((REALDATA / "imagenet" / "val").glob("*/*.JPEG"))[:6]
    for image in images:
        pixels = pil_bilinear_resize(central_crop(np.asarray(Image.open(image).convert("RGB"))), 128)[None]
        reference.set_tensor(detail["index"], pixels)
        reference.invoke()
        (logits,), env = model.run(pixels)
        convs = [op.outputs[0] for op in model.graph.convs()]
        # Every body layer bit-exact; the final 1x1 logits conv within one integer step.
        for tensor in convs[:-1]:
            assert torch.equal(env[tensor], torch.from_numpy(reference.get_tensor(tensor).astype(np.int64))), tensor
        last = torch.from_numpy(reference.get_tensor(convs[-1]).astype(np.int64))
        assert int((env[convs[-1]] - last).abs().max()) <= 1
        assert int(logits.argmax()) == int(last.argmax())
