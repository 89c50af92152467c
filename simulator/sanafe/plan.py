"""How each mapped layer of the integer graph becomes SANA-FE neurons: mode, step lag, cores.

SANA-FE's neuron is a LIF on doubles (``LoihiLifModel``): per step ``v = trunc64(v·leak) + bias +
Σ w``, fire on ``v > threshold``, hard reset. With every quantity scaled by 1/64 its 1/64-grid
truncation is the integer contract's truncation toward zero, so our integer LIF runs on it exactly
(`lif_attributes`). What it cannot compute (attention products, pooling, requantized sums, analog
inputs, graded values, negative spikes) is supplied from the integer reference, layer by layer, in
one of these modes, and every layer's mode and reason is kept in its `LayerPlan.note`:

* `SYNAPSES`: a LIF (or a non-firing readout accumulator) fed by a conv/linear of a spiking layer,
  through SANA-FE synapses. Exact, and SANA-FE simulates all of its work.
* `INJECTED`: a LIF whose input current is the integer reference's value of the node feeding it,
  set as the neurons' bias before each step; SANA-FE runs the LIF (exact spikes) but not the work
  that produced the current.
* `REPLAYED`: a spiking output no neuron model computes (SDSA's ``q ⊙ kv``, binary network input),
  replayed from the reference by SANA-FE ``input`` neurons.
* `REFERENCE`: a graded layer (ReLU) no SANA-FE neuron can emit: not on the chip.

SANA-FE delivers a spike to the next soma one step after it is sent, so a layer's time step ``t``
runs at SANA-FE step ``t + lag`` (1-based): one more than the latest layer it depends on (a mean
over time is ready once its last input step is). A layer after a mean over time has one step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from statten_hw.errors import ConfigError, UnsupportedLayer
from statten_hw.ir.graph import SHAPE, topological_order
from statten_hw.quant.fixed_point import DECAY_BITS
from statten_hw.quant.quantize import QAttention, QConv2d, QFlatten, QInput, QLIF, QLinear, QMean, QReLU

SYNAPSES, INJECTED, REPLAYED, REFERENCE = "synapses", "injected-current", "replayed-spikes", "reference-only"
#: SANA-FE potentials are scaled by 1/64: its LIF truncates to a 1/64 grid (``loihi_quantize``).
GRID = 64.0
#: A readout accumulator never fires: its threshold is far above any 24-bit sum over T steps.
NEVER = 2.0 ** 60
INPUT = "input"
READOUT = "readout"  # the mapping's kind for a conv/linear no layer consumes


@dataclass(frozen=True)
class LayerPlan:
    """One layer on SANA-FE. ``synapse``/``source``/``flatten``: the conv/linear, the spiking layer
    behind it and the flattens between (mode `SYNAPSES`); ``current``: the node whose integer value is
    injected (`INJECTED`) or replayed (`REPLAYED`)."""

    name: str
    kind: str
    mode: str
    lag: int
    steps: int
    shape: tuple[int, ...]
    note: str
    synapse: str | None = None
    source: str | None = None
    flatten: tuple[str, ...] = ()
    current: str | None = None

    @property
    def neurons(self) -> int:
        return math.prod(self.shape)

    @property
    def on_chip(self) -> bool:
        return self.mode != REFERENCE


@dataclass(frozen=True)
class GroupPlan:
    """One SANA-FE neuron group: neurons ``start .. start+neurons`` (flat, C order) of ``layer`` on SANA-FE
    core ``core`` (index in ``Architecture.cores()``); ``mapped_core`` is our mapping's core id (None for
    the network input, which the mapping does not place)."""

    name: str
    layer: str
    start: int
    neurons: int
    core: int
    mapped_core: int | None


def plan_layers(qgraph, mapping, values: dict) -> list[LayerPlan]:
    """Mode and lag of every mapped layer (and of the input when it is replayed), in topological order.

    ``values``: the integer reference's node values, which decide whether a stream is binary spikes.
    """
    g = qgraph.graph
    kinds = {row.name: row.kind for row in mapping.layers}
    layer_nodes = {qgraph.alias.get(name, name): name for name in kinds}
    ready: dict[str, int] = {}
    spiking: set[str] = set()
    plans: list[LayerPlan] = []
    for node in topological_order(g):
        op = qgraph.qop(node)
        before = max((ready[p] for p in g.predecessors(node)), default=0)
        if isinstance(op, QInput):
            ready[node] = 1 if _binary(values[node]) else 0
            if ready[node]:
                spiking.add(node)
            continue
        if node not in layer_nodes:
            if isinstance(op, QMean) and op.time:  # ready once its last input step is
                before += values[next(iter(g.predecessors(node)))].shape[0] - 1
            ready[node] = before
            continue
        plan = _plan(qgraph, node, layer_nodes[node], kinds[layer_nodes[node]], op, before, ready, spiking, values)
        ready[node] = plan.lag
        if plan.mode in (SYNAPSES, INJECTED, REPLAYED) and _emits_binary(op):
            spiking.add(node)
        plans.append(plan)
    inputs = sorted({p.source for p in plans if p.mode == SYNAPSES and isinstance(qgraph.qop(p.source), QInput)})
    return [LayerPlan(n, INPUT, REPLAYED, 1, values[n].shape[0], tuple(g.nodes[n][SHAPE]),
                      "binary network input replayed by SANA-FE input neurons on cores the mapping leaves free "
                      "(the mapping does not place the input)", current=n) for n in inputs] + plans


def lif_attributes(op: QLIF) -> dict:
    """SANA-FE ``leaky_integrate_fire`` attributes of our integer LIF, every value on the 1/64 grid.

    ``v >= threshold`` on integers is ``v > threshold - 1``; the leak ``(4096 - dv) / 4096`` times a
    1/64-grid potential and SANA-FE's truncation back to the grid is Lava's ``sign·(|v·(4096-dv)| >> 12)``.
    A ternary LIF resets on ``v <= -threshold`` too (``v < 1 - threshold``), but sends no -1 spike.
    """
    attrs = {"threshold": (op.threshold - 1) / GRID, "leak_decay": ((1 << DECAY_BITS) - op.dv) / (1 << DECAY_BITS),
             "reset": 0.0, "reset_mode": "hard"}
    if op.ternary:
        attrs.update(reverse_threshold=(1 - op.threshold) / GRID, reverse_reset=0.0, reverse_reset_mode="hard")
    return attrs


READOUT_ATTRIBUTES = {"threshold": NEVER, "leak_decay": 1.0, "reset": 0.0, "reset_mode": "hard"}


def place_groups(plans: list[LayerPlan], mapping, arch) -> list[GroupPlan]:
    """A group per layer piece on the SANA-FE core at the piece's mapped position, and the replayed
    input on free cores (module docstring of `statten_hw.targets.sanafe` for the tile layout): first
    those of tiles the mapping uses, so that the input adds no tile to SANA-FE's synchronization."""
    on_chip = {p.name: p for p in plans if p.on_chip}
    cores = sanafe_cores(mapping, arch)
    groups, start = [], {}
    for k, (core_id, layer, n) in enumerate(mapping.pieces):
        if layer in on_chip:
            groups.append(GroupPlan(f"{layer}#{k}", layer, start.get(layer, 0), n, cores[core_id], core_id))
        start[layer] = start.get(layer, 0) + n
    used = set(cores.values())
    used_tiles = {c // arch.cores_per_tile for c in used}
    free = sorted((c for c in range(arch.tiles * arch.cores_per_tile) if c not in used),
                  key=lambda c: (c // arch.cores_per_tile not in used_tiles, c))
    per_core = min(arch.neurons_per_core, arch.input_units)
    for plan in (p for p in plans if p.kind == INPUT):
        slices = range(0, plan.neurons, per_core or plan.neurons)
        if len(slices) > len(free):
            raise ConfigError(f"SANA-FE target {arch.name!r}: the {plan.neurons} input neurons need {len(slices)} "
                              f"free cores with 'input' units, {len(free)} are left")
        for i, lo in enumerate(slices):
            groups.append(GroupPlan(f"{plan.name}#{i}", plan.name, lo, min(per_core, plan.neurons - lo),
                                    free.pop(0), None))
    return groups


def sanafe_cores(mapping, arch) -> dict[int, int]:
    """Our core id -> SANA-FE core index. A core at mesh position (x, y) is on tile ``x·height + y``;
    cores sharing a tile take its core slots in id order."""
    taken: dict[int, int] = {}
    out = {}
    for row in mapping.cores:
        if row.chip != 0:
            raise ConfigError(f"SANA-FE models one chip; the mapping needs {row.chip + 1} chips")
        tile = row.x * arch.height + row.y
        out[row.id] = tile * arch.cores_per_tile + taken.get(tile, 0)
        taken[tile] = taken.get(tile, 0) + 1
    return out


def _plan(qgraph, node: str, name: str, kind: str, op, before: int, ready: dict, spiking: set,
          values: dict) -> LayerPlan:
    g = qgraph.graph

    def plan(mode: str, lag: int, note: str, **fields) -> LayerPlan:
        return LayerPlan(name, kind, mode, lag, values[node].shape[0], tuple(g.nodes[node][SHAPE]), note, **fields)

    if isinstance(op, QReLU):
        return plan(REFERENCE, before + 1, "graded ReLU output: no SANA-FE neuron emits it; not on the SANA-FE "
                                           "chip, its values come from the integer reference")
    if isinstance(op, QAttention):
        if not _binary(values[node]):
            return plan(REFERENCE, before + 1, f"graded {op.mode} attention output: not on the SANA-FE chip, its "
                                               "values come from the integer reference")
        return plan(REPLAYED, before + 1, f"{op.mode} attention output spikes replayed from the integer reference "
                                          "by SANA-FE input neurons; the attention itself is not simulated",
                    current=node)
    if not isinstance(op, (QLIF, QConv2d, QLinear)):
        raise UnsupportedLayer(name, type(op).__name__, "no SANA-FE expression for this layer kind")
    lif = isinstance(op, QLIF)
    synapse = next(iter(g.predecessors(node))) if lif else node
    source, flatten = _spike_source(qgraph, synapse)
    neurons = "LIF on the 1/64 grid" if lif else "non-firing accumulators read back through their potential"
    ternary = (" Ternary LIF: its membrane is exact (reverse threshold and hard reset), but SANA-FE has no "
               "negative spikes, so its -1 spikes are not sent." if lif and op.ternary else "")
    if source in spiking:
        return plan(SYNAPSES, ready[source] + 1, f"exact: SANA-FE synapses of {synapse!r} from {source!r}, "
                                                 f"{neurons}.{ternary}", synapse=synapse, source=source,
                    flatten=flatten)
    return plan(INJECTED, before + 1, f"input current ({_describe(qgraph, synapse)}) computed by the integer "
                                      f"reference and set as the bias of the {neurons} each step; SANA-FE runs the "
                                      "neurons exactly but not the work producing that current (no synaptic events, "
                                      f"packets or hops for it).{ternary}", current=synapse)


def _spike_source(qgraph, synapse: str) -> tuple[str | None, tuple[str, ...]]:
    """The node behind the conv/linear ``synapse`` through flattens only, or None when there is no such op."""
    if not isinstance(qgraph.qop(synapse), (QConv2d, QLinear)):
        return None, ()
    flatten: list[str] = []
    node = next(iter(qgraph.graph.predecessors(synapse)))
    while isinstance(qgraph.qop(node), QFlatten):
        flatten.insert(0, node)
        node = next(iter(qgraph.graph.predecessors(node)))
    return node, tuple(flatten)


def _describe(qgraph, node: str) -> str:
    op = qgraph.qop(node)
    what = {QAttention: lambda: f"{op.mode} attention product", QConv2d: lambda: "conv of a non-spiking input",
            QLinear: lambda: "linear of a non-spiking input"}.get(type(op), lambda: type(op).__name__[1:])()
    return f"{what}, node {node!r}"


def _emits_binary(op) -> bool:
    return isinstance(op, QAttention) or (isinstance(op, QLIF) and not op.ternary)


def _binary(v: torch.Tensor) -> bool:
    return bool(((v == 0) | (v == 1)).all())


__all__ = ["GRID", "INJECTED", "INPUT", "READOUT", "READOUT_ATTRIBUTES", "REFERENCE", "REPLAYED", "SYNAPSES", "GroupPlan",
           "LayerPlan", "lif_attributes", "place_groups", "plan_layers", "sanafe_cores"]
