"""Explicit synapse lists of the integer conv/linear ops: ``(source, target, weight)`` per connection.

SANA-FE connects neurons one synapse at a time (its ``connect_neurons_conv2d`` has no padding and
no groups), so each quantized op is written out as three int64 arrays over flat neuron indices in
C order of the per-step shapes: ``source`` indexes the op's input, ``target`` its output. Every
kernel tap inside the input is a connection, zero weights included (the chip stores them), so

    out[target] = sum(weight * in[source]) + bias[channel of target]

is exactly the op of `statten_hw.quant.execute` (the tests check it against that executor).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from statten_hw.quant.execute import EXECUTORS
from statten_hw.quant.quantize import QConv2d, QFlatten, QLinear


@dataclass(frozen=True)
class Synapses:
    """Connections of one op and the bias each output neuron gets per step."""

    source: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    bias: np.ndarray  # per output neuron, flat


def conv_synapses(op: QConv2d, in_shape: tuple[int, int, int], out_shape: tuple[int, int, int]) -> Synapses:
    """Every (output position, kernel tap) of a grouped, strided, padded conv that lands inside the input."""
    C, H, W = in_shape
    O, Ho, Wo = out_shape
    _, Cg, kh, kw = op.weight.shape
    (sh, sw), (ph, pw) = op.stride, op.padding
    o, c, i, j, y, x = np.meshgrid(np.arange(O), np.arange(Cg), np.arange(kh), np.arange(kw), np.arange(Ho),
                                   np.arange(Wo), indexing="ij")
    iy, ix = y * sh - ph + i, x * sw - pw + j
    inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
    ci = (o // (O // op.groups)) * Cg + c
    source = ((ci * H + iy) * W + ix)[inside]
    target = ((o * Ho + y) * Wo + x)[inside]
    weight = op.weight[o, c, i, j][inside]
    return Synapses(source, target, weight, np.repeat(op.bias, Ho * Wo))


def linear_synapses(op: QLinear, in_shape: tuple[int, ...]) -> Synapses:
    """A dense ``[O, I]`` matrix on the last axis, once per leading index (token)."""
    O, I = op.weight.shape
    tokens = math.prod(in_shape[:-1])
    n, o, i = np.meshgrid(np.arange(tokens), np.arange(O), np.arange(I), indexing="ij")
    return Synapses((n * I + i).ravel(), (n * O + o).ravel(), op.weight[o, i].ravel(), np.tile(op.bias, tokens))


def index_map(ops: list[QFlatten], shape: tuple[int, ...]) -> np.ndarray:
    """For each element of the output of the flatten chain ``ops`` applied to a tensor of ``shape``, the
    flat index of the element it comes from: the chain run by the integer executor on an index tensor."""
    idx = torch.arange(math.prod(shape), dtype=torch.int64).reshape(1, 1, *shape)
    for op in ops:
        idx = EXECUTORS[type(op)](op, {"x": idx}, None, None, "index")
    return idx.reshape(-1).numpy()


__all__ = ["Synapses", "conv_synapses", "index_map", "linear_synapses"]
