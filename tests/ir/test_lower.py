"""Lowering: every family and attention mode gives a typed graph; unknown modules are refused by name."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import official_checkpoint
from ir_nets import SMALL, small_model
from statten_hw import load_checkpoint
from statten_hw.errors import UnsupportedLayer
from statten_hw.ir import lower
from statten_hw.ir.graph import inputs_by_port, nodes_of, topological_order
from statten_hw.ir.nodes import LIF, Add, BatchNorm, Input, Mean, Mul, Output, ReLU, SpikingAttention


def _kinds(g):
    return sorted({d["op"].KIND for _, d in g.nodes(data=True)})


@pytest.mark.parametrize("key", sorted(SMALL))
def test_every_mode_lowers(key):
    model = small_model(key)
    cfg = model.config
    g = lower(model)
    attention = [g.nodes[n]["op"] for n in nodes_of(g, SpikingAttention)]
    assert len(attention) == cfg.depth
    for op in attention:
        assert (op.mode, op.heads, op.dvs) == (cfg.attention, cfg.heads, cfg.dvs)
        assert op.block_size == (cfg.block_size if cfg.attention not in ("SDSA", "SSA") else 1)
    (out,) = nodes_of(g, Output)
    assert g.nodes[out]["op"].per_step == cfg.tet
    assert g.nodes[out]["shape"] == (cfg.num_classes,)
    (inp,) = nodes_of(g, Input)
    assert g.nodes[inp]["op"].encoding == ("events" if cfg.dvs else "direct")
    # every node names a module of the model (or a synthetic node's parent)
    modules = dict(model.named_modules())
    assert all(d["source"] in modules for _, d in g.nodes(data=True))
    # every weight-bearing module that runs lowered exactly once
    assert {n for n in g if n in modules and n} >= {n for n, m in modules.items()
                                                    if isinstance(m, (nn.Conv2d, nn.Linear))
                                                    and "talking_heads" not in n}


def test_attention_ports_and_shapes():
    g = lower(small_model("statten"))
    name = "block.0.attn.attention"
    assert inputs_by_port(g, name) == {"q": "block.0.attn.q_lif", "k": "block.0.attn.k_lif", "v": "block.0.attn.v_lif"}
    # 8 px, pooling '0001': one stride-2 pool -> 4x4 tokens, 16 channels; scale 1/H = 1/4
    assert g.nodes[name]["shape"] == (16, 4, 4)
    assert g.nodes[name]["op"].scale == 0.25


def test_family_specific_nodes():
    a2os2a = lower(small_model("a2os2a"))
    assert isinstance(a2os2a.nodes["block.0.attn.k_lif"]["op"], ReLU)
    assert a2os2a.nodes["block.0.attn.v_lif"]["op"].ternary
    dvs = lower(small_model("statten_dvs_tet"))
    assert isinstance(dvs.nodes["block.0.attn.pool_gate"]["op"], Mul)
    assert dvs.nodes["block.0.attn.attention"]["op"].scale == 1 / (4 * 4 * 2)
    assert not list(n for n in nodes_of(dvs, Mean) if dvs.nodes[n]["op"].time)  # TET keeps per-step logits
    ssa = lower(small_model("ssa"))
    assert {ssa.nodes[n]["op"].kind for n in nodes_of(ssa, Add)} == {"spike"}
    assert all(ssa.nodes[n]["op"].channel_axis == 1 for n in nodes_of(ssa, BatchNorm) if "block" in n)
    sdt = lower(small_model("statten"))
    assert {sdt.nodes[n]["op"].kind for n in nodes_of(sdt, Add)} == {"membrane"}
    assert sdt.nodes["block.0.attn.attn_lif"]["op"].threshold == 0.5
    sdsa = lower(small_model("sdsa"))
    assert sdsa.nodes["block.0.attn.attention"]["op"].kv_threshold == 0.5
    assert "block.0.attn.attn_lif" not in sdsa  # SDSA spikes inside the attention node


def test_official_checkpoints_lower(official_name):
    g = lower(load_checkpoint(official_checkpoint(official_name)))
    order = topological_order(g)
    assert order[0] == "input" and order[-1] == "output"
    assert sum(isinstance(d["op"], LIF) for _, d in g.nodes(data=True)) > 10


def _swap(path: str, new: nn.Module):
    def apply(model):
        parent_path, _, name = path.rpartition(".")
        setattr(model.get_submodule(parent_path), name, new)
    return apply


UNSUPPORTED = {
    "gelu as attention LIF": ("statten", "block.0.attn.q_lif", nn.GELU(), "GELU"),
    "gelu as SDSA kv LIF": ("sdsa", "block.0.attn.talking_heads_lif", nn.GELU(), "GELU"),
    "layernorm as BN1d": ("ssa", "block.0.mlp.fc1_bn", nn.LayerNorm(64), "LayerNorm"),
    "conv1d as proj": ("statten", "block.0.attn.proj_conv", nn.Conv1d(16, 16, 1), "Conv1d"),
    "avgpool in stem": ("statten", "patch_embed.maxpool3", nn.AvgPool2d(3, 2, 1), "AvgPool2d"),
    "dilated conv": ("statten", "patch_embed.proj_conv", nn.Conv2d(3, 2, 3, padding=2, dilation=2, bias=False), "Conv2d"),
    "identity block": ("statten", "block.0", nn.Identity(), "Identity"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_module_named(case):
    key, path, new, type_name = UNSUPPORTED[case]
    model = small_model(key)
    _swap(path, new)(model)
    with pytest.raises(UnsupportedLayer, match=path.replace(".", r"\.")) as info:
        lower(model)
    assert (info.value.module_path, info.value.module_type) == (path, type_name)


def test_unknown_model_family():
    with pytest.raises(UnsupportedLayer, match="Sequential") as info:
        lower(nn.Sequential(nn.Linear(2, 2)))
    assert info.value.module_type == "Sequential"


def test_training_mode_bn_refused():
    model = small_model("statten").train()
    with pytest.raises(UnsupportedLayer, match="training mode"):
        lower(model)
