"""Which core holds each element of each node's output: neurons from the mapping, the rest derived.

* Neuron layers: the mapping's slices, in the layer's flattened order (``MappingResult.pieces``).
* Dendrite side (the synapse outputs, pools, residual sums and means between synapses and a layer's
  neurons): computed on the core of the neuron they feed, pulled back through each op: an element
  feeding several pool windows belongs to the first of them; an element averaged into a mean belongs
  to the core of the mean.
* Source side (pools, flattens, spike sums and means between a layer's spikes and the synapses that
  read them): computed on the sending core, pushed forward: an output belongs to the lowest core id
  among the elements it reads.
* The input: the host, core ``HOST`` (-1): input events are injected and cross no NoC hop.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from statten_hw.errors import GraphError
from statten_hw.quant.quantize import QFlatten, QMaxPool2d, QMean

HOST = -1


def layer_owners(pieces, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Core id of every neuron of every mapped layer, shaped like the layer."""
    ids: dict[str, list[np.ndarray]] = {}
    for core, layer, neurons in pieces:
        ids.setdefault(layer, []).append(np.full(neurons, core, np.int64))
    out = {}
    for layer, parts in ids.items():
        flat = np.concatenate(parts)
        if flat.size != math.prod(shapes[layer]):
            raise GraphError(f"layer {layer!r}: mapping places {flat.size} neurons, the graph has {shapes[layer]}")
        out[layer] = flat.reshape(shapes[layer])
    return out


def _pool_first_window(op: QMaxPool2d, owner_out: np.ndarray, in_shape) -> np.ndarray:
    (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding
    C, H, W = in_shape
    _, Ho, Wo = owner_out.shape
    oh = np.clip(-(-(np.arange(H) + ph - kh + 1) // sh), 0, Ho - 1)
    ow = np.clip(-(-(np.arange(W) + pw - kw + 1) // sw), 0, Wo - 1)
    return owner_out[:, oh][:, :, ow]


def pull_back(op, owner_out: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Owners of an op's input elements from the owners of its output (dendrite side)."""
    if isinstance(op, QMaxPool2d):
        return _pool_first_window(op, owner_out, in_shape)
    if isinstance(op, QMean):
        kept = owner_out
        for axis in op.axes:
            kept = np.expand_dims(kept, axis)
        return np.broadcast_to(kept, in_shape).copy()
    if isinstance(op, QFlatten):
        return (owner_out.T if op.channels_last else owner_out).reshape(in_shape).copy()
    if owner_out.shape == tuple(in_shape):
        return owner_out
    raise GraphError(f"cannot place the inputs of a {type(op).__name__} ({owner_out.shape} from {in_shape})")


def push_forward(op, owners_in: list[np.ndarray], out_shape: tuple[int, ...]) -> np.ndarray:
    """Owners of an op's output from those of its inputs (source side): the lowest core read."""
    if isinstance(op, QMaxPool2d):
        t = torch.from_numpy(owners_in[0].astype(np.float64))
        low = -F.max_pool2d(-t, op.kernel, op.stride, op.padding)
        return low.round().to(torch.int64).numpy()
    if isinstance(op, QMean):
        low = owners_in[0]
        for axis in sorted(op.axes, reverse=True):
            low = low.min(axis=axis)
        return low.reshape(out_shape)
    if isinstance(op, QFlatten):
        flat = owners_in[0].reshape(owners_in[0].shape[0], -1)
        return (flat.T if op.channels_last else flat).copy()
    if all(o.shape == tuple(out_shape) for o in owners_in):
        return np.minimum.reduce(owners_in)
    raise GraphError(f"cannot place the output of a {type(op).__name__} ({out_shape})")
