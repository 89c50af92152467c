"""map_model on the official STAtten checkpoint for the built-in chips."""
from __future__ import annotations

import math

import pytest

from conftest import official_checkpoint
from mapping_helpers import statten_graph
from statten_hw import load_checkpoint
from statten_hw.errors import ConfigError, InputError
from statten_hw.ir import lower
from statten_hw.mapping import map_model
from statten_hw.targets import load_target


@pytest.fixture(scope="module", params=["loihi2", "layerwise"])
def mapped(request):
    return request.param, map_model(statten_graph(), request.param, block_size=2)


def test_every_neuron_placed_and_no_core_over_a_limit(mapped):
    name, r = mapped
    assert r.violations == ()
    assert sum(c.neurons for c in r.cores) == sum(layer.neurons for layer in r.layers) == r.totals.neurons
    for layer in r.layers:
        assert layer.cores and all(layer.name in r.cores[i].layers for i in layer.cores)
    positions = {(c.chip, c.x, c.y) for c in r.cores}
    assert len(positions) == len(r.cores)
    t = load_target(name)
    assert all(0 <= c.x < t.mesh.mesh_x and 0 <= c.y < t.mesh.mesh_y for c in r.cores)


def test_core_count_within_ten_percent_of_lower_bound(mapped):
    _, r = mapped
    assert r.lower_bound.cores <= r.totals.cores <= math.floor(1.1 * r.lower_bound.cores)


def test_traffic_aware_beats_in_order(mapped):
    name, r = mapped
    assert r.traffic["traffic-aware"] <= r.traffic["in-order"]
    if name == "loihi2":  # 18 cores over three mesh rows: the row wrap-arounds can be shortened
        assert r.traffic["traffic-aware"] < r.traffic["in-order"]


def test_rates_scale_the_spike_traffic_and_leave_the_graded_shortcuts():
    """Spike traffic is linear in the firing rates; a membrane shortcut's graded values travel at every
    step whatever the rates: traffic(0.2) - traffic(0.1) = traffic(0.1) - traffic(0), and the silent
    network (rates 0) still carries its shortcuts."""
    base = map_model(statten_graph(), "loihi2", 2)
    traffic = {rate: map_model(statten_graph(), "loihi2", 2,
                               rates={n.name: rate for n in base.layers}).traffic["in-order"]
               for rate in (0.0, 0.1, 0.2)}
    assert traffic[0.1] == pytest.approx(base.traffic["in-order"])  # 0.1 is the default
    assert traffic[0.2] - traffic[0.1] == pytest.approx(traffic[0.1] - traffic[0.0])
    assert 0 < traffic[0.0] < traffic[0.1]


def test_block_size_must_divide_t():
    with pytest.raises(InputError, match="block size B = 3 must be a positive divisor of T = 4"):
        map_model(statten_graph(), "loihi2", 3)


@pytest.mark.parametrize("block", [1, 4])
def test_a_graph_lowered_for_another_block_size_is_refused(block):
    """The graph's attention computes blocks of 2: its buffers and latency at B = 1 or 4 would describe
    a network that does not exist."""
    with pytest.raises(ConfigError, match=f"B = {block} does not match the graph.*blocks of 2"):
        map_model(statten_graph(), "loihi2", block)


def test_step_by_step_attention_adds_no_latency():
    """SDT's SDSA attends within one step: latency T whatever B, and no block attention layer."""
    r = map_model(load_checkpoint(official_checkpoint("sdt_cifar_t4"), block_size=2), "loihi2", 2)
    assert (r.schedule.latency_steps, r.schedule.attention_layers) == (4, 0)
    assert all(layer.residual_bytes == 0 for layer in r.layers)


def _weight_rows_held(graph, layer, first: int, count: int, bits: int) -> int:
    """Synapse bytes a core needs for neurons ``first .. first+count-1`` of ``layer``, counted from the
    weights themselves: one row (a conv's kernel of one output channel, a linear's row of one output
    feature) per distinct output channel or feature among those neurons, ``bits`` per weight, rounded up
    to whole bytes per row. Channel-major ``[C, H, W]``: neuron i is channel ``i // (H·W)``; tokens
    ``[N, C]``: neuron i is feature ``i % C``."""
    shape = layer.shape
    neurons = range(first, first + count)
    rows = {i % shape[1] for i in neurons} if len(shape) == 2 else {i // math.prod(shape[1:]) for i in neurons}
    total = 0
    for synapse in layer.synapses:
        weight = graph.nodes[synapse]["op"].weight
        total += len(rows) * math.ceil(math.prod(weight.shape[1:]) * bits / 8)
    return total


@pytest.mark.parametrize("neurons_per_core", [48, 1024])
def test_every_core_holds_the_weight_rows_of_its_neurons(neurons_per_core):
    """Per core, the mapper's synapse bytes cover the rows its neurons read, counted from the weights.
    Spikformer's token layers run token by token, so consecutive neurons need different rows: they
    were charged as if a feature's N neurons sat together (one row per N neurons, e.g. 128 B where
    1,024 B were needed, and over-full cores went unreported). Where every token-layer part on a core
    has at least C neurons, the two counts are equal."""
    from mapping_helpers import small_target

    graph = lower(load_checkpoint(official_checkpoint("spikformer_cifar_t4")))
    target = small_target(neurons_per_core=neurons_per_core)
    r = map_model(graph, target, block_size=1)
    held, partial = _rows_held_per_core(graph, r, target.precision.weight_bits)
    short = [(c.id, c.synapse_bytes, held[c.id]) for c in r.cores if c.synapse_bytes < held[c.id]]
    assert not short, f"cores charged fewer synapse bytes than their neurons' weight rows: {short[:5]}"
    assert all(c.synapse_bytes == held[c.id] for c in r.cores if c.id not in partial)


def _rows_held_per_core(graph, result, bits: int) -> tuple[dict[int, int], set[int]]:
    """Per core, `_weight_rows_held` over its slices; and the cores holding a token layer's slice of
    fewer than C neurons (the mapper charges every row there: an over-count it states)."""
    from statten_hw.mapping.layers import neuron_layers

    layers = {layer.name: layer for layer in neuron_layers(graph)}
    held, start, partial = {}, {}, set()
    for core, name, count in result.pieces:
        first, shape = start.get(name, 0), layers[name].shape
        start[name] = first + count
        held[core] = held.get(core, 0) + _weight_rows_held(graph, layers[name], first, count, bits)
        if len(shape) == 2 and count < shape[1]:
            partial.add(core)
    assert any(len(layers[name].shape) == 2 and layers[name].synapses for _, name, _ in result.pieces)
    return held, partial


# (target, the network's weight bits, bits per stored weight): Loihi 2 stores 1-8 bit weights at their
# own width (loihi2.toml, [L2]); layerwise has fixed 8-bit slots and paper45nm 32-bit floats; a network
# wider than the slots takes its own width; an unquantized network (None) the target's.
STORED_WIDTHS = [("loihi2", 4, 4), ("loihi2", 2, 2), ("loihi2", None, 8), ("loihi2", 12, 12),
                 ("layerwise", 4, 8), ("layerwise", 16, 16), ("paper45nm", 8, 32)]


@pytest.mark.parametrize("target_name, network_bits, stored", STORED_WIDTHS)
def test_synapse_memory_takes_the_width_the_target_stores(target_name, network_bits, stored):
    graph = lower(load_checkpoint(official_checkpoint("spikformer_cifar_t4")))
    r = map_model(graph, target_name, block_size=1, weight_bits=network_bits)
    held, partial = _rows_held_per_core(graph, r, stored)
    assert r.weight_bits == stored
    assert all(c.synapse_bytes == held[c.id] for c in r.cores if c.id not in partial)
    assert r.totals.synapse_bytes == sum(c.synapse_bytes for c in r.cores)
