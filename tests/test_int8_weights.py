"""Weights made ready for min/max int8 quantizers: bias correction and the dead-channel floor."""

import numpy as np
import torch
from torch import nn

from benchmark.latency.runtimes.int8_weights import (
    channel_scales,
    lift_dead_channels,
    prepare_int8_weights,
    round_per_channel,
)


def test_round_per_channel_uses_each_channels_own_scale():
    weight = torch.tensor([[1.0, -0.5], [0.01, 0.004]])
    rounded = round_per_channel(weight, 127)
    assert rounded[0, 0] == 1.0 and rounded[1, 0] == 0.01  # each channel's max is on its grid
    step = weight.abs().amax(1, keepdim=True) / 127
    assert ((rounded - weight).abs() <= step / 2 + 1e-9).all()
    assert (rounded[1] / step[1]).sub((rounded[1] / step[1]).round()).abs().max() < 1e-4


def test_bias_correction_moves_the_mean_rounding_shift_into_the_bias():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, padding=1)
    images = [torch.rand(4, 8, 12, 12) + 0.5]  # positive inputs (post-ReLU): rounding shifts the mean
    with torch.no_grad():
        reference = conv(images[0]).mean(dim=(0, 2, 3))
    original_bias = conv.bias.detach().clone()
    corrected = prepare_int8_weights(nn.Sequential(conv).requires_grad_(False), images, qmax=7)[0]
    with torch.no_grad():
        rounded = nn.functional.conv2d(images[0], round_per_channel(conv.weight, 7), corrected.bias, padding=1)
        uncorrected = nn.functional.conv2d(images[0], round_per_channel(conv.weight, 7), None, padding=1)
    shift_before = (uncorrected.mean(dim=(0, 2, 3)) + original_bias - reference).abs().max()
    shift_after = (rounded.mean(dim=(0, 2, 3)) - reference).abs().max()
    assert shift_before > 1e-3  # 4-bit rounding does shift the means ...
    assert shift_after < 1e-5  # ... and the corrected bias removes the shift
    assert torch.equal(corrected.weight, conv.weight)  # weights stay fp32 for the quantizer


def test_dead_channel_gets_a_weight_scale_its_int32_bias_fits():
    weight = torch.zeros(3, 4, 1, 1)
    weight[0] = 0.5
    bias = torch.tensor([0.1, 2.0, 0.0])
    x = torch.rand(2, 4, 5, 5) * 6
    lifted = lift_dead_channels(weight, bias, x)
    input_scale = float(x.max()) / 255
    bias_steps = bias[1] / (input_scale * lifted[1].abs().max() / 127)
    assert bias_steps.abs() < 2**31 - 1  # the int32 bias no longer saturates
    assert torch.equal(lifted[0], weight[0]) and torch.equal(lifted[2], weight[2])  # live / zero-bias channels kept
    assert lifted[1].abs().max() * float(x.max()) < 1e-4 * bias[1]  # its effect is far below one int8 step


def test_channel_scales_keep_a_checkpoints_grid_and_fall_back_to_min_max():
    """A row imported from a quantized checkpoint ((q - zero point) * scale, asymmetric) keeps its own
    step, so int8 holds it exactly; a float-trained row gets max|w| / 127."""
    grid = (torch.arange(-40, 90, 3, dtype=torch.float32) * 0.0137).numpy()  # multiples of 0.0137, |k| <= 127
    trained = torch.randn(50, generator=torch.Generator().manual_seed(0)).numpy()
    too_wide = (torch.arange(-200, 60, 7, dtype=torch.float32) * 0.01).numpy()  # on a grid, but |k| > 127
    scales = channel_scales(np.stack([grid[:40], trained[:40], too_wide[:37].repeat(2)[:40]]), 127)
    assert abs(scales[0] - 0.0137) < 1e-7
    assert abs(scales[1] - np.abs(trained[:40]).max() / 127) < 1e-9
    assert abs(scales[2] - 2.0 / 127) < 1e-9
    dead = channel_scales(np.zeros((1, 9)), 127)[0]
    assert dead == 1 / 127  # zeros at a plain scale: a tiny one makes XNNPACK reject the op
    weight = torch.from_numpy(np.stack([grid[:40], trained[:40]])).float()
    assert torch.allclose(round_per_channel(weight, 127)[0], weight[0], rtol=0, atol=1e-5)  # exact on its own grid (to float32)
