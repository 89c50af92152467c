"""Lava timing of the integer graph: synapse delays, the attention block buffer, windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lava_nets import active_qgraph
from statten_hw.errors import UnsupportedLayer
from statten_hw.ir import nodes as ir
from statten_hw.ir.graph import add_op, new_graph
from statten_hw.ir.passes.infer_shapes import infer_shapes
from statten_hw.quant import quantize
from statten_hw.simulator.lava.schedule import schedule


def test_latencies_of_the_small_statten_net():
    """Derived by hand from the network: +1 per conv/linear on the longest path, +B-1 = 1 at the
    attention (B = 2), inputs of a sum aligned to the later one."""
    q = active_qgraph("statten")
    s = schedule(q)
    expected = {"input": 0, "patch_embed.proj_conv": 1, "patch_embed.proj_lif": 1, "patch_embed.proj_lif2": 3,
                "patch_embed.maxpool3": 4, "patch_embed.proj_lif3": 4, "patch_embed.rpe_add": 5,
                "block.0.attn.q_lif": 6, "block.0.attn.attention": 7, "block.0.attn.attn_lif": 7,
                "block.0.attn.residual": 8, "block.0.mlp.fc2_lif": 9, "block.0.mlp.residual": 10,
                "head_lif": 10, "head": 11, "head.time_mean": 11, "output": 11}
    assert {n: s.latency[n] for n in expected} == expected
    assert s.timesteps == 4 and s.window == 4 + 11
    assert s.arrival["block.0.attn.attention"] == 6
    assert s.port_delay(q, "patch_embed.rpe_add") == {"lhs": 0, "rhs": 1}
    assert s.port_delay(q, "block.0.attn.residual") == {"lhs": 0, "rhs": 3}
    assert s.single == {"head.time_mean", "output"}


def test_state_after_a_time_mean_is_refused():
    g = new_graph()
    add_op(g, "input", ir.Input(shape=(4,), timesteps=3), "")
    add_op(g, "fc", ir.Linear(weight=np.eye(4, dtype=np.float32)), "", x="input")
    add_op(g, "mean", ir.Mean(time=True), "", x="fc")
    add_op(g, "lif", ir.LIF(), "", x="mean")
    add_op(g, "output", ir.Output(), "", x="lif")
    infer_shapes(g)
    q = quantize(g, torch.rand(4, 4), weight_bits=8)
    with pytest.raises(UnsupportedLayer, match="'lif'.*follows a time mean"):
        schedule(q)
