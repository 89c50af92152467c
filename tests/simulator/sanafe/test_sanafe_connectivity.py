"""Synapse lists equal torch's conv2d / matmul on integer weights (exact in float64 at these sizes)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from statten_hw.quant.quantize import QConv2d, QFlatten, QLinear
from statten_hw.simulator.sanafe.connectivity import conv_synapses, index_map, linear_synapses


def _apply(syn, x: np.ndarray, n_out: int) -> np.ndarray:
    out = syn.bias.astype(np.int64).copy()
    np.add.at(out, syn.target, syn.weight * x[syn.source])
    assert out.shape == (n_out,)
    return out


@pytest.mark.parametrize("groups,stride,padding", [(1, (1, 1), (1, 1)), (2, (2, 1), (1, 0)), (4, (2, 2), (0, 2))])
def test_conv_synapses_are_the_conv(groups, stride, padding):
    rng = np.random.default_rng(groups)
    C, H, W, O, k = 4, 7, 6, 8, 3
    op = QConv2d(rng.integers(-127, 128, (O, C // groups, k, k)), rng.integers(-500, 500, O), 1.0, 0, stride, padding,
                 groups)
    x = rng.integers(0, 2, (C, H, W))
    want = F.conv2d(torch.tensor(x, dtype=torch.float64)[None], torch.tensor(op.weight, dtype=torch.float64),
                    torch.tensor(op.bias, dtype=torch.float64), stride, padding, groups=groups)[0]
    syn = conv_synapses(op, (C, H, W), tuple(want.shape))
    got = _apply(syn, x.ravel(), want.numel())
    assert np.array_equal(got, want.numpy().astype(np.int64).ravel())
    # Only taps inside the input are synapses: with padding some kernel positions fall outside.
    full = want.shape[1] * want.shape[2] * O * (C // groups) * k * k
    assert len(syn.weight) == full if padding == (0, 0) else len(syn.weight) < full


def test_linear_synapses_act_per_token():
    rng = np.random.default_rng(1)
    op = QLinear(rng.integers(-127, 128, (5, 3)), rng.integers(-50, 50, 5), 1.0, 0)
    x = rng.integers(0, 2, (4, 3))  # 4 tokens of 3 features
    syn = linear_synapses(op, (4, 3))
    assert np.array_equal(_apply(syn, x.ravel(), 20), (x @ op.weight.T + op.bias).ravel())


def test_index_map_follows_the_flatten():
    # Tokens channels-last: element (n, c) of [H·W, C] comes from (c, h, w) with n = h·W + w.
    C, H, W = 3, 2, 4
    got = index_map([QFlatten(channels_last=True)], (C, H, W)).reshape(H * W, C)
    assert all(got[h * W + w, c] == (c * H + h) * W + w for c in range(C) for h in range(H) for w in range(W))
    assert np.array_equal(index_map([QFlatten(channels_last=False)], (C, H, W)), np.arange(C * H * W))
    assert np.array_equal(index_map([], (C, H, W)), np.arange(C * H * W))
