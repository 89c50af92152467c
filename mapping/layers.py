"""Neuron layers of a deployment graph: what each layer needs from a core before any splitting.

A *neuron layer* is a node of the lowered graph whose output is a neuron state held across steps:

* every ``lif`` node (and ``relu``, A2OS2A's real-valued K: one accumulator per element);
* an ``attention`` node that no LIF consumes (SDSA: its output is spiking already);
* a ``conv2d``/``linear`` that feeds no layer (the readout: non-spiking accumulators, ``readout``).

Its *synapses* are the conv/linear nodes found walking backward from it through the ops that need no
memory of their own (batchnorm: folded into the bias; maxpool/mean: a reduction of the conv output;
flatten; mul). A membrane ``add`` (MS shortcut) is a graded *residual input*: its ``lhs`` branch is
walked, its ``rhs`` shortcut counts as one more input per neuron, without weights, sent by the layer
whose cores compute it (the one whose walk passes the ``rhs`` node). A node an earlier layer's walk
already computes (a residual stream two layers read) is not walked again: it is a shortcut too, sent
from that layer's cores. An ``attention``
node reached this way makes the layer an attention layer whose inputs are the Q, K, V layers.

Weight encoding (dense, stated here once): a conv stores its kernel ``C_in/groups · kh · kw`` weights
per output channel, ``weight_bits`` each, rounded up to whole bytes per channel; all ``H·W`` neurons
of a channel share it. A channel is the layer's *unit*: a core holding part of a channel holds the
whole kernel of that channel, so a channel split over two cores stores its kernel twice. A linear on
tokens ``[N, C]`` stores one weight row of ``C_in`` weights per output feature, but its neurons run
token by token (neuron ``i`` is token ``i // C``, feature ``i % C``, the order of the mapping's pieces
and of the simulators' owners), so no run of neurons shares a row: the whole layer is one unit and
every core holding part of it holds all ``C`` rows (exact for parts of at least ``C`` neurons, an
over-count below). The same holds for the heads of attention on tokens (SSA). Bias and threshold are
not counted (a few bytes per channel).

Fan-in of a neuron: the weights one conv output reads (``C_in/groups · kh · kw``, or ``C_in``) per
synapse node, plus 1 per residual input; a pool or mean after the conv is a dendritic reduction of
conv outputs and adds no axons (an assumption). An attention neuron reads ``3·d`` inputs (its
token's q row of its head, weighted by the KᵀV accumulators, and the k, v rows that update them).
"""
from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass

import networkx as nx

from statten_hw.ir.graph import OP, PORT, SHAPE, topological_order

#: Node kinds that hold neuron state (a layer ends at each of them).
NEURON_KINDS = ("lif", "relu")
#: Node kinds with weights.
SYNAPSE_KINDS = ("conv2d", "linear")


@dataclass(frozen=True)
class AttentionInputs:
    """The Q, K, V of an attention layer: producing layer names, heads, tokens N and dim D."""

    mode: str
    heads: int
    tokens: int
    dim: int
    q: str
    k: str
    v: str

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


@dataclass(frozen=True)
class NeuronLayer:
    """One layer of neurons and the synapses feeding it (see the module docstring for the encoding).

    ``units`` weight-sharing groups of ``unit_neurons`` neurons each (``neurons = units·unit_neurons``)
    with ``unit_weights`` stored weights per group. ``sources``: ``(layer, fan_out)`` pairs, a spike
    of ``layer`` reaches ``fan_out`` neurons of this layer. ``shortcut_sources``: ``(layer, values)`` pairs,
    the layers whose cores send the graded values its shortcuts add, and how many values per step (the
    shortcut's elements; each is sent while non-zero). ``synapse_count`` counts logical
    connections (conv outputs × weights each), not stored weights.
    """

    name: str
    kind: str  # "lif" | "relu" | "attention" | "readout"
    shape: tuple[int, ...]
    neurons: int
    units: int
    unit_neurons: int
    unit_weights: int
    synapses: tuple[str, ...]
    synapse_count: int
    fan_in: int
    residual_inputs: int
    sources: tuple[tuple[str, int], ...]
    attention: AttentionInputs | None = None
    shortcut_sources: tuple[tuple[str, int], ...] = ()
    output: str = "binary"  # "binary" | "ternary" spikes, or "graded" values (ReLU, readout, attention counts)
    # values per step its synapses produce for a pool or mean to reduce before they reach the neurons (SDT's
    # conv -> max-pool -> LIF): each sum is held until the pool reads it (0: every sum is a neuron's input)
    pre_pool_values: int = 0

    def weight_bytes_per_unit(self, weight_bits: int) -> int:
        """Bytes of one unit's weights: ``ceil(unit_weights · weight_bits / 8)``."""
        return math.ceil(self.unit_weights * weight_bits / 8)

    def synapse_bytes(self, weight_bits: int) -> int:
        """Weight bytes with no unit split over cores: ``units · ceil(unit_weights · bits / 8)``."""
        return self.units * self.weight_bytes_per_unit(weight_bits)

    def state_bytes(self, state_bits: int) -> int:
        """Membrane state: ``ceil(neurons · state_bits / 8)``."""
        return math.ceil(self.neurons * state_bits / 8)


def _is_layer_node(g: nx.DiGraph, n: str, owned_attention: set[str]) -> bool:
    kind = g.nodes[n][OP].KIND
    return kind in NEURON_KINDS or kind == "input" or (kind == "attention" and n not in owned_attention)


def _walk_to_layers(g: nx.DiGraph, start: str, owned_attention: set[str], readouts: frozenset[str] = frozenset()
                    ) -> list[str]:
    """Layer nodes (neurons, unowned attention, input, and the given ``readouts``) whose output reaches
    ``start`` through no weights."""
    found, stack, seen = [], [start], set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in readouts or _is_layer_node(g, n, owned_attention):
            found.append(n)
            continue
        stack.extend(g.predecessors(n))
    rank = {n: i for i, n in enumerate(g.nodes)}
    return sorted(found, key=rank.__getitem__)


@dataclass(frozen=True)
class _Dendrite:
    """What a layer's neurons read, walking back from them through ops that need no memory of their own:
    weighted ``synapses``, an ``attention`` node, ``shortcuts`` (graded values added element by element:
    a membrane add's ``rhs``, or a sum an earlier layer's walk computes), ``identity`` inputs (a layer's
    output added unweighted) and the ``nodes`` computed on the layer's own cores."""

    synapses: list[str]
    attentions: list[str]
    shortcuts: list[str]
    identity: list[str]
    nodes: set[str]


def _walk_synapses(g: nx.DiGraph, layer: str, claimed: Container[str]) -> _Dendrite:
    """The `_Dendrite` of ``layer``; a node in ``claimed`` (computed by an earlier layer's walk, as a
    residual stream two layers read) is on that layer's cores, so it arrives as a graded input."""
    synapses, attentions, shortcuts, identity, arrived = [], [], [], [], []
    stack, seen = list(g.predecessors(layer)), set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        node = g.nodes[n][OP]
        if n in claimed:
            shortcuts.append(n)
            arrived.append(n)
        elif node.KIND in SYNAPSE_KINDS:
            synapses.append(n)
        elif node.KIND == "attention":
            attentions.append(n)
        elif node.KIND in NEURON_KINDS or node.KIND == "input":
            identity.append(n)
        elif node.KIND == "add" and node.kind == "membrane":
            ports = {d[PORT]: s for s, _, d in g.in_edges(n, data=True)}
            shortcuts.append(ports["rhs"])
            stack.append(ports["lhs"])
        else:
            stack.extend(g.predecessors(n))
    rank = {n: i for i, n in enumerate(g.nodes)}
    return _Dendrite(*(sorted(found, key=rank.__getitem__) for found in (synapses, attentions, shortcuts, identity)),
                     nodes=seen - set(identity) - set(arrived))


def _synapse_geometry(g: nx.DiGraph, s: str) -> tuple[int, int, int, int]:
    """(output channels, weights per output channel, output elements, targets per input spike)."""
    node = g.nodes[s][OP]
    out_elems = math.prod(g.nodes[s][SHAPE])
    if node.KIND == "conv2d":
        c_out, c_in_g, kh, kw = node.weight.shape
        fan_out = max(1, (c_out // node.groups) * kh * kw // (node.stride[0] * node.stride[1]))
        return c_out, c_in_g * kh * kw, out_elems, fan_out
    c_out, c_in = node.weight.shape
    return c_out, c_in, out_elems, c_out


def neuron_layers(g: nx.DiGraph) -> list[NeuronLayer]:
    """The neuron layers of a lowered graph, in topological order (module docstring gives the rules)."""
    order = topological_order(g)
    lif_like = [n for n in order if g.nodes[n][OP].KIND in NEURON_KINDS]
    walks: dict[str, _Dendrite] = {}
    computed_on: dict[str, str] = {}  # node -> the layer whose walk computes it (the first to reach it)
    for n in lif_like:
        walks[n] = _walk_synapses(g, n, computed_on)
        computed_on.update(dict.fromkeys(walks[n].nodes, n))
    owned = {a for walk in walks.values() for a in walk.attentions}
    unowned = [n for n in order if g.nodes[n][OP].KIND == "attention" and n not in owned]

    # Synapse node -> the layers it feeds (to find readouts) and its source layers (for fan-out/traffic).
    feeds: dict[str, list[str]] = {}
    for n, walk in walks.items():
        for s in walk.synapses:
            feeds.setdefault(s, []).append(n)
    readouts = [n for n in order if g.nodes[n][OP].KIND in SYNAPSE_KINDS and n not in feeds]
    layer_names = set(lif_like) | set(unowned) | set(readouts)

    readout_set = frozenset(readouts)

    def senders(node: str) -> list[str]:
        return _computed_by(g, node, computed_on, owned, readout_set)

    # Source side: which layers reach each synapse node, and how far one spike fans out.
    sources_of: dict[str, list[tuple[str, int]]] = {}
    for s in [n for n in order if g.nodes[n][OP].KIND in SYNAPSE_KINDS]:
        _, _, _, fan_out = _synapse_geometry(g, s)
        srcs = _walk_to_layers(g, next(iter(g.predecessors(s))), owned)
        sources_of[s] = [(src, fan_out) for src in srcs if g.nodes[src][OP].KIND != "input"]

    layers = []
    for n in order:
        if n not in layer_names:
            continue
        node = g.nodes[n][OP]
        shape = tuple(g.nodes[n][SHAPE])
        neurons = math.prod(shape)
        if n in readouts:
            syns, atts, shortcuts, identity = [n], [], [], []
        elif n in unowned:
            syns, atts, shortcuts, identity = [], [n], [], []
        else:
            walk = walks[n]
            syns, atts, shortcuts, identity = walk.synapses, walk.attentions, walk.shortcuts, walk.identity
        residual, pre_pool = len(shortcuts), 0
        sources: dict[str, int] = {}
        attention = None
        if atts:
            a = atts[0]
            anode = g.nodes[a][OP]
            ports = {d[PORT]: s for s, _, d in g.in_edges(a, data=True)}
            qkv = {p: _walk_to_layers(g, ports[p], owned) for p in ("q", "k", "v")}
            qshape = g.nodes[ports["q"]][SHAPE]
            tokens, dim = (qshape[0], qshape[1]) if anode.mode == "SSA" else (qshape[1] * qshape[2], qshape[0])
            attention = AttentionInputs(anode.mode, anode.heads, tokens, dim,
                                        *(qkv[p][0] if qkv[p] else "" for p in ("q", "k", "v")))
            d = dim // anode.heads
            for p in ("q", "k", "v"):
                for src in qkv[p]:
                    sources[src] = sources.get(src, 0) + d
            units, unit_weights, fan_in, syn_count = anode.heads, 0, 3 * d + residual, neurons * 3 * d
        else:
            units, unit_weights, fan_in, syn_count = None, 0, residual + len(identity), 0
            for s in syns:
                c_out, w_per_out, out_elems, _ = _synapse_geometry(g, s)
                pre_pool += out_elems if out_elems > neurons else 0
                units = c_out if units in (None, c_out) else math.gcd(units, c_out)
                unit_weights += w_per_out
                fan_in += w_per_out
                syn_count += out_elems * w_per_out
                for src, fo in sources_of[s]:
                    sources[src] = sources.get(src, 0) + fo
            for src in identity:
                if g.nodes[src][OP].KIND != "input":
                    sources[src] = sources.get(src, 0) + 1
            syn_count += neurons * (residual + len(identity))
        if not units or neurons % units or len(shape) == 2:
            # No run of neurons shares weights: a unit of the whole layer. Tokens [N, C] are flattened
            # token by token, so C consecutive neurons are one token's C features (or heads), each
            # with its own weight row: a core holding part of the layer holds all of its rows.
            unit_weights = unit_weights * (units or 1)
            units = 1
        layers.append(NeuronLayer(
            name=n, kind="readout" if n in readouts else ("attention" if attention else node.KIND),
            shape=shape, neurons=neurons, units=units, unit_neurons=neurons // units, unit_weights=unit_weights,
            synapses=tuple(syns), synapse_count=syn_count, fan_in=max(fan_in, 1), residual_inputs=residual,
            sources=tuple(sorted(sources.items())), attention=attention,
            shortcut_sources=_shortcut_sources(g, shortcuts, senders), output=_output(node, n in readouts),
            pre_pool_values=pre_pool))
    return layers


def value_bits(output: str, state_bits: int) -> int:
    """Bits one value of a layer's ``output`` (`NeuronLayer.output`) takes where it is held: a spike 1, a
    ternary spike 2 (sign and magnitude), a graded value the target's state width."""
    return {"binary": 1, "ternary": 2}.get(output, state_bits)


def _output(node, readout: bool) -> str:
    """What a layer's neurons emit (`NeuronLayer.output`): a LIF spikes (ternary ones -1 too), SDSA's
    attention q ⊙ spikes; a ReLU, a readout and the other attention modes' counts are graded."""
    if readout:
        return "graded"
    if node.KIND == "lif":
        return "ternary" if node.ternary else "binary"
    return "binary" if node.KIND == "attention" and node.mode == "SDSA" else "graded"


def _shortcut_sources(g: nx.DiGraph, shortcuts: list[str], senders) -> tuple[tuple[str, int], ...]:
    """``(layer, values per step)`` of a layer's shortcuts, summed per sending layer (`senders`) over the
    distinct nodes (a node's values travel once, however many adds read them: packets are shared)."""
    values: dict[str, int] = {}
    for node in dict.fromkeys(shortcuts):
        for src in senders(node):
            values[src] = values.get(src, 0) + math.prod(g.nodes[node][SHAPE])
    return tuple(sorted(values.items()))


def _computed_by(g: nx.DiGraph, node: str, computed_on: dict[str, str], owned: set[str],
                 readouts: frozenset[str]) -> list[str]:
    """The layers whose cores send ``node``'s values (a shortcut's graded values): the layer whose
    dendrite walk computes it (``computed_on``; possibly the reading layer's own), else the layers it is
    computed from (a conv that no layer's walk reaches is a readout layer of its own); none for the
    input, which the host sends."""
    if node in computed_on:
        return [computed_on[node]]
    return [src for src in _walk_to_layers(g, node, owned, readouts) if g.nodes[src][OP].KIND != "input"]


def fan_out(layers: list[NeuronLayer]) -> dict[str, int]:
    """Targets one neuron of each layer reaches, summed over its consumer layers: its spike's targets,
    plus, per step, the graded shortcut values its cores send, spread over its neurons."""
    out = {layer.name: 0 for layer in layers}
    neurons = {layer.name: layer.neurons for layer in layers}
    for layer in layers:
        for src, fo in layer.sources:
            if src in out:
                out[src] += fo
        for src, values in layer.shortcut_sources:
            out[src] += -(-values // neurons[src])  # each value goes to the one element it is added to
    return out


__all__ = ["AttentionInputs", "NeuronLayer", "neuron_layers", "fan_out", "value_bits", "NEURON_KINDS",
           "SYNAPSE_KINDS"]
