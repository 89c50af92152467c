"""Float executor of the deployment graph: the proof that lowering kept the model's meaning.

Runs every node with the torch ops (and the same operation order and tensor layouts) the float
model uses, so ``run_float(lower(model), x)`` is bit-identical to ``model(x)`` on CPU float32.
Tensors are time-major ``[T, batch, *shape]``; after a time mean ``T = 1``. One function per node
kind, found through ``EXECUTORS`` (an unknown kind raises, it is never skipped).
"""
from __future__ import annotations

import math
from typing import Callable

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F

from statten_hw.errors import GraphError
from statten_hw.models.attention import BLOCKWISE_PRODUCTS

from . import nodes as ir
from .graph import OP, SHAPE, inputs_by_port, nodes_of, topological_order

Tensor = torch.Tensor


def _t(arr: np.ndarray | None) -> Tensor | None:
    return None if arr is None else torch.tensor(arr)


def _per_step(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Apply ``fn`` to ``x`` with time and batch merged (as the model's ``x.flatten(0, 1)``)."""
    T, B = x.shape[:2]
    y = fn(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])


def _input(op: ir.Input, ins, x: Tensor) -> Tensor:
    encode = {
        "direct": lambda: x.unsqueeze(0).repeat(op.timesteps, *([1] * x.dim())),
        "events": lambda: x.transpose(0, 1).contiguous(),
    }
    want = len(op.shape) + (1 if op.encoding == "direct" else 2)
    if x.dim() != want:
        raise GraphError(f"input: encoding {op.encoding!r} takes a {want}-D tensor, got shape {list(x.shape)}")
    return encode[op.encoding]()


def _conv(op: ir.Conv2d, ins, _) -> Tensor:
    w, b = _t(op.weight), _t(op.bias)
    return _per_step(lambda z: F.conv2d(z, w, b, op.stride, op.padding, 1, op.groups), ins["x"])


def _linear(op: ir.Linear, ins, _) -> Tensor:
    w, b = _t(op.weight), _t(op.bias)
    return _per_step(lambda z: F.linear(z, w, b), ins["x"])


def _batchnorm(op: ir.BatchNorm, ins, _) -> Tensor:
    axis = 1 + op.channel_axis  # channel position once time and batch are merged

    def bn(z: Tensor) -> Tensor:
        z = z.transpose(1, axis) if axis != 1 else z
        y = F.batch_norm(z, _t(op.mean), _t(op.var), _t(op.gamma), _t(op.beta), False, 0.0, op.eps)
        return y.transpose(1, axis) if axis != 1 else y
    return _per_step(bn, ins["x"])


def lif_forward(x: Tensor, threshold: float, tau: float = 2.0, reset: str = "hard", v_reset: float = 0.0,
                ternary: bool = False) -> Tensor:
    """The LIF of ``nodes.LIF`` over ``[T, ...]`` (bit-exact with ``models.lif`` for tau 2, v_reset 0)."""
    decay = 1.0 / tau
    v = torch.zeros_like(x[0]) + v_reset if v_reset else torch.zeros_like(x[0])
    spikes = []
    for x_t in x:
        h = v + (x_t - (v - v_reset)) * decay if v_reset else v + (x_t - v) * decay
        s = (h - threshold >= 0).to(h.dtype)
        if ternary:
            s = s - (-h - threshold >= 0).to(h.dtype)
        v = _RESETS[reset](h, s, threshold, v_reset)
        spikes.append(s)
    return torch.stack(spikes)


def _hard(h, s, threshold, v_reset):
    fired = s.abs()
    return h * (1.0 - fired) + v_reset * fired if v_reset else h * (1.0 - fired)


def _soft(h, s, threshold, v_reset):
    return h - s * threshold


_RESETS = {"hard": _hard, "soft": _soft}


def _lif(op: ir.LIF, ins, _) -> Tensor:
    return lif_forward(ins["x"], op.threshold, op.tau, op.reset, op.v_reset, op.ternary)


def _relu(op, ins, _) -> Tensor:
    return F.relu(ins["x"])


def _maxpool(op: ir.MaxPool2d, ins, _) -> Tensor:
    return _per_step(lambda z: F.max_pool2d(z, op.kernel, op.stride, op.padding), ins["x"])


def _mean(op: ir.Mean, ins, _) -> Tensor:
    x = ins["x"]
    if op.axes:
        first, last = 2 + op.axes[0], 2 + op.axes[-1]
        x = x.flatten(first, last).mean(first)
    return x.mean(0, keepdim=True) if op.time else x


def _flatten(op: ir.Flatten, ins, _) -> Tensor:
    x = ins["x"].flatten(-2)
    return x.transpose(-1, -2) if op.channels_last else x


def _add(op, ins, _) -> Tensor:
    return ins["lhs"] + ins["rhs"]


def _mul(op, ins, _) -> Tensor:
    return ins["lhs"].mul(ins["rhs"])


def _dvs_pool(z: Tensor) -> Tensor:
    """The official DVS ``MaxPool3d((1,3,3), stride 1, padding (0,1,1))`` on a 5-D tensor."""
    return F.max_pool3d(z, (1, 3, 3), (1, 1, 1), (0, 1, 1))


def _heads_from_map(z: Tensor, heads: int) -> Tensor:
    T, B, C, H, W = z.shape
    return z.flatten(3).transpose(-1, -2).reshape(T, B, H * W, heads, C // heads).permute(0, 1, 3, 2, 4).contiguous()


def _sdsa(op: ir.SpikingAttention, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    kv = k.mul(v)
    if op.dvs:
        kv = _dvs_pool(kv)
    kv = lif_forward(kv.sum(dim=-2, keepdim=True), op.kv_threshold)
    x = q.mul(kv)
    return _dvs_pool(x) if op.dvs else x


def _attention(op: ir.SpikingAttention, ins, _) -> Tensor:
    if op.mode == "SSA":
        T, B, N, C = ins["q"].shape
        q, k, v = (ins[n].reshape(T, B, N, op.heads, C // op.heads).permute(0, 1, 3, 2, 4).contiguous() for n in "qkv")
        attn = (q @ k.transpose(-2, -1)) * op.scale
        return (attn @ v).transpose(2, 3).reshape(T, B, N, C).contiguous()
    T, B, C, H, W = ins["q"].shape
    q, k, v = (_heads_from_map(ins[n], op.heads) for n in "qkv")
    if op.mode == "SDSA":
        return _sdsa(op, q, k, v).transpose(3, 4).reshape(T, B, C, H, W).contiguous()
    out = BLOCKWISE_PRODUCTS[op.mode](q, k, v, op.block_size, op.scale)
    return out.transpose(4, 3).reshape(T, B, C, H * W).contiguous().reshape(T, B, C, H, W)


def _output(op: ir.Output, ins, _) -> Tensor:
    x = ins["x"]
    return x if op.per_step else x.squeeze(0)


EXECUTORS: dict[type, Callable] = {
    ir.Input: _input, ir.Conv2d: _conv, ir.Linear: _linear, ir.BatchNorm: _batchnorm, ir.LIF: _lif,
    ir.ReLU: _relu, ir.MaxPool2d: _maxpool, ir.Mean: _mean, ir.Flatten: _flatten, ir.Add: _add,
    ir.Mul: _mul, ir.SpikingAttention: _attention, ir.Output: _output,
}


def _last_reads(g: nx.DiGraph, order: list[str]) -> dict[str, int]:
    """Per node, the position in ``order`` of the last node reading its output (its own if none does)."""
    position = {n: i for i, n in enumerate(order)}
    return {n: max((position[c] for c in g.successors(n)), default=position[n]) for n in order}


def peak_live_elements(g: nx.DiGraph) -> int:
    """The most output elements (per step and sample) `run_float` holds at once when it keeps only
    the outputs still to be read: what sizes a batch to the memory it may take."""
    order = topological_order(g)
    last = _last_reads(g, order)
    live = peak = 0
    for i, name in enumerate(order):
        live += math.prod(g.nodes[name][SHAPE])
        peak = max(peak, live)
        live -= sum(math.prod(g.nodes[n][SHAPE]) for n in {name, *g.predecessors(name)} if last[n] == i)
    return peak


@torch.no_grad()
def run_float(g: nx.DiGraph, x: Tensor, keep: bool = False,
              observe: Callable[[str, Tensor], None] | None = None) -> Tensor | dict[str, Tensor]:
    """Logits of ``g`` on the batch ``x`` (the model's own input layout: ``[batch, C, H, W]`` static,
    ``[batch, T, C, H, W]`` events). ``keep=True`` returns every node's output by name instead;
    otherwise an output is dropped once its last reader has run (`peak_live_elements`), and
    ``observe(name, value)`` sees each one before that (calibration's peaks, without keeping them)."""
    outputs = list(nodes_of(g, ir.Output))
    if len(outputs) != 1:
        raise GraphError(f"graph needs exactly one output node, found {outputs}")
    order = topological_order(g)
    last = _last_reads(g, order)
    values: dict[str, Tensor] = {}
    for i, name in enumerate(order):
        op = g.nodes[name][OP]
        run = EXECUTORS.get(type(op))
        if run is None:
            raise GraphError(f"node {name!r}: no float executor for kind {op.KIND!r}")
        sources = inputs_by_port(g, name)
        ins = {port: values[src] for port, src in sources.items()}
        values[name] = run(op, ins, x)
        if observe is not None:
            observe(name, values[name])
        if not keep:
            for done in {*sources.values(), name} - {outputs[0]}:
                if last[done] == i:
                    del values[done]
    return values if keep else values[outputs[0]]
