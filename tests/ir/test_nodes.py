"""Node kinds: frozen, read-only arrays, bad fields named in a ValueError, documented equations."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ir_examples import EXAMPLES
from statten_hw.ir import nodes as ir


def test_examples_cover_every_kind():
    assert set(EXAMPLES) == set(ir.NODE_KINDS)


@pytest.mark.parametrize("kind", sorted(ir.NODE_KINDS))
def test_node_is_frozen_and_documented(kind):
    node = EXAMPLES[kind]()
    assert type(node).KIND == kind
    assert "=" in (type(node).__doc__ or "")  # the docstring states the equation
    field = dataclasses.fields(node)[0].name if dataclasses.fields(node) else None
    if field:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(node, field, None)
    for value in node.fields().values():
        if isinstance(value, np.ndarray):
            assert not value.flags.writeable
            with pytest.raises(ValueError):
                value[...] = 0


def test_arrays_are_copied():
    weight = np.ones((2, 3), np.float32)
    node = ir.Linear(weight=weight)
    weight[0, 0] = 7
    assert node.weight[0, 0] == 1


BAD = {
    "conv weight rank": (lambda: ir.Conv2d(weight=np.zeros((2, 2), np.float32)), "Conv2d.weight"),
    "conv weight dtype": (lambda: ir.Conv2d(weight=np.zeros((2, 2, 1, 1))), "Conv2d.weight"),
    "conv bias length": (lambda: ir.Conv2d(weight=np.zeros((2, 2, 1, 1), np.float32),
                                           bias=np.zeros(3, np.float32)), "Conv2d.bias"),
    "conv stride": (lambda: ir.Conv2d(weight=np.zeros((2, 2, 1, 1), np.float32), stride=(0, 1)), "Conv2d.stride"),
    "conv groups": (lambda: ir.Conv2d(weight=np.zeros((3, 1, 1, 1), np.float32), groups=2), "Conv2d.groups"),
    "linear weight": (lambda: ir.Linear(weight=[[1.0]]), "Linear.weight"),
    "bn shapes": (lambda: ir.BatchNorm(gamma=np.ones(2, np.float32), beta=np.ones(3, np.float32),
                                       mean=np.ones(2, np.float32), var=np.ones(2, np.float32)), "BatchNorm.beta"),
    "bn negative var": (lambda: ir.BatchNorm(*(np.ones(2, np.float32),) * 3, var=-np.ones(2, np.float32)),
                        "BatchNorm.var"),
    "lif threshold": (lambda: ir.LIF(threshold=0.0), "LIF.threshold"),
    "lif tau": (lambda: ir.LIF(tau=0.5), "LIF.tau"),
    "lif reset": (lambda: ir.LIF(reset="none"), "LIF.reset"),
    "input encoding": (lambda: ir.Input(shape=(3, 8, 8), timesteps=4, encoding="rate"), "Input.encoding"),
    "input timesteps": (lambda: ir.Input(shape=(3, 8, 8), timesteps=0), "Input.timesteps"),
    "input shape": (lambda: ir.Input(shape=(3, -1), timesteps=1), "Input.shape"),
    "pool padding": (lambda: ir.MaxPool2d(kernel=(2, 2), padding=(2, 2)), "MaxPool2d.padding"),
    "mean nothing": (lambda: ir.Mean(), "Mean.axes"),
    "mean gaps": (lambda: ir.Mean(axes=(0, 2)), "Mean.axes"),
    "add kind": (lambda: ir.Add(kind="sew"), "Add.kind"),
    "attention mode": (lambda: ir.SpikingAttention(mode="softmax", heads=2), "SpikingAttention.mode"),
    "attention heads": (lambda: ir.SpikingAttention(mode="STAtten", heads=0), "SpikingAttention.heads"),
    "attention scale": (lambda: ir.SpikingAttention(mode="STAtten", heads=2, scale=-1.0), "SpikingAttention.scale"),
    "output flag": (lambda: ir.Output(per_step="yes"), "Output.per_step"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_field_named(case):
    make, field = BAD[case]
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        make()


def test_batchnorm_fold_matches_running_stats():
    rng = np.random.default_rng(3)
    gamma, beta, mean = (rng.standard_normal(6).astype(np.float32) for _ in range(3))
    var = (rng.random(6) + 0.2).astype(np.float32)
    node = ir.BatchNorm(gamma=gamma, beta=beta, mean=mean, var=var)
    x = torch.randn(5, 6, 3, 3, generator=torch.Generator().manual_seed(0))
    exact = F.batch_norm(x, *(torch.tensor(a) for a in (mean, var, gamma, beta)), False, 0.0, 1e-5)
    folded = x * torch.tensor(node.scale)[:, None, None] + torch.tensor(node.shift)[:, None, None]
    assert torch.allclose(folded, exact, atol=1e-5)
    # scale from its definition: gamma / sqrt(var + eps)
    assert np.allclose(node.scale, gamma / np.sqrt(var + 1e-5), rtol=1e-6)


def test_shape_rules():
    conv = EXAMPLES["conv2d"]()
    # H: (8 + 2 - 3) // 2 + 1 = 4; W: (8 + 0 - 3) // 1 + 1 = 6
    assert conv.infer({"x": (2, 8, 8)}) == (4, 4, 6)
    assert ir.MaxPool2d().infer({"x": (4, 7, 7)}) == (4, 4, 4)
    assert ir.Flatten().infer({"x": (16, 2, 3)}) == (6, 16)
    assert ir.Mean(axes=(1, 2)).infer({"x": (16, 4, 4)}) == (16,)
    assert ir.Linear(weight=np.zeros((5, 16), np.float32)).infer({"x": (4, 16)}) == (4, 5)


def test_equals_compares_values():
    assert EXAMPLES["lif"]().equals(EXAMPLES["lif"]())
    assert not ir.LIF(threshold=1.0).equals(ir.LIF(threshold=0.5))
    w = np.ones((2, 2), np.float32)
    assert ir.Linear(weight=w).equals(ir.Linear(weight=w.copy()))
    assert not ir.Linear(weight=w).equals(ir.Linear(weight=w * 2))
