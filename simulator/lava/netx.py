"""lava-dl netx: the part of an integer network that netx expresses, as a netx HDF5 file, and its run.

netx (lava-dl 0.6, ``lava.lib.dl.netx.hdf5.Network``) loads a *chain* of layers: an ``input`` layer,
then ``conv`` and ``dense`` blocks (a synapse and a neuron each; ``flatten`` between them). Its
``pool``, ``average``, ``concat`` and ``convT`` layers raise ``NotImplementedError`` when loaded, and it
has no residual sum, attention, ternary or graded neuron. `export_netx` therefore writes the longest
chain from the input of the form ``(QConv2d | QLinear) -> QLIF`` whose every link has one consumer, and
lists every other node with the reason netx cannot carry it.

File contents (netx's own reader is the reference): ``layer/<i>/type``; for ``input``: ``shape``
``[C, H, W]``; for ``conv``: ``weight`` ``[C_out, C_in, kH, kW]`` (PyTorch order; netx flips and
reorders it for Lava's Conv), ``bias``, ``shape``, ``stride``, ``padding``, ``dilation``, ``groups``;
for ``dense``: ``weight`` ``[out, in]``, ``bias``, ``shape``; and ``neuron``: ``type = CUBA``,
``iDecay = 4096`` (no current memory: netx sets ``du = iDecay - 1``), ``vDecay = dv``,
``vThMant = threshold - 1`` (Lava fires on ``v > vth``), ``refDelay = 1``, ``gradedSpike = False``.
netx gives every neuron ``bias_exp = 6``, so ``bias`` is the integer bias itself on the integer-membrane
LIF models (`neurons`), which `run_netx` selects; with Lava's stock fixed-point LIF the same file runs
with 6 fractional membrane bits and differs from the integer contract (see `neurons`).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from statten_hw.errors import UnsupportedLayer
from statten_hw.ir.graph import SHAPE, topological_order
from statten_hw.quant.quantize import (QAdd, QAttention, QConv2d, QFlatten, QInput, QLIF, QLinear, QMaxPool2d,
                                       QMean, QMul, QOutput, QReLU, QuantizedGraph)
from statten_hw.reports.files import atomic_write_bytes

from . import _compat
from .neurons import LIF_MODELS, NO_CURRENT_MEMORY_DU, check_dv, check_state_width
from .run import integer_input
from .runtime import started
from .synapses import check_weights

#: Why netx cannot load a node of each kind (lava-dl 0.6 ``netx/hdf5.py``).
NOT_IN_NETX = {
    QMaxPool2d: "netx cannot load pool layers (hdf5.Network.create_pool raises NotImplementedError)",
    QMean: "netx cannot load average layers (hdf5.Network.create_average raises NotImplementedError)",
    QAdd: "a residual sum joins two branches; a netx network is a single chain of layers",
    QMul: "an element-wise gate joins two branches; netx has no such layer",
    QAttention: "spiking attention has no netx layer type",
    QReLU: "a graded ReLU neuron has no netx neuron type (CUBA, SDNN and RF are spiking or sigma-delta)",
    QFlatten: "netx flattens channel-major ([C·H·W]); this token flatten ([H·W, C]) has no netx form",
    QOutput: "the network output is not a netx layer",
}


@dataclass(frozen=True)
class NetxExport:
    """``blocks``: the ``(synapse, neuron)`` node pairs written, in order; ``not_carried``: every other
    node (but the input) with the reason; ``input_shape``: ``[C, H, W]`` or ``[K]``; ``input_bits``:
    message bits of the graded input."""

    path: Path
    blocks: tuple[tuple[str, str], ...]
    not_carried: tuple[tuple[str, str], ...]
    input_shape: tuple[int, ...]
    input_bits: int


def _block_problem(qgraph: QuantizedGraph, prev: str) -> tuple[str | None, str]:
    """``(None, "")`` when ``prev`` feeds exactly one conv/dense that feeds exactly one binary LIF,
    else the first node netx cannot carry and why."""
    g = qgraph.graph
    succ = list(g.successors(prev))
    if len(succ) != 1:
        return (succ[0] if succ else None), f"{prev!r} feeds {len(succ)} nodes; a netx network is one chain"
    syn = succ[0]
    op = qgraph.qop(syn)
    if not isinstance(op, (QConv2d, QLinear)):
        return syn, NOT_IN_NETX.get(type(op), f"{type(op).__name__} has no netx layer type")
    if op.weight_exp:
        return syn, (f"its weights carry an exponent (2**{op.weight_exp}, the quantizer's fraction bits); a netx "
                     f"file has none: quantize with fraction_bits=0 (export --fraction-bits 0, without --for-target)")
    if isinstance(op, QLinear) and len(g.nodes[syn][SHAPE]) != 1:
        return syn, "a linear layer on tokens [N, C] applies one weight row per token; netx dense is one matrix"
    after = list(g.successors(syn))
    if len(after) != 1:
        return syn, f"{syn!r} feeds {len(after)} nodes; a netx network is one chain"
    neuron = qgraph.qop(after[0])
    if not isinstance(neuron, QLIF):
        return after[0], NOT_IN_NETX.get(type(neuron), f"{type(neuron).__name__} has no netx layer type")
    if neuron.ternary:
        return after[0], "a ternary LIF has no netx neuron type"
    return None, ""


def _chain(qgraph: QuantizedGraph) -> tuple[list[tuple[str, str]], str | None, str]:
    """The netx blocks from the input, and where and why the chain stops."""
    prev = next(n for n in topological_order(qgraph.graph) if isinstance(qgraph.qop(n), QInput))
    blocks = []
    while True:
        culprit, reason = _block_problem(qgraph, prev)
        if reason:
            return blocks, culprit, reason
        syn = next(iter(qgraph.graph.successors(prev)))
        prev = next(iter(qgraph.graph.successors(syn)))
        blocks.append((syn, prev))


def _write(f, i: int, kind: str, **fields) -> None:
    layer = f.create_group(f"layer/{i}")
    layer.create_dataset("type", data=np.bytes_(kind))
    for key, value in fields.items():
        if isinstance(value, dict):
            group = layer.create_group(key)
            for k, v in value.items():
                group.create_dataset(k, data=np.bytes_(v) if isinstance(v, str) else v)
        else:
            layer.create_dataset(key, data=value)


def _neuron(name: str, op: QLIF) -> dict:
    return {"type": "CUBA", "iDecay": NO_CURRENT_MEMORY_DU + 1, "vDecay": check_dv(name, op.dv),
            "vThMant": op.threshold - 1, "refDelay": 1, "gradedSpike": False}


def export_netx(qgraph: QuantizedGraph, path) -> NetxExport:
    """Write the netx-expressible chain of ``qgraph`` to ``path`` (an HDF5 ``.net`` file, written atomically);
    `UnsupportedLayer` names the first node when not even one block can be written."""
    import h5py

    check_state_width(qgraph.state_bits, "a netx network", "export it without --for-target, or for a 24-bit target")
    g = qgraph.graph
    blocks, culprit, reason = _chain(qgraph)
    if not blocks:
        raise UnsupportedLayer(culprit or "input", type(qgraph.qop(culprit)).__name__ if culprit else "input",
                               f"nothing netx can carry: {reason}")
    source = next(iter(g.predecessors(blocks[0][0])))
    in_op: QInput = qgraph.qop(source)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        _write(f, 0, "input", shape=np.array(g.nodes[source][SHAPE]))
        for i, (syn, lif) in enumerate(blocks, start=1):
            op = qgraph.qop(syn)
            weight = check_weights(syn, type(op).__name__, op.weight)  # netx would clip wider weights silently
            common = dict(weight=weight, bias=op.bias, shape=np.array(g.nodes[syn][SHAPE]),
                          neuron=_neuron(lif, qgraph.qop(lif)))
            if isinstance(op, QConv2d):
                _write(f, i, "conv", stride=np.array(op.stride), padding=np.array(op.padding),
                       dilation=np.array([1, 1]), groups=op.groups, **common)
            else:
                _write(f, i, "dense", **common)
    carried = {source, *(n for block in blocks for n in block)}
    after = f"not on the netx chain, which ends before {culprit!r}"
    not_carried = tuple((n, reason if n == culprit else NOT_IN_NETX.get(type(qgraph.qop(n)), after))
                        for n in topological_order(g) if n not in carried)
    atomic_write_bytes(path, buf.getvalue())
    return NetxExport(Path(path), tuple(blocks), not_carried, tuple(g.nodes[source][SHAPE]),
                      in_op.bits + int(in_op.signed))


def _whc(shape: tuple[int, ...]) -> tuple[int, ...]:
    """netx's layout of a per-step shape: ``[C, H, W]`` as ``(W, H, C)`` (X, Y, Z); vectors as they are."""
    return tuple(reversed(shape))


def _reverse_last(a: np.ndarray, k: int) -> np.ndarray:
    """Reverse the order of the last ``k`` axes: ``[..., C, H, W] <-> [..., W, H, C]``."""
    return np.ascontiguousarray(a.transpose(*range(a.ndim - k), *reversed(range(a.ndim - k, a.ndim))))


def run_netx(export: NetxExport, qgraph: QuantizedGraph, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Load ``export.path`` with ``netx.hdf5.Network`` and run ``x`` under ``Loihi2SimCfg('fixed_pt')``
    with the integer-membrane LIF models; return each block's spikes ``[T, batch, *shape]`` by LIF node.

    Samples run in windows of ``T + blocks`` steps, netx's own reset scheme (``reset_interval`` = the
    window; ``reset_offset = 1``: block ``i``'s neurons reset at window step ``i``, where its first
    input arrives, each netx synapse delaying by one step)."""
    lava, netx = _compat.import_lava(), _compat.import_lava_dl().netx
    x_int = integer_input(qgraph, x)
    T, n = x_int.shape[:2]
    window = T + len(export.blocks)
    k = len(export.input_shape)
    data = np.zeros((n, window, *_whc(export.input_shape)), np.int32)
    data[:, :T] = _reverse_last(np.moveaxis(x_int, 0, 1), k)
    net = netx.hdf5.Network(net_config=str(export.path), input_message_bits=export.input_bits,
                            reset_interval=window, reset_offset=1)
    source = lava.SourceRingBuffer(data=np.moveaxis(data.reshape(n * window, *data.shape[2:]), 0, -1))
    source.s_out.connect(net.inp)
    sinks = []
    for layer in net.layers:
        sink = lava.SinkRingBuffer(shape=layer.out.shape, buffer=n * window)
        layer.out.connect(sink.a_in)
        sinks.append(sink)
    with started(source, lava.Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=LIF_MODELS)) as session:
        session.run(n * window)
        recorded = [np.asarray(s.data.get()).astype(np.int64) for s in sinks]
    spikes = {}
    for i, ((_, lif), data) in enumerate(zip(export.blocks, recorded), start=1):
        shape = tuple(qgraph.graph.nodes[lif][SHAPE])
        steps = np.moveaxis(data, -1, 0).reshape(n, window, *data.shape[:-1])[:, i:i + T]  # [n, T, *whc]
        spikes[lif] = _reverse_last(steps.swapaxes(0, 1), len(data.shape) - 1).reshape(T, n, *shape)
    return spikes
