"""Partition: property tests on random layer demands and random per-core limits."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping_helpers import small_target
from statten_hw.errors import MappingError
from statten_hw.mapping.partition import (Core, LayerDemand, check_core, lower_bound, make_piece, min_cores,
                                          partition)

demand = st.builds(
    LayerDemand, name=st.just(""), neurons=st.just(0), units=st.integers(1, 12), unit_neurons=st.integers(1, 300),
    unit_synapse_bytes=st.integers(0, 400), unit_accumulator_bits=st.integers(0, 200),
    state_bits=st.integers(1, 32), buffer_bits=st.integers(0, 40), fan_in=st.integers(1, 600),
    fan_out=st.integers(1, 600))

limits = st.fixed_dictionaries({
    "neurons_per_core": st.integers(1, 2048), "synapse_bytes_per_core": st.integers(1, 4096),
    "buffer_bytes_per_core": st.integers(1, 8192), "fan_in": st.integers(1, 1024), "fan_out": st.integers(1, 1024)})


def _named(raw: list[LayerDemand]) -> list[LayerDemand]:
    from dataclasses import replace
    return [replace(d, name=f"L{i}", neurons=d.units * d.unit_neurons) for i, d in enumerate(raw)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(demand, min_size=1, max_size=6), limits, st.sampled_from(["step", "layer"]))
def test_partition_properties(raw, core_limits, execution):
    demands = _named(raw)
    target = small_target(execution, mesh={"max_chips": 0, "chips_x": 64, "chips_y": 64}, **core_limits)
    try:
        part = partition(demands, target)
    except MappingError as err:
        # Only legitimate when one neuron of that layer alone, on an empty core, breaks the named limit.
        d = next(d for d in demands if d.name == err.layer)
        alone = check_core(Core(-1, (make_piece(d, 1, 1),)), target)
        assert alone and alone[0] == (err.limit, err.used, err.cap)
        return
    # Every neuron on exactly one core: per layer, the slices add up to the layer.
    placed = {d.name: 0 for d in demands}
    unit_pieces = {d.name: 0 for d in demands}
    for core in part.cores:
        assert check_core(core, target) == [], f"core {core.id} over a limit: {check_core(core, target)}"
        assert core.pieces, "no empty cores"
        for p in core.pieces:
            placed[p.layer] += p.neurons
            unit_pieces[p.layer] += p.unit_pieces
    assert placed == {d.name: d.neurons for d in demands}
    # Synapse bytes conserved: every unit's weights once per core slice of it, nothing lost or invented.
    total = sum(c.synapse_bytes for c in part.cores)
    assert total == sum(unit_pieces[d.name] * d.unit_synapse_bytes for d in demands)
    assert total >= sum(d.synapse_bytes for d in demands)
    for d in demands:
        assert unit_pieces[d.name] >= d.units
        if unit_pieces[d.name] == d.units:  # no unit split: exactly the layer's own weights
            assert sum(p.synapse_bytes for c in part.cores for p in c.pieces if p.layer == d.name) == d.synapse_bytes
        assert len(part.layer_cores[d.name]) >= 1
    assert len(part.cores) >= lower_bound(demands, target).cores


def test_min_cores_is_max_over_resources():
    d = LayerDemand("L", neurons=1000, units=10, unit_neurons=100, unit_synapse_bytes=300,
                    unit_accumulator_bits=0, state_bits=8, buffer_bits=0, fan_in=4, fan_out=4)
    t = small_target(neurons_per_core=400, synapse_bytes_per_core=1000, buffer_bytes_per_core=10_000)
    # neurons ceil(1000/400) = 3; synapses ceil(3000/1000) = 3; memory ceil(1000/10000) = 1.
    assert min_cores(d, t) == 3
    t = small_target(neurons_per_core=400, synapse_bytes_per_core=600, buffer_bytes_per_core=10_000)
    assert min_cores(d, t) == 5  # ceil(3000 / 600)


def test_check_core_returns_every_violation():
    d = LayerDemand("L", neurons=10, units=1, unit_neurons=10, unit_synapse_bytes=50, unit_accumulator_bits=0,
                    state_bits=8, buffer_bits=0, fan_in=30, fan_out=2)
    t = small_target(neurons_per_core=5, synapse_bytes_per_core=40, buffer_bytes_per_core=100, fan_in=20, fan_out=4)
    quantities = [q for q, _, _ in check_core(Core(0, (make_piece(d, 10, 1),)), t)]
    assert quantities == ["neurons", "synapse bytes", "fan-in per neuron"]


def test_split_unit_copies_its_weights():
    # One conv channel of 10 neurons, 4 per core: 3 cores, the 50-byte kernel on each.
    d = LayerDemand("L", neurons=10, units=1, unit_neurons=10, unit_synapse_bytes=50, unit_accumulator_bits=0,
                    state_bits=8, buffer_bits=0, fan_in=1, fan_out=1)
    part = partition([d], small_target(neurons_per_core=4))
    assert [c.neurons for c in part.cores] == [4, 4, 2]
    assert [c.synapse_bytes for c in part.cores] == [50, 50, 50]


def test_too_many_cores_names_the_layer():
    d = LayerDemand("big", neurons=100, units=100, unit_neurons=1, unit_synapse_bytes=0, unit_accumulator_bits=0,
                    state_bits=8, buffer_bits=0, fan_in=1, fan_out=1)
    t = small_target(neurons_per_core=10, mesh={"mesh_x": 2, "mesh_y": 2, "chips_x": 1, "chips_y": 1, "max_chips": 1})
    with pytest.raises(MappingError, match="'big'.*cores in the system needs 10, limit is 4"):
        partition([d], t)
