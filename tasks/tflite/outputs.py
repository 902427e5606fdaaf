"""A ``.tflite`` file's raw outputs in the conventions of the suite's own model outputs.

The official files end in a post-processing op (SOFTMAX, ARG_MAX, TFLite_Detection_PostProcess)
whose inputs are what the suite's evaluation takes. Those tensors differ from the suite's outputs
only in layout: NHWC logits (DeepLab) against NCHW, a leading "background" logit (ImageNet
classifiers: the import drops it), and TF's (ty, tx, th, tw) box codes against (tx, ty, tw, th).
Both ways of running a file (LiteRT in ``bench latency --tflite``, the integer execution in
``bench eval --runtime tflite-int8``) map them here.
"""

from __future__ import annotations

import torch

from backbones.errors import UserError

# Final ops whose inputs are the raw outputs the suite's evaluation takes.
POSTPROCESS_OPS = ("SOFTMAX", "ARG_MAX", "TFLite_Detection_PostProcess")

# The file's box codes are (ty, tx, th, tw); the suite's (and torchvision's) (tx, ty, tw, th).
TF_TO_SUITE_CODES = (1, 0, 3, 2)


def match_reference(raw: list[torch.Tensor], reference: list[torch.Tensor], final_op: str | None) -> list[torch.Tensor]:
    """The file's raw tensors in the shapes and conventions of the suite's outputs (``reference``)."""
    if len(raw) != len(reference):
        raise UserError(f"the .tflite file has {len(raw)} raw outputs, the suite's model {len(reference)}")
    matched = []
    for i, (tensor, ref) in enumerate(zip(raw, reference, strict=True)):
        if tensor.ndim == 4 and tensor.shape != ref.shape and tensor.permute(0, 3, 1, 2).shape == ref.shape:
            tensor = tensor.permute(0, 3, 1, 2)  # NHWC logits (DeepLab) -> NCHW
        if tensor.ndim == 2 and ref.ndim == 2 and tensor.shape[1] == ref.shape[1] + 1:
            tensor = tensor[:, 1:]  # logit 0 is "background" (the import drops it too)
        if final_op == "TFLite_Detection_PostProcess" and i == 1 and tensor.shape[-1] == 4:
            tensor = tensor[..., list(TF_TO_SUITE_CODES)]  # (ty, tx, th, tw) -> the suite's (tx, ty, tw, th)
        if tensor.shape != ref.shape:
            raise UserError(f"the .tflite file's output {i} has shape {list(tensor.shape)}, the suite's {list(ref.shape)}")
        matched.append(tensor.contiguous())
    return matched
