"""Quantization-aware fine-tuning trains on the weights ``quantize`` deploys."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from statten_hw.ir import lower
from statten_hw.quant import quantize
from statten_hw.quant.aware import bake, freeze_batchnorm, quantization_aware
from statten_hw.quant.quantize import QConv2d, QLinear, _fold

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ir"))
from ir_nets import small_input, small_model  # noqa: E402


def _grid_error(model, x, bits: int) -> float:
    """Largest distance (in mantissa steps) of a folded weight from ``quantize``'s grid."""
    graph = lower(model.eval())
    qg = quantize(graph, x, weight_bits=bits)
    worst = 0.0
    for name in qg.graph:
        op = qg.qop(name)
        if isinstance(op, (QConv2d, QLinear)):
            folded, _, _ = _fold(graph, name, graph.nodes[name]["op"])
            steps = folded / (op.w_scale * (1 << op.weight_exp))
            worst = max(worst, float(np.abs(steps - op.mantissa).max()))
    return worst


@pytest.mark.parametrize("bits", [8, 4])
def test_baked_weights_lie_on_the_deployed_grid(bits):
    model = small_model("statten")
    x = small_input(model, batch=4)
    assert _grid_error(model, x, bits) > 0.05  # a trained-in-float model is off the grid
    paths = quantization_aware(model, bits)
    assert "patch_embed.proj_conv" in paths and "head" in paths
    with torch.no_grad():
        fake = model.eval()(x)
    bake(model)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    with torch.no_grad():
        assert torch.allclose(model(x), fake, atol=1e-5)  # baking changes nothing the forward sees
    assert _grid_error(model, x, bits) < 1e-3


def test_gradient_passes_the_rounding_and_batchnorm_stays_frozen():
    model = small_model("statten")
    x = small_input(model, batch=4)
    quantization_aware(model, 8)
    model.train()
    freeze_batchnorm(model)
    bn = model.get_submodule("patch_embed.proj_bn")
    stats = bn.running_mean.clone()
    before = model.get_submodule("patch_embed.proj_conv").parametrizations.weight.original.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x).square().mean().backward()
    opt.step()
    after = model.get_submodule("patch_embed.proj_conv").parametrizations.weight.original
    assert not torch.equal(before, after)  # rounding has zero gradient; the straight-through one does not
    assert torch.equal(bn.running_mean, stats) and not bn.training


def test_a_channel_switched_off_by_its_batchnorm_stays_finite():
    model = small_model("statten")
    x = small_input(model, batch=4)
    conv, bn = model.get_submodule("patch_embed.proj_conv"), model.get_submodule("patch_embed.proj_bn")
    with torch.no_grad():
        bn.weight[0] = 0.0
    kept = conv.weight[0].detach().clone()
    quantization_aware(model, 8)
    bake(model)
    assert torch.isfinite(conv.weight).all() and torch.equal(conv.weight[0], kept)
    assert _grid_error(model, x, 8) < 1e-3


def test_refuses_one_bit():
    with pytest.raises(ValueError, match="2..16"):
        quantization_aware(small_model("statten"), 1)
