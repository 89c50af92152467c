"""Placement: the traffic-aware strategy never does worse than in-order; hop distances."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping_helpers import small_target
from statten_hw.mapping.layers import neuron_layers
from statten_hw.mapping.placement import (CHIP_CROSSING_HOPS, InOrderPlacement, TrafficAwarePlacement, core_traffic,
                                          hop_matrix, hops, placement_cost, slot_position)
from statten_hw.quant.quantize import QAdd
from statten_hw.simulator.event.owners import HOST

sys.path[:0] = [str(Path(__file__).parents[1] / "ir"), str(Path(__file__).parents[1] / "simulator" / "event")]
from sim_nets import small_deployment  # noqa: E402

MESH = {"mesh_x": 4, "mesh_y": 3, "chips_x": 2, "chips_y": 1, "max_chips": 2}


def test_slots_are_row_major_then_chip():
    t = small_target(mesh=MESH)
    assert [slot_position(s, t) for s in (0, 1, 4, 11, 12)] == [(0, 0, 0), (0, 1, 0), (0, 0, 1), (0, 3, 2),
                                                                 (1, 0, 0)]


def test_hops_add_a_penalty_per_chip_crossing():
    t = small_target(mesh=MESH)
    assert hops((0, 0, 0), (0, 3, 2), t) == 5
    # (0, 3, 0) -> (1, 0, 0): global x 3 -> 4 is one hop, plus one chip boundary.
    assert hops((0, 3, 0), (1, 0, 0), t) == 1 + CHIP_CROSSING_HOPS


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 20).flatmap(lambda n: st.tuples(
    st.just(n), st.dictionaries(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] < p[1]),
                                st.floats(0.01, 100.0), max_size=40))))
def test_traffic_aware_never_worse(case):
    n, traffic = case
    t = small_target(mesh=MESH)
    naive = InOrderPlacement().place(n, traffic, t)
    smart = TrafficAwarePlacement().place(n, traffic, t)
    assert len(set(smart)) == n, "two cores on one slot"
    assert placement_cost(smart, traffic, t) <= placement_cost(naive, traffic, t) + 1e-6
    assert TrafficAwarePlacement().place(n, traffic, t) == smart  # deterministic


def test_traffic_aware_pulls_a_chatty_pair_together():
    t = small_target(mesh=MESH)
    traffic = {(0, 11): 50.0, (0, 1): 1.0}  # core 11 starts at (0, 3, 2), 5 hops from core 0
    naive = InOrderPlacement().place(12, traffic, t)
    smart = TrafficAwarePlacement().place(12, traffic, t)
    assert placement_cost(smart, traffic, t) < placement_cost(naive, traffic, t)
    assert hops(smart[0], smart[11], t) == 1


def test_hop_matrix_is_hops_for_every_pair():
    t = small_target(mesh=MESH)
    positions = [slot_position(s, t) for s in range(2 * t.cores_per_chip)]
    matrix = hop_matrix(positions, t)
    assert matrix.tolist() == [[hops(a, b, t) for b in positions] for a in positions]



def _partition_of(mapping) -> SimpleNamespace:
    """The mapping's cores and their pieces (``mapping.pieces``), as `core_traffic` reads a `Partition`."""
    cores: dict[int, list] = {}
    for core, layer, neurons in mapping.pieces:
        cores.setdefault(core, []).append(SimpleNamespace(layer=layer, neurons=neurons))
    return SimpleNamespace(cores=[SimpleNamespace(id=c, pieces=p) for c, p in sorted(cores.items())])


@pytest.mark.parametrize("key", ["statten", "sdsa", "statten_mlp_res"])
def test_membrane_shortcuts_travel_from_the_cores_the_simulator_sends_them_from(key):
    """A membrane shortcut's graded values (and, with an MLP as wide as its input, the residual stream
    fc1_lif's dendrite computes and fc2_lif's reads) are sent by the cores that compute them. The event network
    finds those cores on its own (owners pulled back from each layer's neurons); each core it sends
    shortcut packets from must hold a layer the mapper names as the shortcut's source (and the network
    names that layer among the ones the layer receives from), and each core pair it sends them between
    must carry shortcut traffic in the mapper's estimate."""
    deployment = small_deployment(key)
    layers = neuron_layers(deployment.qgraph.float_graph)
    by_name = {layer.name: layer for layer in layers}
    layer_cores: dict[str, set[int]] = {}
    for core, layer, _ in deployment.mapping.pieces:
        layer_cores.setdefault(layer, set()).add(core)
    part = _partition_of(deployment.mapping)
    with_shortcuts = core_traffic(layers, part)
    without = core_traffic([replace(layer, shortcut_sources=()) for layer in layers], part)
    shortcuts = [p for p in deployment.event_network.projections  # graded values into an add
                 if isinstance(deployment.qgraph.qop(p.target), QAdd) and not p.spiking]
    assert shortcuts, "no membrane shortcut in this network"
    pairs = 0
    for p in shortcuts:
        senders = {src for src, _ in by_name[p.layer].shortcut_sources}
        assert senders <= set(deployment.event_network.sources[p.layer]), p.layer  # whom the timeline waits for
        named = set().union(*(layer_cores[src] for src in senders))
        for sender in (core for core, _ in p.senders if core != HOST):
            assert sender in named, (p.layer, p.source, sender)
            for key_pair in {(min(sender, r), max(sender, r)) for r in map(int, p.dst_cores) if r != sender}:
                assert with_shortcuts[key_pair] > without.get(key_pair, 0.0), (p.layer, key_pair)
                pairs += 1
    assert pairs, "every shortcut stayed on its own core: nothing shown"
