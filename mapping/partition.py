"""Split every neuron layer over cores so that no core passes any per-core limit of the target.

Per-core limits (``[core]`` of the target) and how a core's use of each is counted:

* ``neurons``: neurons on the core, ≤ ``neurons_per_core``;
* ``synapse bytes``: the kernels (weight rows) of every unit with a neuron on the core, ≤
  ``synapse_bytes_per_core`` (a unit split over two cores stores its weights on both);
* ``buffer bytes``: state (``ceil(n·state_bits/8)`` per layer slice) plus buffers (per-neuron bits,
  rounded up per slice, plus the accumulators of every head on the core), ≤ ``buffer_bytes_per_core``:
  the target's buffer memory holds "spikes, accumulators and state held across steps";
* ``fan-in``/``fan-out`` per neuron ≤ ``fan_in``/``fan_out``: the axons the core's widest neuron needs.
  The target's limits count a core's distinct inputs and routes, the union over its neurons, which
  only the placed network gives: it is at least the widest neuron's, so this check is a lower bound (a
  core it passes may still need more input axons than the target has), not a conservative one.
  `statten_hw.simulator.event.axons` counts them exactly after placement, and ``simulate`` warns.

Packing: layers in topological order, units in order, next-fit: a core is filled with as many
neurons of the current unit as fit (all limits), then the next core is opened. Consecutive small
layers share a core. The fewest cores one layer alone needs, ``max over resources of
ceil(demand / cap)``, is `min_cores`; `lower_bound` is the same over the whole network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from statten_hw.errors import MappingError
from statten_hw.targets.schema import Target

from .layers import NeuronLayer
from .temporal import LayerBuffers


@dataclass(frozen=True)
class LayerDemand:
    """What one layer asks of cores: units of ``unit_neurons`` neurons, per-unit and per-neuron costs."""

    name: str
    neurons: int
    units: int
    unit_neurons: int
    unit_synapse_bytes: int
    unit_accumulator_bits: int
    state_bits: int
    buffer_bits: int
    fan_in: int
    fan_out: int

    def usage(self, neurons: int, unit_pieces: int) -> tuple[int, int, int]:
        """(synapse bytes, state bytes, buffer bytes) of a slice of ``neurons`` over ``unit_pieces`` units."""
        return (unit_pieces * self.unit_synapse_bytes, math.ceil(neurons * self.state_bits / 8),
                math.ceil(neurons * self.buffer_bits / 8) + math.ceil(unit_pieces * self.unit_accumulator_bits / 8))

    @property
    def synapse_bytes(self) -> int:
        return self.units * self.unit_synapse_bytes

    @property
    def memory_bytes(self) -> int:
        """State plus buffer bytes with no unit split."""
        _, state, buf = self.usage(self.neurons, self.units)
        return state + buf


def layer_demand(layer: NeuronLayer, buffers: LayerBuffers, target: Target, fan_out: int,
                 weight_bits: int | None = None) -> LayerDemand:
    """What ``layer`` asks of ``target``'s cores; its weights at the width a ``weight_bits``-bit network
    is stored at (`Precision.stored_weight_bits`; the target's own width when None)."""
    stored = target.precision.stored_weight_bits(weight_bits)
    return LayerDemand(layer.name, layer.neurons, layer.units, layer.unit_neurons,
                       layer.weight_bytes_per_unit(stored), buffers.accumulator_bits_per_unit,
                       target.precision.state_bits, buffers.bits_per_neuron, layer.fan_in, fan_out)


@dataclass(frozen=True)
class Piece:
    """The slice of one layer on one core."""

    layer: str
    neurons: int
    unit_pieces: int
    synapse_bytes: int
    state_bytes: int
    buffer_bytes: int
    fan_in: int
    fan_out: int


def make_piece(d: LayerDemand, neurons: int, unit_pieces: int) -> Piece:
    syn, state, buf = d.usage(neurons, unit_pieces)
    return Piece(d.name, neurons, unit_pieces, syn, state, buf, d.fan_in, d.fan_out)


@dataclass(frozen=True)
class Core:
    """One core: the layer slices it holds, in placement order."""

    id: int
    pieces: tuple[Piece, ...]

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(p.layer for p in self.pieces)

    @property
    def neurons(self) -> int:
        return sum(p.neurons for p in self.pieces)

    @property
    def synapse_bytes(self) -> int:
        return sum(p.synapse_bytes for p in self.pieces)

    @property
    def state_bytes(self) -> int:
        return sum(p.state_bytes for p in self.pieces)

    @property
    def buffer_bytes(self) -> int:
        return sum(p.buffer_bytes for p in self.pieces)

    @property
    def fan_in(self) -> int:
        return max((p.fan_in for p in self.pieces), default=0)

    @property
    def fan_out(self) -> int:
        return max((p.fan_out for p in self.pieces), default=0)


def core_usage(core: Core, target: Target) -> list[tuple[str, int, int]]:
    """(quantity, used, limit) for every per-core resource; `check_core` keeps the ones over."""
    c = target.core
    return [("neurons", core.neurons, c.neurons_per_core),
            ("synapse bytes", core.synapse_bytes, c.synapse_bytes_per_core),
            ("buffer bytes (state + buffers)", core.state_bytes + core.buffer_bytes, c.buffer_bytes_per_core),
            ("fan-in per neuron", core.fan_in, c.fan_in),
            ("fan-out per neuron", core.fan_out, c.fan_out)]


def check_core(core: Core, target: Target) -> list[tuple[str, int, int]]:
    """Every limit ``core`` passes, as (quantity, used, limit); empty when it fits."""
    return [(q, used, cap) for q, used, cap in core_usage(core, target) if used > cap]


def min_cores(d: LayerDemand, target: Target) -> int:
    """Fewest cores layer ``d`` alone needs: max over resources of ceil(demand / cap)."""
    c = target.core
    return max(math.ceil(d.neurons / c.neurons_per_core), math.ceil(d.synapse_bytes / c.synapse_bytes_per_core),
               math.ceil(d.memory_bytes / c.buffer_bytes_per_core) if c.buffer_bytes_per_core else 1, 1)


@dataclass(frozen=True)
class LowerBound:
    """Cores no mapping can go below: max over resources of ceil(total demand / per-core capacity)."""

    cores: int
    resources: tuple[tuple[str, int, int, int], ...]  # (resource, total demand, per-core cap, cores)


def lower_bound(demands: list[LayerDemand], target: Target) -> LowerBound:
    c = target.core
    rows = []
    for name, demand, cap in (("neurons", sum(d.neurons for d in demands), c.neurons_per_core),
                              ("synapse bytes", sum(d.synapse_bytes for d in demands), c.synapse_bytes_per_core),
                              ("buffer bytes (state + buffers)", sum(d.memory_bytes for d in demands),
                               c.buffer_bytes_per_core)):
        rows.append((name, demand, cap, math.ceil(demand / cap) if cap else 0))
    return LowerBound(max(1, max(r[3] for r in rows)), tuple(rows))


@dataclass(frozen=True)
class Partition:
    """Cores in packing order and, per layer, the ids of the cores holding it."""

    cores: tuple[Core, ...]
    layer_cores: dict[str, tuple[int, ...]]


def _fits(base: list[int], usage: tuple[int, int, int], neurons: int, target: Target) -> bool:
    """Whether a slice of ``neurons`` using ``usage`` (synapse, state, buffer bytes) fits beside ``base``."""
    c = target.core
    syn, state, buf = usage
    return (base[0] + neurons <= c.neurons_per_core and base[1] + syn <= c.synapse_bytes_per_core
            and base[2] + state + buf <= c.buffer_bytes_per_core)


def _largest(d: LayerDemand, base: list[int], open_n: int, open_u: int, remaining: int, target: Target) -> int:
    """Most neurons (≤ remaining) of the current unit that still fit on the open core (binary search)."""
    hi = min(remaining, target.core.neurons_per_core - base[0] - open_n)
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(base, d.usage(open_n + mid, open_u), open_n + mid, target):
            lo = mid
        else:
            hi = mid - 1
    return lo


def partition(demands: list[LayerDemand], target: Target) -> Partition:
    """Next-fit packing of ``demands`` (module docstring); raises `MappingError` naming layer and limit."""
    cores: list[list[Piece]] = []
    closed: list[Piece] = []  # pieces already on the open core
    base = [0, 0, 0]  # neurons, synapse bytes, memory bytes of ``closed``

    def close_core():
        nonlocal closed, base
        cores.append(closed)
        closed, base = [], [0, 0, 0]

    for d in demands:
        alone = check_core(Core(-1, (make_piece(d, 1, 1),)), target)
        if alone:
            raise MappingError(d.name, *alone[0])
        open_n = open_u = 0
        for _ in range(d.units):
            remaining, new_unit = d.unit_neurons, True
            while remaining:
                k = _largest(d, base, open_n, open_u + new_unit, remaining, target)
                if k == 0:
                    if open_n:
                        piece = make_piece(d, open_n, open_u)
                        closed.append(piece)
                    elif not closed:  # cannot happen after the check above; guard against a silent loop
                        raise MappingError(d.name, "neurons", 1, target.core.neurons_per_core)
                    close_core()
                    open_n = open_u = 0
                    new_unit = True  # the unit goes on on a fresh core, with its own copy of the weights
                    continue
                open_n += k
                open_u += new_unit
                new_unit = False
                remaining -= k
        if open_n:
            piece = make_piece(d, open_n, open_u)
            closed.append(piece)
            base = [base[0] + piece.neurons, base[1] + piece.synapse_bytes,
                    base[2] + piece.state_bytes + piece.buffer_bytes]
    if closed:
        cores.append(closed)

    cap = target.mesh.chip_limit * target.cores_per_chip
    if len(cores) > cap:
        raise MappingError(cores[cap][0].layer, "cores in the system", len(cores), cap)
    result = tuple(Core(i, tuple(pieces)) for i, pieces in enumerate(cores))
    layer_cores: dict[str, list[int]] = {d.name: [] for d in demands}
    for core in result:
        for p in core.pieces:
            layer_cores[p.layer].append(core.id)
    return Partition(result, {k: tuple(v) for k, v in layer_cores.items()})


__all__ = ["Core", "LayerDemand", "LowerBound", "Partition", "Piece", "check_core", "core_usage", "layer_demand",
           "lower_bound", "make_piece", "min_cores", "partition"]
