"""NeuroBench fan-outs: the separable form equals the transposed conv it replaces; kept per (op, shape);
the one-pass AC test; a layer's operations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from statten_hw.ir import nodes as ir
from statten_hw.metrics.neurobench import Synapse, _fan_out, fan_outs, is_spiking, layer_operations


def _transposed(op, in_shape, mask: np.ndarray) -> torch.Tensor:
    """A conv's fan-out as its transpose applied to ones (output padding restores unreached edges)."""
    w = torch.from_numpy(mask.astype(np.float64))
    _, H, W = in_shape
    (kh, kw), (sh, sw), (ph, pw) = w.shape[2:], op.stride, op.padding
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    rest = (H + 2 * ph - kh - (Ho - 1) * sh, W + 2 * pw - kw - (Wo - 1) * sw)
    ones = torch.ones(1, w.shape[0], Ho, Wo, dtype=torch.float64)
    return F.conv_transpose2d(ones, w, stride=op.stride, padding=op.padding, output_padding=rest, groups=op.groups)[0]


# (C_in, C_out, groups, kernel, stride, padding, H, W): strides past the kernel (rows never read),
# padding as wide as the kernel, depthwise and grouped convs, 1x1 convs.
CASES = [(4, 6, 1, (3, 3), (1, 1), (1, 1), 7, 6), (4, 8, 2, (3, 2), (2, 1), (1, 0), 9, 5),
         (3, 3, 3, (3, 3), (2, 2), (1, 1), 8, 8), (6, 4, 1, (1, 1), (1, 1), (0, 0), 5, 4),
         (2, 4, 1, (2, 2), (3, 3), (0, 0), 10, 7), (2, 2, 2, (3, 3), (1, 2), (3, 3), 4, 5)]


@pytest.mark.parametrize("c_in, c_out, groups, kernel, stride, padding, H, W", CASES)
def test_separable_fan_out_equals_the_transposed_conv(c_in, c_out, groups, kernel, stride, padding, H, W):
    gen = torch.Generator().manual_seed(c_in * 7 + H)
    w = torch.randint(-1, 2, (c_out, c_in // groups, *kernel), generator=gen).numpy().astype(np.float32)
    op = ir.Conv2d(weight=w, stride=stride, padding=padding, groups=groups)
    for mask in (w != 0, np.ones_like(w, dtype=bool)):
        assert torch.equal(_fan_out(op, (c_in, H, W), mask), _transposed(op, (c_in, H, W), mask))


def test_fan_outs_are_kept_per_op_and_shape():
    w = np.array([[1, 0], [2, 3]], dtype=np.float32)
    op = ir.Linear(weight=w)
    fan, dense = fan_outs(op, (3, 2))
    assert fan.tolist() == [[2, 1]] * 3 and dense == 12
    assert fan_outs(op, (3, 2))[0] is fan
    assert fan_outs(op, (5, 2))[1] == 20


@pytest.mark.parametrize("values, dtype, spiking", [
    ([1, 0, -1], torch.int64, True), ([1, 2], torch.int64, False), ([-2, 0], torch.int64, False),
    ([1.0, -1.0, 0.0], torch.float32, True), ([0.5, 1.0], torch.float32, False), ([1.5], torch.float32, False),
    ([float("nan")], torch.float32, False), ([], torch.int64, True)])
def test_is_spiking(values, dtype, spiking):
    assert is_spiking(torch.tensor(values, dtype=dtype)) == spiking


@pytest.mark.parametrize("steps, batch", [(4, 2), (3, 1), (16, 20)])
@pytest.mark.parametrize("graded", [False, True])
def test_layer_operations_equal_the_zero_one_layer(steps, batch, graded):
    """NeuroBench's definition run literally: a 0/1 copy of the conv (bias 0) on a 0/1 copy of its
    input, outputs summed over steps and samples; dense: every weight and input set to 1."""
    gen = torch.Generator().manual_seed(steps * 3 + graded)
    w = torch.randint(-1, 2, (6, 2, 3, 3), generator=gen).numpy().astype(np.float32)
    op = ir.Conv2d(weight=w, stride=(2, 1), padding=(1, 1), groups=2)
    x = torch.randint(-1, 2, (steps, batch, 4, 7, 5), generator=gen) * (3 if graded else 1)
    x[:, :, 0, 0, 0] = 1  # a site with an event at every step and sample

    def zero_one(inputs, weights):
        return F.conv2d(inputs.flatten(0, 1), weights, stride=op.stride, padding=op.padding, groups=op.groups).sum()

    effective = zero_one((x != 0).double(), torch.from_numpy(w != 0).double())
    dense = zero_one(torch.ones_like(x, dtype=torch.float64), torch.ones(w.shape, dtype=torch.float64))
    assert layer_operations(Synapse("conv", op, x)) == (int(effective), int(dense))
