"""Validation and shape inference: each malformed graph fails with one GraphError naming the problem."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from ir_nets import small_model
from statten_hw.errors import GraphError
from statten_hw.ir import PIPELINE, lower, run_pipeline, validate
from statten_hw.ir import nodes as ir
from statten_hw.ir.graph import add_op, new_graph
from statten_hw.ir.passes import infer_shapes


def _tiny(c_in_weight=3):
    g = new_graph()
    add_op(g, "input", ir.Input(shape=(3, 8, 8), timesteps=4), "")
    add_op(g, "conv", ir.Conv2d(weight=np.zeros((4, c_in_weight, 3, 3), np.float32), padding=(1, 1)), "c", x="input")
    add_op(g, "lif", ir.LIF(), "l", x="conv")
    add_op(g, "mean", ir.Mean(axes=(1, 2), time=True), "", x="lif")
    add_op(g, "output", ir.Output(), "", x="mean")
    return g


def test_pipeline_is_imported_functions():
    assert PIPELINE == [infer_shapes, validate]
    assert all(inspect.isfunction(p) for p in PIPELINE)


def test_valid_graph_passes_and_gets_shapes():
    g = run_pipeline(_tiny())
    assert g.nodes["conv"]["shape"] == (4, 8, 8)
    assert g.nodes["output"]["shape"] == (4,)


def test_lowered_graph_stays_valid_after_every_pass():
    g = lower(small_model("statten"))
    for step in PIPELINE:
        validate(step(g))


def test_shape_mismatch_names_both_ends_and_shapes():
    with pytest.raises(GraphError, match=r"'input' -> 'conv'.*\[3, 8, 8\].*expects \[5, \?, \?\]"):
        run_pipeline(_tiny(c_in_weight=5))


def test_validate_catches_stale_shape():
    g = run_pipeline(_tiny())
    g.nodes["input"]["shape"] = (3, 9, 9)
    with pytest.raises(GraphError, match=r"stores shape \[3, 9, 9\]"):
        validate(g)


def test_cycle():
    g = run_pipeline(_tiny())
    g.add_edge("lif", "conv", port="y")
    with pytest.raises(GraphError, match="cycle"):
        validate(g)


def test_missing_port():
    g = run_pipeline(_tiny())
    add_op(g, "add", ir.Add(), "", lhs="lif")
    g.nodes["add"]["shape"] = (4, 8, 8)
    with pytest.raises(GraphError, match=r"'add'.*missing \['rhs'\]"):
        validate(g)


def test_unknown_port():
    g = _tiny()
    g.edges["conv", "lif"]["port"] = "q"
    with pytest.raises(GraphError, match=r"'lif'.*unknown \['q'\]"):
        infer_shapes(g)


def test_attention_input_shapes_must_agree():
    g = new_graph()
    add_op(g, "input", ir.Input(shape=(8, 4, 4), timesteps=4), "")
    add_op(g, "q", ir.LIF(), "", x="input")
    add_op(g, "k", ir.MaxPool2d(), "", x="input")
    add_op(g, "v", ir.LIF(), "", x="input")
    add_op(g, "attn", ir.SpikingAttention(mode="STAtten", heads=2, block_size=2, scale=0.25), "", q="q", k="k", v="v")
    with pytest.raises(GraphError, match=r"'k' -> 'attn' \(port 'k'\).*\[8, 2, 2\].*expects \[8, 4, 4\]"):
        infer_shapes(g)


def test_block_size_must_divide_timesteps():
    g = lower(small_model("statten"))
    g.nodes["block.0.attn.attention"]["op"] = ir.SpikingAttention(mode="STAtten", heads=2, block_size=3, scale=0.25)
    with pytest.raises(GraphError, match="block size 3 does not divide T = 4"):
        validate(g)


def test_duplicate_node_and_dangling_producer():
    g = _tiny()
    with pytest.raises(GraphError, match="already"):
        add_op(g, "lif", ir.LIF(), "")
    with pytest.raises(GraphError, match="'nowhere' is not in the graph"):
        add_op(g, "relu", ir.ReLU(), "", x="nowhere")
