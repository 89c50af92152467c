"""The float executor against the float model: bit-identical logits on official checkpoints and on
small random networks of every family and attention mode."""
from __future__ import annotations

import pytest
import torch

from conftest import official_checkpoint, official_expected
from ir_nets import SMALL, small_input, small_model
from statten_hw import load_checkpoint
from statten_hw.ir import lower, run_float
from statten_hw.ir.execute_float import EXECUTORS, lif_forward
from statten_hw.ir.nodes import LIF, NODE_KINDS


def test_official_fixture_bit_exact(official_name):
    model = load_checkpoint(official_checkpoint(official_name))
    expected = official_expected(official_name)
    g = lower(model)
    with torch.no_grad():
        reference = model(expected["inputs"])
    found = run_float(g, expected["inputs"])
    assert torch.equal(found, reference), f"max |diff| {(found - reference).abs().max().item()}"
    logits = found.mean(0) if model.config.tet else found
    assert torch.equal(logits, expected["logits"])


@pytest.mark.parametrize("key", sorted(SMALL))
def test_small_network_bit_exact(key):
    model = small_model(key)
    x = small_input(model)
    g = lower(model)
    with torch.no_grad():
        reference = model(x)
    values = run_float(g, x, keep=True)
    assert torch.equal(values["output"], reference), f"max |diff| {(values['output'] - reference).abs().max().item()}"
    # the comparison means something only if the network spikes: some LIFs fire, none always
    rates = [values[n].abs().mean().item() for n, d in g.nodes(data=True) if isinstance(d["op"], LIF)]
    assert max(rates) > 0.05 and min(rates) < 1.0


def test_every_kind_has_an_executor():
    assert set(EXECUTORS) == set(NODE_KINDS.values())


def test_lif_follows_its_equation():
    # constant input 1.5, threshold 1, tau 2: h = 0.75 (v 0.75), then 0.75 + 0.375 = 1.125 fires and
    # resets to 0, so the pattern 0, 1 repeats
    x = torch.full((4, 1), 1.5)
    assert lif_forward(x, 1.0).flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    # ternary: -1.5 gives the mirrored pattern
    assert lif_forward(-x, 1.0, ternary=True).flatten().tolist() == [0.0, -1.0, 0.0, -1.0]
    # soft reset keeps the excess: 1.125 - 1 = 0.125, then 0.125 + 0.6875 = 0.8125, then 1.15625 fires
    assert lif_forward(x, 1.0, reset="soft").flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
