"""Mapping: temporal blocks of B steps and core placement of a lowered network on a target.

Small steps, each testable alone (STYLE practice 7):
`layers.neuron_layers` (graph -> neuron layers) -> `temporal.temporal_partition` (blocks, buffers,
latency) -> `partition.partition` (layers over cores within every limit) -> `placement`
(in-order and traffic-aware, same signature). `map_model` runs them all and returns a
`MappingResult` of plain rows that the report prints as is.

>>> from statten_hw.mapping import map_model            # doctest: +SKIP
>>> result = map_model(model, "loihi2", block_size=2)   # doctest: +SKIP
>>> result.totals.cores, result.lower_bound.cores       # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import networkx as nx

from statten_hw.errors import ConfigError
from statten_hw.ir.graph import OP, timesteps
from statten_hw.targets import Target, load_target

from .layers import NeuronLayer, fan_out, neuron_layers
from .partition import (Core, LowerBound, Partition, check_core, layer_demand, lower_bound, min_cores,
                        partition)
from .placement import (DEFAULT_RATE, InOrderPlacement, Placement, TrafficAwarePlacement, core_traffic,
                        placement_cost)
from .temporal import BLOCK_MODES, LayerBuffers, Schedule, temporal_partition


@dataclass(frozen=True)
class CoreRow:
    """One core as the report prints it (position from the chosen placement)."""

    id: int
    chip: int
    x: int
    y: int
    layers: tuple[str, ...]
    neurons: int
    synapse_bytes: int
    state_bytes: int
    buffer_bytes: int
    fan_in: int
    fan_out: int


@dataclass(frozen=True)
class LayerRow:
    """One neuron layer: size, cores, memory (as placed: split units count their weights per core).

    ``buffer_bytes`` is as placed; ``qkv/accumulator/residual/block_bytes`` are the layer's buffers
    before the split, and ``split_bytes`` what the split adds to them (a head's accumulators copied to
    every core holding part of it, each slice rounded up to whole bytes)."""

    name: str
    kind: str
    neurons: int
    cores: tuple[int, ...]
    min_cores: int
    fan_in: int
    fan_out: int
    synapse_count: int
    synapse_bytes: int
    state_bytes: int
    buffer_bytes: int
    qkv_bytes: int
    accumulator_bytes: int
    residual_bytes: int
    block_bytes: int
    pre_pool_bytes: int
    start_step: int
    delay_steps: int
    output: str  # what its neurons emit: "binary" | "ternary" spikes or "graded" values (`NeuronLayer.output`)

    @property
    def split_bytes(self) -> int:
        return self.buffer_bytes - (self.qkv_bytes + self.accumulator_bytes + self.residual_bytes + self.block_bytes
                                    + self.pre_pool_bytes)


@dataclass(frozen=True)
class Totals:
    chips: int
    cores: int
    neurons: int
    synapse_bytes: int
    state_bytes: int
    buffer_bytes: int


@dataclass(frozen=True)
class MappingResult:
    """Everything `map_model` decided; ``traffic`` maps a placement name to its Σ traffic × hops."""

    target: Target
    block_size: int
    schedule: Schedule
    layers: tuple[LayerRow, ...]
    cores: tuple[CoreRow, ...]
    totals: Totals
    lower_bound: LowerBound
    placement: str
    traffic: dict[str, float]
    rates: dict[str, float]
    violations: tuple[tuple[int, str, int, int], ...] = ()
    #: ``(core id, layer, neurons)`` per layer slice, in core order: a layer's neurons (flattened in its
    #: own shape's order) fill its slices one after another, so slice k holds the next ``neurons`` of them.
    pieces: tuple[tuple[int, str, int], ...] = ()
    #: bits one weight takes in synaptic memory (`Precision.stored_weight_bits`)
    weight_bits: int = 8


def _graph(model) -> nx.DiGraph:
    if isinstance(model, nx.DiGraph):
        return model
    from statten_hw.ir import lower
    return lower(model)


def graph_block_size(g: nx.DiGraph) -> tuple[str, int] | None:
    """``(node, B)`` of the first attention node of ``g`` that groups B steps; None if none does."""
    return next(((name, d[OP].block_size) for name, d in g.nodes(data=True)
                 if d[OP].KIND == "attention" and d[OP].mode in BLOCK_MODES), None)


def _check_graph_blocks(g: nx.DiGraph, block_size: int) -> None:
    """The buffers and latency of B are those of attention that computes blocks of B: a graph lowered
    for another B would be reported for a block size it does not compute."""
    found = graph_block_size(g)
    if found and found[1] != block_size:
        raise ConfigError(f"block size B = {block_size} does not match the graph: its attention {found[0]!r} "
                          f"computes blocks of {found[1]} (lower the model with block_size={block_size})")


def map_model(model, target: Target | str | os.PathLike, block_size: int,
              rates: Mapping[str, float] | None = None, placement: Placement | None = None,
              weight_bits: int | None = None) -> MappingResult:
    """Map ``model`` (an ``nn.Module`` or an already lowered graph) on ``target`` with blocks of B.

    ``rates``: firing rate per layer name for the traffic estimate (`DEFAULT_RATE` otherwise).
    ``placement``: the strategy whose positions the cores get (traffic-aware by default); both
    strategies' traffic is always reported. ``weight_bits``: the quantized network's weight width,
    which sets the synapse memory where the target packs narrower weights (None: the target's width).
    Raises `MappingError` naming the layer and the limit.
    """
    target = target if isinstance(target, Target) else load_target(target)
    g = _graph(model)
    layers = neuron_layers(g)
    buffers, schedule = temporal_partition(layers, target, timesteps(g), block_size)
    _check_graph_blocks(g, block_size)
    fo = fan_out(layers)
    demands = [layer_demand(layer, buf, target, fo[layer.name], weight_bits) for layer, buf in zip(layers, buffers)]
    part = partition(demands, target)
    used_rates = {layer.name: float((rates or {}).get(layer.name, DEFAULT_RATE)) for layer in layers}
    traffic = core_traffic(layers, part, used_rates)
    n = len(part.cores)
    strategies = [InOrderPlacement(), TrafficAwarePlacement()]
    chosen = placement or strategies[1]
    positions = {s.name: s.place(n, traffic, target) for s in strategies}
    if chosen.name not in positions:
        positions[chosen.name] = chosen.place(n, traffic, target)
    costs = {name: placement_cost(pos, traffic, target) for name, pos in positions.items()}
    violations = tuple((c.id, *v) for c in part.cores for v in check_core(c, target))
    return MappingResult(
        target=target, block_size=block_size, schedule=schedule,
        layers=_layer_rows(layers, buffers, demands, part, target),
        cores=_core_rows(part.cores, positions[chosen.name]),
        totals=_totals(part, target), lower_bound=lower_bound(demands, target), placement=chosen.name,
        traffic=costs, rates=used_rates, violations=violations,
        weight_bits=target.precision.stored_weight_bits(weight_bits),
        pieces=tuple((c.id, p.layer, p.neurons) for c in part.cores for p in c.pieces))


def _layer_rows(layers: list[NeuronLayer], buffers: list[LayerBuffers], demands, part: Partition,
                target: Target) -> tuple[LayerRow, ...]:
    placed: dict[str, list[int]] = {layer.name: [0, 0, 0] for layer in layers}
    for core in part.cores:
        for p in core.pieces:
            row = placed[p.layer]
            row[0] += p.synapse_bytes
            row[1] += p.state_bytes
            row[2] += p.buffer_bytes
    return tuple(LayerRow(
        name=layer.name, kind=layer.kind, neurons=layer.neurons, cores=part.layer_cores[layer.name],
        min_cores=min_cores(d, target), fan_in=layer.fan_in, fan_out=d.fan_out, synapse_count=layer.synapse_count,
        synapse_bytes=placed[layer.name][0], state_bytes=placed[layer.name][1], buffer_bytes=placed[layer.name][2],
        qkv_bytes=buf.qkv_bytes, accumulator_bytes=buf.accumulator_bytes, residual_bytes=buf.residual_bytes,
        block_bytes=buf.block_bytes, pre_pool_bytes=buf.pre_pool_bytes, start_step=buf.start_step,
        delay_steps=buf.delay_steps,
        output=layer.output)
        for layer, buf, d in zip(layers, buffers, demands))


def _core_rows(cores: tuple[Core, ...], positions) -> tuple[CoreRow, ...]:
    return tuple(CoreRow(c.id, *positions[c.id], c.layers, c.neurons, c.synapse_bytes, c.state_bytes,
                         c.buffer_bytes, c.fan_in, c.fan_out) for c in cores)


def _totals(part: Partition, target: Target) -> Totals:
    cores = part.cores
    return Totals(chips=-(-len(cores) // target.cores_per_chip), cores=len(cores),
                  neurons=sum(c.neurons for c in cores), synapse_bytes=sum(c.synapse_bytes for c in cores),
                  state_bytes=sum(c.state_bytes for c in cores), buffer_bytes=sum(c.buffer_bytes for c in cores))


__all__ = ["CoreRow", "LayerRow", "MappingResult", "Totals", "graph_block_size", "map_model", "check_core", "neuron_layers",
           "temporal_partition", "partition", "InOrderPlacement", "TrafficAwarePlacement"]
