"""NeuroBench metrics: hand-derived counts, independent counting on the torch models, invariants.

The benchmark ``benchmarks/neurobench_check.py`` checks the same functions against NeuroBench's own
metric classes (in a separate environment); these tests need no neurobench.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from statten_hw.errors import GraphError, UnsupportedLayer
from statten_hw.ir import lower, nodes as ir
from statten_hw.ir.graph import add_op, new_graph
from statten_hw.ir.passes import run_pipeline
from statten_hw.metrics import float_neurobench_metrics, neurobench_metrics
from statten_hw.metrics.neurobench import (Synapse, float_lif, layer_operations, synaptic_operations,
                                           torch_connection_sparsity, torch_footprint)
from statten_hw.models.lif import MultiStepLIF, MultiStepTernary
from statten_hw.quant import quantize, run_integer
from statten_hw.quant.execute import IntegerRun

sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
from ir_nets import SMALL, small_input, small_model  # noqa: E402

F32 = np.float32

# Two binary-exact layers: max|w| = 127/64 gives s_w = 1/64, so W_int = 64·W exactly, biases 0,
# and the LIF threshold 1.0 becomes ceil(2·1/(1/64)) = 128 with dv = 2048 (V >> 1 toward zero).
W1 = np.array([[127, 0, 64], [-64, 32, 0]], dtype=F32) / 64
W2 = np.array([[127, 0], [64, 127]], dtype=F32) / 64
# Events [batch 2, T 4, 3 inputs].
EVENTS = torch.tensor([[[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]],
                       [[0, 0, 0], [1, 0, 0], [0, 0, 1], [1, 1, 0]]], dtype=torch.float32)


def _two_layer_graph():
    g = new_graph()
    x = add_op(g, "input", ir.Input(shape=(3,), timesteps=4, encoding="events"), "")
    x = add_op(g, "fc1", ir.Linear(weight=W1), "", x=x)
    x = add_op(g, "lif1", ir.LIF(threshold=1.0), "", x=x)
    x = add_op(g, "fc2", ir.Linear(weight=W2), "", x=x)
    x = add_op(g, "lif2", ir.LIF(threshold=1.0), "", x=x)
    add_op(g, "output", ir.Output(per_step=True), "", x=x)
    return run_pipeline(g)


@pytest.fixture(scope="module")
def two_layer():
    qg = quantize(_two_layer_graph(), EVENTS, fraction_bits=0)  # sums in weight steps, as derived below
    return qg, run_integer(qg, EVENTS)


def test_hand_derived_two_layer_snn(two_layer):
    # Integer currents (W_int · x) and Lava LIF H = (V >> 1) + X, fire at H >= 128, reset V = 0:
    #  lif1 a = 127·x0 + 64·x2, b = -64·x0 + 32·x1
    #   sample 0: a H 191*,0,191*,0 -> V 0,0,0,0;  b V -64,0,-32,-16   (* fires)
    #   sample 1: a H 0,127,127,190* -> V 0,127,127,0;  b V 0,-64,-32,-48
    #  lif2 c = 127·a, d = 64·a + 127·b (a fires at s0 t0,t2 and s1 t3; b never)
    #   sample 0: c H 127,63,158*,0 -> V 127,63,0,0;  d V 64,32,80,40
    #   sample 1: c V 0,0,0,127;  d V 0,0,0,64
    qg, run = two_layer
    assert qg.qop("fc1").weight.tolist() == [[127, 0, 64], [-64, 32, 0]]
    assert qg.qop("lif1").threshold == 128
    assert run.values["lif1"][:, :, 0].T.tolist() == [[1, 0, 1, 0], [0, 0, 0, 1]]
    assert run.values["lif2"][:, :, 0].T.tolist() == [[0, 0, 1, 0], [0, 0, 0, 0]]
    m = neurobench_metrics(qg, run)
    # Footprint: 6 + 4 int8 weights, 2 + 2 biases of 24 bits stored as int32: 10 + 16 bytes.
    assert m["Footprint"] == 26
    # ConnectionSparsity: 3 zero weights of 10.
    assert m["ConnectionSparsity"] == 0.3
    # ActivationSparsity: 2 layers x T 4 x batch 2 x 2 neurons = 32 outputs, 3 + 1 spikes.
    assert m["ActivationSparsity"] == 28 / 32
    # SynapticOperations, both inputs binary -> ACs. fc1 column fan-outs (non-zero weights) 2, 1, 1;
    # events per input over steps and samples 4, 3, 3 -> 4·2 + 3 + 3 = 14. fc2 fan-outs 2, 1, events
    # of a: 3, of b: 0 -> 6. Dense: (3·2 + 2·2) per step and sample x 8 = 80. Per sample: / 2.
    assert m["SynapticOperations"] == {"Effective_MACs": 0.0, "Effective_ACs": 10.0, "Dense": 40.0}
    # MembraneUpdates: step 0 counts all 4 neuron-samples per layer; then changes of V:
    # lif1 0 + 3 + 2 + 3 = 8, lif2 2 + 3 + 1 + 1 = 7 -> (4 + 8 + 4 + 7) / 2.
    assert m["MembraneUpdates"] == 23 / 2


def test_footprint_follows_the_weight_width():
    qg = quantize(_two_layer_graph(), EVENTS, weight_bits=12)
    assert neurobench_metrics(qg, run_integer(qg, EVENTS))["Footprint"] == 10 * 2 + 4 * 4  # int16 weights


def test_torch_static_metrics_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))
    with torch.no_grad():
        net[0].weight[0, 0, 0, :] = 0  # 3 zeros among the 18 + 6 connection weights
    # Parameters 18 + 2 + 2 + 6 + 3 float32; buffers running mean/var 2 + 2 float32 and the int64 count.
    assert torch_footprint(net) == (31 + 4) * 4 + 8
    assert torch_connection_sparsity(net) == round(3 / 24, 4)


def test_replay_must_reproduce_the_spikes(two_layer):
    qg, run = two_layer
    values = dict(run.values)
    values["lif2"] = 1 - values["lif2"]
    with pytest.raises(GraphError, match="lif2"):
        neurobench_metrics(qg, IntegerRun(run.logits_int, run.logits_scale, values, run.overflows))


def test_soft_reset_has_no_membrane_rule():
    with pytest.raises(UnsupportedLayer, match="hard reset"):
        float_lif(torch.zeros(2, 1), ir.LIF(reset="soft"), "l")


def test_ac_needs_every_input_in_minus_one_zero_one():
    op = ir.Linear(weight=np.array([[1, 0], [2, 3]], dtype=F32))
    ternary = torch.tensor([[[1.0, -1.0]]])  # [T 1, batch 1, 2]: events 1, 1; fan-outs 2, 1
    graded = torch.tensor([[[2.0, 0.0]]])
    assert synaptic_operations([Synapse("t", op, ternary)], 1) == {"Effective_MACs": 0, "Effective_ACs": 3, "Dense": 4}
    assert synaptic_operations([Synapse("g", op, graded)], 1) == {"Effective_MACs": 2, "Effective_ACs": 0, "Dense": 4}


def _brute_force_ops(w: np.ndarray, x: np.ndarray, stride, padding, groups) -> tuple[int, int]:
    """Loops over every output and tap: (taps with non-zero input and weight, taps inside the input)."""
    n, c_in, H, W = x.shape
    c_out, cg, kh, kw = w.shape
    Ho, Wo = (H + 2 * padding[0] - kh) // stride[0] + 1, (W + 2 * padding[1] - kw) // stride[1] + 1
    effective = dense = 0
    for b in range(n):
        for o in range(c_out):
            g = o // (c_out // groups)
            for i in range(Ho):
                for j in range(Wo):
                    for c in range(cg):
                        for di in range(kh):
                            for dj in range(kw):
                                r, q = i * stride[0] - padding[0] + di, j * stride[1] - padding[1] + dj
                                if 0 <= r < H and 0 <= q < W:
                                    dense += 1
                                    effective += bool(x[b, g * cg + c, r, q]) and bool(w[o, c, di, dj])
    return effective, dense


@pytest.mark.parametrize("stride, padding, groups", [((1, 1), (1, 1), 1), ((2, 1), (1, 0), 2), ((2, 2), (0, 1), 1)])
def test_conv_operations_equal_a_loop_over_taps(stride, padding, groups):
    gen = torch.Generator().manual_seed(3)
    w = (torch.randint(-1, 2, (4, 4 // groups, 3, 2), generator=gen)).numpy().astype(F32)
    x = torch.randint(0, 2, (2, 3, 4, 7, 6), generator=gen).to(torch.float32)  # [T, batch, C, H, W]
    op = ir.Conv2d(weight=w, stride=stride, padding=padding, groups=groups)
    want = _brute_force_ops(w, x.flatten(0, 1).numpy(), stride, padding, groups)
    assert layer_operations(Synapse("c", op, x)) == want


def _hooked_torch_counts(model: nn.Module, x: torch.Tensor) -> tuple[float, dict]:
    """What NeuroBench's hooks see, counted here its way: the activation modules' zero fraction, and
    every conv/linear run as a 0/1 copy (bias dropped) on a 0/1 copy of its input."""
    outs, ops = [], {"Effective_MACs": 0, "Effective_ACs": 0, "Dense": 0}

    def on_neuron(mod, inp, out):
        outs.append(out)

    def on_synapse(mod, inp, out):
        x_in = inp[0]
        spiking = bool(((x_in == 0) | (x_in == 1) | (x_in == -1)).all())
        binary = (x_in != 0).to(torch.float32)
        fn = F.linear if isinstance(mod, nn.Linear) else (
            lambda z, w: F.conv2d(z, w, None, mod.stride, mod.padding, 1, mod.groups))
        ops["Effective_ACs" if spiking else "Effective_MACs"] += int(fn(binary, (mod.weight != 0).float()).sum())
        ops["Dense"] += int(fn(torch.ones_like(binary), torch.ones_like(mod.weight)).sum())

    for mod in model.modules():
        if isinstance(mod, (MultiStepLIF, MultiStepTernary, nn.ReLU)):
            mod.register_forward_hook(on_neuron)
        elif isinstance(mod, (nn.Conv2d, nn.Linear)):
            mod.register_forward_hook(on_synapse)
    with torch.no_grad():
        model(x)
    total = sum(o.numel() for o in outs)
    sparsity = (total - sum(int(torch.count_nonzero(o)) for o in outs)) / total
    return sparsity, {k: v / x.shape[0] for k, v in ops.items()}


@pytest.mark.parametrize("key", sorted(SMALL))
def test_float_metrics_equal_counts_on_the_torch_model(key):
    model = small_model(key)
    x = small_input(model, batch=2)
    graph = lower(model)
    ours = float_neurobench_metrics(model, graph, x)
    sparsity, ops = _hooked_torch_counts(model, x)
    assert ours["ActivationSparsity"] == pytest.approx(sparsity, abs=1e-15)
    assert ours["SynapticOperations"] == ops


@pytest.mark.parametrize("key", sorted(SMALL))
def test_integer_invariants(key):
    model = small_model(key)
    x = small_input(model, batch=2)
    graph = lower(model)
    qg = quantize(graph, x)
    m = neurobench_metrics(qg, run_integer(qg, x), model)
    f = float_neurobench_metrics(model, graph, x)
    ops = m["SynapticOperations"]
    assert ops["Dense"] >= ops["Effective_MACs"] + ops["Effective_ACs"] > 0
    assert ops["Dense"] == f["SynapticOperations"]["Dense"]  # dense counts depend on shapes only
    assert 0 <= m["ActivationSparsity"] <= 1 and 0 <= m["ConnectionSparsity"] <= 1
    assert ops["Effective_MACs"] > 0  # the first conv reads the analog (or multi-event) input
    # 8-bit weights of 1 byte against float32's 4, and BN folded away: well under a third of the float bytes.
    assert m["Footprint"] < m["float_model"]["Footprint"] / 3
    assert m["float_model"] == {"Footprint": f["Footprint"], "ConnectionSparsity": f["ConnectionSparsity"]}
    neurons = sum(int(np.prod(qg.graph.nodes[n]["shape"])) for n in qg.lif_nodes)
    assert m["MembraneUpdates"] <= model.config.timesteps * (neurons + model.config.dim)  # + SDSA's K⊙V neurons


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_run_gives_the_cpu_metrics():
    model = small_model("sdsa")
    x = small_input(model, batch=2)
    qg = quantize(lower(model), x)
    assert neurobench_metrics(qg, run_integer(qg, x, device="cuda")) == neurobench_metrics(qg, run_integer(qg, x))
