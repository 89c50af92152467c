"""The float executor against the float model: bit-identical logits on official checkpoints and on
small random networks of every family and attention mode."""
from __future__ import annotations

import math
import weakref

import pytest
import torch

from conftest import official_checkpoint, official_expected
from ir_nets import SMALL, small_input, small_model
from statten_hw import load_checkpoint
from statten_hw.ir import lower, run_float
from statten_hw.ir.execute_float import EXECUTORS, lif_forward, peak_live_elements
from statten_hw.ir.graph import SHAPE, topological_order
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


def _live_by_definition(g, size: dict[str, int]) -> int:
    """The most elements held at once when a node's output lives from its own step to that of its last
    reader (an output nothing reads, the logits included, for its own step only), from that definition."""
    order = topological_order(g)
    step = {n: i for i, n in enumerate(order)}
    until = {n: max([step[n]] + [step[c] for c in g.successors(n)]) for n in order}
    return max(sum(size[n] for n in order if step[n] <= i <= until[n]) for i in range(len(order)))


@pytest.mark.parametrize("key", ["statten", "ssa", "statten_mlp_res"])
def test_run_without_keep_drops_each_output_after_its_last_reader(key):
    g = lower(small_model(key))
    x = small_input(small_model(key))
    values = run_float(g, x, keep=True)
    seen, alive, most = [], {}, [0]

    def observe(name, value):
        seen.append(name)
        assert torch.equal(value, values[name])
        alive[name] = weakref.ref(value)
        most[0] = max(most[0], sum(t.numel() for t in (ref() for ref in alive.values()) if t is not None))

    logits = run_float(g, x, observe=observe)
    assert torch.equal(logits, values["output"]) and seen == topological_order(g)
    # while it runs, it holds what the definition says (keeping everything held far more)
    numel = {n: v.numel() for n, v in values.items()}
    assert most[0] == _live_by_definition(g, numel) < sum(numel.values())
    shapes = {n: math.prod(s) for n, s in g.nodes(data=SHAPE)}
    assert peak_live_elements(g) == _live_by_definition(g, shapes)
