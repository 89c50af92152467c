"""Networks and targets for the SANA-FE backend tests.

`plain_snn`: a plain conv/dense spiking network with binary event input (no attention, no residual):
every layer runs on SANA-FE through its synapses. `small_loihi`: SANA-FE's loihi.yaml with 100-neuron
cores on a 4 x 2 mesh of 2-core tiles, so a small network spreads over cores and tiles (hops).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from statten_hw.ir import nodes as ir
from statten_hw.ir.graph import add_op, new_graph
from statten_hw.ir.passes.infer_shapes import infer_shapes
from statten_hw.mapping import graph_block_size, map_model
from statten_hw.pipeline import Deployment
from statten_hw.quant import quantize
from statten_hw.targets import load_target
from statten_hw.targets.sanafe import shipped_path

T = 4


def _stem(seed: int):
    """(graph of events [2, 8, 8] -> conv 3x3 (4) -> LIF ``lif1``, the seeded weight maker)."""
    rng = np.random.default_rng(seed)

    def w(*shape, gain=1.0):
        return (rng.standard_normal(shape) * gain).astype(np.float32)

    g = new_graph()
    add_op(g, "input", ir.Input(shape=(2, 8, 8), timesteps=T, encoding="events"), "input")
    add_op(g, "conv1", ir.Conv2d(w(4, 2, 3, 3, gain=0.6), w(4, gain=0.1), (1, 1), (1, 1), 1), "conv1", x="input")
    add_op(g, "lif1", ir.LIF(threshold=0.5), "lif1", x="conv1")
    return g, w


def plain_snn(seed: int = 0):
    """events [2, 8, 8] -> conv 3x3 (4) -> LIF -> conv 3x3 stride 2, 2 groups (8) -> LIF -> tokens
    (channels last) -> linear 8->6 per token -> LIF -> linear 6->3 readout -> mean over tokens and time."""
    g, w = _stem(seed)
    add_op(g, "conv2", ir.Conv2d(w(8, 2, 3, 3, gain=0.7), w(8, gain=0.1), (2, 2), (1, 0), 2), "conv2", x="lif1")
    add_op(g, "lif2", ir.LIF(threshold=0.5), "lif2", x="conv2")
    add_op(g, "tokens", ir.Flatten(channels_last=True), "tokens", x="lif2")
    add_op(g, "fc", ir.Linear(w(6, 8, gain=0.8), w(6, gain=0.1)), "fc", x="tokens")
    add_op(g, "lif3", ir.LIF(threshold=0.4), "lif3", x="fc")
    add_op(g, "head", ir.Linear(w(3, 6), w(3)), "head", x="lif3")
    add_op(g, "mean", ir.Mean(axes=(0,), time=True), "mean", x="head")
    add_op(g, "output", ir.Output(per_step=False), "output", x="mean")
    return infer_shapes(g)


def forked_snn(seed: int = 1):
    """events [2, 8, 8] -> conv 3x3 (4) -> LIF, whose spikes feed two linear+LIF branches (as a STAtten
    block's shortcut feeds q, k and v), each to a readout; the readouts are summed and averaged."""
    g, w = _stem(seed)
    add_op(g, "tokens", ir.Flatten(channels_last=True), "tokens", x="lif1")
    for branch in "ab":
        add_op(g, f"fc_{branch}", ir.Linear(w(6, 4, gain=0.8), w(6, gain=0.1)), f"fc_{branch}", x="tokens")
        add_op(g, f"lif_{branch}", ir.LIF(threshold=0.4), f"lif_{branch}", x=f"fc_{branch}")
        add_op(g, f"head_{branch}", ir.Linear(w(3, 6), w(3)), f"head_{branch}", x=f"lif_{branch}")
    add_op(g, "sum", ir.Add(), "sum", lhs="head_a", rhs="head_b")
    add_op(g, "mean", ir.Mean(axes=(0,), time=True), "mean", x="sum")
    add_op(g, "output", ir.Output(per_step=False), "output", x="mean")
    return infer_shapes(g)


def events(batch: int = 2, seed: int = 3) -> torch.Tensor:
    """Binary event frames ``[batch, T, 2, 8, 8]`` (about 40 % ones)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, T, 2, 8, 8, generator=gen) < 0.4).to(torch.float32)


def small_loihi(folder: Path) -> Path:
    """loihi.yaml with 100 neurons (and 100 input units) per core, 4 x 2 tiles of 2 cores."""
    data = yaml.safe_load(shipped_path("loihi").read_text())
    arch = data["architecture"]
    arch["attributes"].update(width=4, height=2)
    tile = arch["tile"][0]
    tile["name"] = "loihi_tile[0..7]"
    core = tile["core"][0]
    core["name"] = "loihi_core[0..1]"
    core["attributes"]["max_neurons_supported"] = 100
    next(u for u in core["soma"] if u["attributes"]["model"] == "input")["name"] = "loihi_inputs[0..99]"
    path = folder / "small_loihi.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def deployment(graph, x: torch.Tensor, target, model=None) -> Deployment:
    """Quantize ``graph`` on ``x`` and map it on ``target`` (a name, a path or a `Target`) with the
    block size its attention computes."""
    qgraph = quantize(graph, x)
    target = load_target(target) if isinstance(target, (str, Path)) else target
    own = graph_block_size(graph)
    mapping = map_model(qgraph.float_graph, target, block_size=own[1] if own else 1)
    return Deployment(checkpoint=None, model=model, qgraph=qgraph, mapping=mapping, dataset="random")
