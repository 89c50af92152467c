"""The event network: every projection of the placed integer graph, with senders and receivers.

A *projection* carries the events of one node (its nonzero output elements at one step: spikes, or
graded values for the input, membrane shortcuts and residual sums) into one dendrite node of a neuron
layer: a conv/linear (weighted synapses), an attention node (q, k, v into the block buffer) or an add
(element by element). It is found by walking back from each layer's neurons through the ops computed
on the layer's own cores (`owners`), stopping at the nodes whose values arrive from elsewhere: other
layers, the input, a membrane shortcut, and a sum an earlier layer's walk already computes on its own
cores (a residual stream that two layers' dendrites read). Each event is sent as one packet to every
core holding at least one of its targets (its *coverage*); each target it reaches is one synaptic
operation on the target's core. Both are linear in the events, so a projection keeps them per input
element and destination core (``counters``): an engine counts a step's events with one product per
sending core (the hops of the packets to each destination core follow from the hop matrix).

One packet per event and destination core, however many projections of the source end there (a
STAtten block's shortcut spikes feed its q, k and v convolutions, often on the same cores): the
receiving core fans the event out to all of its synapses, as SANA-FE counts it and as Loihi's
routing sends it (`_share_packets`). Attention q/k/v writes are not shared: each is its own buffer write.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import networkx as nx
import numpy as np
import torch

from statten_hw.errors import GraphError
from statten_hw.ir.graph import PORT, SHAPE, topological_order
from statten_hw.mapping.layers import value_bits
from statten_hw.quant.execute import exact_dtype
from statten_hw.quant.quantize import QAdd, QAttention, QConv2d, QFlatten, QInput, QLinear, QMaxPool2d, QMul, QOP, QOutput

from .owners import HOST, layer_owners, pull_back, push_forward
from .synapses import (AttentionSynapses, ConvSynapses, ElementwiseSynapses, LinearSynapses, Synapses,
                       fan_out)

_SPIKE_PRESERVING = (QMaxPool2d, QFlatten)


@dataclass(frozen=True, eq=False)
class Projection:
    """Events of ``source`` into ``target`` (a dendrite node of ``layer``); see the module docstring."""

    layer: str
    source: str
    target: str
    port: str
    synapses: Synapses
    origin: np.ndarray  # [in elements] sending core per input element (HOST for the input)
    owner: np.ndarray  # [out elements] core per target element
    spiking: bool  # binary/ternary events (accumulates) or graded ones (multiply-accumulates)
    dst_cores: np.ndarray  # the cores holding targets
    # [in elements, 2·len(dst_cores) + 1] float32 (float64 where a step's total may pass 2^24, as the
    # engines' products then are), per input element: its targets on each dst core (the
    # synaptic operations one event costs there), 1/0 whether it is sent to that core (its coverage), and 1
    counters: torch.Tensor
    # [in elements], the counters' float type: the most hops among an element's packets (0 from the
    # host); None when no packet of the projection travels (every sender on its destinations' core)
    longest_route: torch.Tensor | None
    senders: "CoreElements"  # the input elements of each sending core (`origin` grouped)
    # the largest count of one step through any column of ``counters`` (synaptic operations or packets
    # on one core, events): every input element firing. Float32 sums are exact below 2^24.
    largest_total: float
    value_bits: int  # bits one event's value takes in a block buffer (`_Builder.value_bits`)

    @property
    def multiplies(self) -> bool:
        """Whether one event's synaptic operations multiply (MACs): a graded value into weights or into
        an attention product. A spike only gates an accumulate, and a graded value added element by
        element (a membrane shortcut, a residual sum) is one accumulate: no multiplier is involved."""
        return not self.spiking and not isinstance(self.synapses, ElementwiseSynapses)


#: ``((core, elements), ...)`` in core order: a ``slice`` where the core's elements are consecutive
#: (the mapper hands out consecutive neurons, so almost always), else their flat indices.
CoreElements = tuple[tuple[int, slice | np.ndarray], ...]


def group_by_core(cores: np.ndarray) -> CoreElements:
    """The elements of each core in the flat array ``cores``, found in linear time (runs of equal ids):
    engines then sum over views, where an index per element would cost a gather or a sort."""
    starts = np.concatenate(([0], np.flatnonzero(cores[1:] != cores[:-1]) + 1))
    ids = cores[starts]
    if len(np.unique(ids)) == len(ids):  # one run per core
        stops = np.append(starts[1:], len(cores))
        return tuple(sorted((int(c), slice(int(a), int(b))) for c, a, b in zip(ids, starts, stops)))
    return tuple((int(c), np.flatnonzero(cores == c)) for c in np.unique(ids))


def core_index(elements: slice | np.ndarray, device) -> slice | torch.Tensor:
    """A core's elements (from `group_by_core`) as an index usable on ``device`` (a slice stays a view)."""
    return elements if isinstance(elements, slice) else torch.from_numpy(elements).to(device)


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    shape: tuple[int, ...]
    owner: np.ndarray  # [neurons] core of each neuron (flattened)
    groups: "CoreElements"  # the neurons of each core (`owner` grouped)
    neurons_per_core: np.ndarray  # [n_cores] how many of its neurons each core holds
    start_step: int
    delay_steps: int
    value_bits: int  # bits of one output value where it is held (`statten_hw.mapping.layers.value_bits`)


@dataclass(frozen=True, eq=False)
class EventNetwork:  # compared by identity: engines keep derived plans per network
    layers: tuple[LayerInfo, ...]
    projections: tuple[Projection, ...]
    n_cores: int
    hops: np.ndarray  # [n_cores, n_cores] NoC hops between placed cores
    timesteps: int
    # per layer, the layers (or the network input) whose cores send its projections' events (`_layer_sources`)
    sources: dict[str, tuple[str, ...]]

    @cached_property
    def arrivals(self) -> frozenset[tuple[str, str]]:
        """``(node, port)`` of every input whose values reach its node as events (a projection's target
        and port); every other input is computed on the node's own cores."""
        return frozenset((p.target, p.port) for p in self.projections)


def _shapes(qgraph) -> dict[str, tuple[int, ...]]:
    fg = qgraph.float_graph
    return {n: tuple(fg.nodes[n][SHAPE]) for n in qgraph.graph}


def _synapses(op, in_shape, out_shape, port: str) -> Synapses:
    if isinstance(op, QConv2d):
        return ConvSynapses(op.weight, tuple(op.stride), tuple(op.padding), op.groups, in_shape, out_shape)
    if isinstance(op, QLinear):
        return LinearSynapses(op.weight, in_shape, out_shape)
    if isinstance(op, QAttention) and port in "qkv":
        return AttentionSynapses(op.heads, in_shape, tokens_first=op.mode == "SSA")
    return ElementwiseSynapses(in_shape)


def _ports(g: nx.DiGraph, n: str) -> list[tuple[str, str]]:
    return sorted(((d[PORT], s) for s, _, d in g.in_edges(n, data=True)))


class _Builder:
    def __init__(self, qgraph, mapping):
        self.g, self.shapes = qgraph.graph, _shapes(qgraph)
        self.rows = {r.name: r for r in mapping.layers}
        self.state_bits = mapping.target.precision.state_bits
        self.owner = dict(layer_owners(mapping.pieces, self.shapes))
        self.is_layer = set(self.rows)
        self.dendrite_edges: list[tuple[str, str, str, str]] = []  # (layer, source, target, port)
        self.computed_by: dict[str, str] = {}  # node -> the layer whose dendrite walk computes it
        self.groups: dict[str, CoreElements] = {}

    def op(self, n):
        return self.g.nodes[n][QOP]

    def arrives(self, source: str) -> bool:
        """Values of ``source`` travel as events (they come from another layer or the input)."""
        return source in self.is_layer or isinstance(self.op(source), QInput)

    def walk_dendrites(self, layer: str) -> None:
        """Back from ``layer``'s neurons through the ops computed on its own cores, recording each edge
        whose values arrive as events. A node an earlier layer's walk computes (a residual stream two
        layers' dendrites both read) is on that layer's cores: its values arrive too."""
        stack = [layer]
        while stack:
            n = stack.pop()
            op = self.op(n)
            for port, src in _ports(self.g, n):
                receives = isinstance(op, (QConv2d, QLinear, QAttention)) or self.arrives(src) or (
                    isinstance(op, QAdd) and op.kind == "membrane" and port == "rhs") or (
                    self.computed_by.get(src, layer) != layer)
                if receives:
                    self.dendrite_edges.append((layer, src, n, port))
                elif src not in self.owner:
                    self.owner[src] = pull_back(op, self.owner[n], self.shapes[src])
                    self.computed_by[src] = layer
                    stack.append(src)

    def place_sources(self) -> None:
        for n in topological_order(self.g):
            if n in self.owner:
                continue
            op = self.op(n)
            if isinstance(op, QInput):
                self.owner[n] = np.full(self.shapes[n], HOST, np.int64)
            elif not isinstance(op, QOutput):
                self.owner[n] = push_forward(op, [self.owner[s] for _, s in _ports(self.g, n)], self.shapes[n])

    def spiking(self, n: str) -> bool:
        """``n``'s values are spikes (binary or ternary: accumulates), not graded (multiply-accumulates):
        a layer's as the mapper classed them (`LayerRow.output`), kept by pooling, flattening and products."""
        if n in self.rows:
            return self.rows[n].output != "graded"
        kept = isinstance(self.op(n), (*_SPIKE_PRESERVING, QMul))
        return kept and all(self.spiking(s) for _, s in _ports(self.g, n))

    def value_bits(self, n: str) -> int:
        """Bits one of ``n``'s values takes in a buffer: its layer's, through pooling and flattening
        (A2OS2A's graded K the target's state width, its ternary V 2, a spike 1)."""
        if n in self.rows:
            return value_bits(self.rows[n].output, self.state_bits)
        if isinstance(self.op(n), _SPIKE_PRESERVING):
            return max(self.value_bits(s) for _, s in _ports(self.g, n))
        return 1 if self.spiking(n) else self.state_bits

    def projection(self, layer, source, target, port, hops: np.ndarray) -> Projection:
        syn = _synapses(self.op(target), self.shapes[source], self.shapes[target], port)
        owner, origin = self.owner[target].reshape(-1), self.owner[source].reshape(-1)
        receivers = self.grouped(target)
        dst = np.array([core for core, _ in receivers], np.int64)
        indicators = torch.zeros(len(dst), owner.size, dtype=torch.float32)
        for row, (_, elements) in enumerate(receivers):
            indicators[row, elements] = 1
        # targets per element and core: sums of 0/1 terms, exact in float32 on the CPU (no Winograd there)
        reach = syn.reach(indicators.reshape(len(dst), *syn.out_shape)).reshape(len(dst), -1).T
        counters = torch.cat([reach, reach > 0, torch.ones(len(origin), 1, dtype=reach.dtype)], 1)
        largest = float(counters.sum(0, dtype=torch.float64).max())
        if exact_dtype(largest, "cpu", f"{source} -> {target}") != torch.float32:
            counters = counters.double()  # the engines' products need it: kept once, not beside a float32 copy
        return Projection(layer, source, target, port, syn, origin, owner, self.spiking(source), dst, counters,
                          _longest_routes(counters[:, len(dst):2 * len(dst)], self.grouped(source), dst, hops),
                          self.grouped(source), largest, self.value_bits(source))

    def grouped(self, node: str) -> CoreElements:
        """`group_by_core` of a node's owners, once per node (q, k and v read the same spikes)."""
        if node not in self.groups:
            self.groups[node] = group_by_core(self.owner[node].reshape(-1))
        return self.groups[node]


def _longest_routes(coverage: torch.Tensor, senders: "CoreElements", dst: np.ndarray,
                    hops: np.ndarray) -> torch.Tensor | None:
    """`Projection.longest_route` from the coverage and the hops between the placed cores."""
    if not len(dst) or not any(core != HOST and hops[core, dst].any() for core, _ in senders):
        return None
    longest = torch.zeros(len(coverage), dtype=coverage.dtype)
    for core, rows in senders:
        if core != HOST:
            longest[rows] = (coverage[rows] * torch.from_numpy(hops[core, dst]).to(coverage.dtype)).amax(1)
    return longest


def _share_packets(projections: tuple[Projection, ...]) -> tuple[Projection, ...]:
    """Leaves each (source element, destination core) packet in the coverage of the first projection
    of that source (in network order) that sends it, and clears it from the later ones: they keep
    their synaptic operations and longest routes, the packet is counted once (module docstring)."""
    sent: dict[tuple[str, int], torch.Tensor] = {}  # (source, core) -> elements already sent there
    for p in projections:
        if isinstance(p.synapses, AttentionSynapses):
            continue
        n = len(p.dst_cores)
        for j, core in enumerate(p.dst_cores.tolist()):
            column = p.counters[:, n + j]
            reaches = column > 0
            before = sent.get((p.source, core))
            if before is not None:
                column.copy_(reaches & ~before)
                reaches = reaches | before
            sent[(p.source, core)] = reaches
    return projections


def _hops_matrix(mapping) -> np.ndarray:
    from statten_hw.mapping.placement import hop_matrix

    cores = sorted(mapping.cores, key=lambda c: c.id)
    return hop_matrix([(c.chip, c.x, c.y) for c in cores], mapping.target)


def _walked(qgraph, mapping) -> _Builder:
    """A builder that has walked every mapped layer's dendrites: owners and arriving edges, no projections."""
    b = _Builder(qgraph, mapping)
    missing = [r.name for r in mapping.layers if r.name not in b.g]
    if missing:
        raise GraphError(f"mapped layers {missing} are not in the quantized graph")
    for row in mapping.layers:
        b.walk_dendrites(row.name)
    return b


def dendrite_arrivals(qgraph, mapping) -> frozenset[tuple[str, str]]:
    """`EventNetwork.arrivals` without the projections' per-core counters (cheap, for reports that only
    need to know which edges carry events between cores)."""
    return frozenset((target, port) for _, _, target, port in _walked(qgraph, mapping).dendrite_edges)


def build_network(qgraph, mapping) -> EventNetwork:
    """The projections of ``qgraph`` as placed by ``mapping`` (made on ``qgraph.float_graph``)."""
    b = _walked(qgraph, mapping)
    b.place_sources()
    n_cores = len(mapping.cores)
    layers = tuple(LayerInfo(r.name, r.kind, b.shapes[r.name], b.owner[r.name].reshape(-1), b.grouped(r.name),
                             np.bincount(b.owner[r.name].reshape(-1), minlength=n_cores), r.start_step,
                             r.delay_steps, value_bits(r.output, b.state_bits)) for r in mapping.layers)
    hops = _hops_matrix(mapping)
    projections = _share_packets(tuple(b.projection(*edge, hops) for edge in b.dendrite_edges))
    timesteps = qgraph.qop(qgraph.input_node).timesteps
    return EventNetwork(layers, projections, n_cores, hops, timesteps,
                        _layer_sources(qgraph, layers, projections, b.computed_by))


def _layer_sources(qgraph, layers: tuple[LayerInfo, ...], projections: tuple[Projection, ...],
                   computed_by: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Per layer, the layers (or the network input) that send its projections' events: a source that is
    a layer or the input, the layer whose dendrite computes it (a shortcut's graded values), or, for a
    source no dendrite computes (flattens, pooling, means placed after a layer), the layers behind it."""
    names = {layer.name for layer in layers}
    found: dict[str, set[str]] = {name: set() for name in names}
    for p in projections:
        stack = [p.source]
        while stack:
            n = stack.pop()
            if n in names or isinstance(qgraph.qop(n), QInput):
                found[p.layer].add(n)
            elif n in computed_by:
                found[p.layer].add(computed_by[n])
            else:
                stack.extend(qgraph.graph.predecessors(n))
    return {layer.name: tuple(sorted(found[layer.name])) for layer in layers}


__all__ = ["CoreElements", "EventNetwork", "LayerInfo", "Projection", "build_network", "dendrite_arrivals", "fan_out",
           "group_by_core"]
