"""The axons each core needs (`statten_hw.simulator.event.axons`), against routes enumerated by hand
from the convolutions' geometry and the mapping's neuron order, and in the simulation report."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).parents[2] / "ir"))
sys.path.insert(0, str(Path(__file__).parent))
from ir_nets import SMALL, small_input  # noqa: E402
from sanafe_crossval import deploy, random_csnn, random_events  # noqa: E402
from sim_nets import small_deployment, tiny_target  # noqa: E402

from statten_hw.quant.quantize import QConv2d  # noqa: E402
from statten_hw.reports.simulation import axon_problem  # noqa: E402
from statten_hw.simulator import simulate  # noqa: E402
from statten_hw.simulator.event.axons import core_axons  # noqa: E402

SIZE = 8


def _owners(mapping, shapes) -> dict[str, np.ndarray]:
    """Core of each neuron: the mapping's pieces hand out each layer's neurons in flattened order."""
    flat: dict[str, list[int]] = {}
    for core, layer, neurons in mapping.pieces:
        flat.setdefault(layer, []).extend([core] * neurons)
    return {layer: np.array(ids).reshape(shapes[layer]) for layer, ids in flat.items()}


def _conv_routes(op: QConv2d, source: str, in_shape, dst_owner: np.ndarray) -> set:
    """(source, input element, destination core) of every weight of every output neuron, loop by loop."""
    routes = set()
    C_in, H, W = in_shape
    (sh, sw), (ph, pw), (kh, kw) = op.stride, op.padding, op.weight.shape[2:]
    C_out, Ho, Wo = dst_owner.shape
    for co, y, x in itertools.product(range(C_out), range(Ho), range(Wo)):
        for ci, dy, dx in itertools.product(range(C_in), range(kh), range(kw)):
            iy, ix = y * sh - ph + dy, x * sw - pw + dx
            if 0 <= iy < H and 0 <= ix < W:
                routes.add((source, (ci, iy, ix), int(dst_owner[co, y, x])))
    return routes


def _csnn_routes(d) -> set:
    """input -> conv1 -> lif1 -> conv2 -> lif2 -> tokens (channels last) -> linear head: the head's
    neurons of token y·W + x read every channel of lif2 at (y, x)."""
    g, shapes = d.qgraph.graph, {n: tuple(d.qgraph.float_graph.nodes[n]["shape"]) for n in d.qgraph.graph}
    owner = _owners(d.mapping, shapes)
    routes = _conv_routes(d.qgraph.qop("conv1"), "input", shapes["input"], owner["lif1"])
    routes |= _conv_routes(d.qgraph.qop("conv2"), "lif1", shapes["lif1"], owner["lif2"])
    C, H, W = shapes["lif2"]
    for c, y, x in itertools.product(range(C), range(H), range(W)):
        for core in set(owner["head"][y * W + x].tolist()):
            routes.add(("lif2", (c, y, x), int(core)))
    assert set(g) >= {"conv1", "conv2", "head"}
    return routes, owner


@pytest.mark.parametrize("neurons", [100, 300, 2000])
def test_axons_equal_the_routes_enumerated_by_hand(neurons):
    d = deploy(random_csnn(seed=1, size=SIZE), random_events(4, (2, SIZE, SIZE)), tiny_target(neurons=neurons))
    routes, owner = _csnn_routes(d)
    K = len(d.mapping.cores)
    inputs, outputs = np.zeros(K, int), np.zeros(K, int)
    for source, element, core in routes:
        inputs[core] += 1
        if source != "input":  # the host sends the input
            outputs[owner[source][element]] += 1
    axons = core_axons(d.event_network)
    assert K > 1 or neurons == 2000
    np.testing.assert_array_equal(axons.inputs, inputs)
    np.testing.assert_array_equal(axons.outputs, outputs)


def test_cores_over_the_limits_are_named():
    d = deploy(random_csnn(seed=1, size=SIZE), random_events(4, (2, SIZE, SIZE)), tiny_target(neurons=300))
    axons = core_axons(d.event_network)
    limit = int(np.sort(axons.inputs)[-2])  # every core but the busiest fits
    busiest = int(np.argmax(axons.inputs))
    assert axons.over(limit, int(axons.outputs.max())) == [(busiest, "input axons", int(axons.inputs.max()), limit)]
    assert axons.over(int(axons.inputs.max()), int(axons.outputs.max())) == []


@pytest.mark.parametrize("key", sorted(SMALL))
def test_report_states_the_axons_and_warns_past_the_limit(key):
    """Every (source element, core) route is one input axon there and one output axon at its sender
    (the host's input has no sender): the report's per-core counts add up so, and a core past the
    target's limit is named."""
    d = small_deployment(key)
    x = small_input(d.model, 2, seed=3)
    report = simulate(d, x).report
    cores, axons = report["cores"], report["simulation"]["axons"]
    host_routes = sum(int((p.counters[:, len(p.dst_cores):2 * len(p.dst_cores)] > 0).sum())
                      for p in d.event_network.projections if p.source == d.qgraph.input_node)
    assert sum(c["input_axons"] for c in cores) == sum(c["output_axons"] for c in cores) + host_routes
    assert axons["max_input_axons"] == max(c["input_axons"] for c in cores)
    fan_in = d.target.core.fan_in
    over = [c["id"] for c in cores if c["input_axons"] > fan_in or c["output_axons"] > d.target.core.fan_out]
    assert sorted({o["core"] for o in axons["over"]}) == over
    assert bool(axon_problem(axons)) == bool(over)
