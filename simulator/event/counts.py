"""What an engine measures: event counts per layer, sample, logical step and core.

Both engines fill the same `Counts`; the timing model (`timing`) turns them into cycles, latency and
energy, so two engines with equal counts give equal reports. Arrays are int64 ``[L, S, T, K]`` (layer,
sample, logical timestep, core) unless noted; a projection's counts belong to the layer it feeds.

``sops``/``macs``   synaptic operations on the target's core: accumulates (spike events, and graded
                    values added element by element: membrane shortcuts, residual sums computed on
                    another layer's cores) or multiply-accumulates (graded values into weights or an
                    attention product: the encoded input, A2OS2A's graded K) (`Projection.multiplies`);
``packets_in``      packets received per core (one per event and destination core);
``packets_out``     packets sent per core (host-injected input packets are in ``host_packets [L,S,T]``);
``hops_out``        NoC hops of the packets each core sent;
``max_hops [L,S,T]`` the longest route taken at that step (the NoC part of the step's latency);
``events``          events sent (nonzero source values) per sending core, for the conservation checks;
``buffer_bits``     bits of the q/k/v values written into attention block buffers, per receiving core
                    (one write per packet, of the value's width: a spike 1, a ternary spike 2, a
                    graded value the target's state width);
``updates``         neuron updates (every neuron of the layer, every step it computes on: the last only
                    for a readout after a time mean, which runs once per sample);
``active_updates``  neuron updates as SANA-FE counts them (`count_active_updates`): only the neurons whose
                    state can change in the step;
``spikes_out``      output spikes (nonzero outputs) of the layer's neurons, per core.

``sources[layer]`` names the layers (or the network input) whose events the layer's projections carry:
who sent the packets counted for it.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import torch

from statten_hw.ir.graph import SHAPE, inputs_by_port
from statten_hw.quant.execute import EXECUTORS, trace_lif
from statten_hw.quant.quantize import QAttention, QConv2d, QFlatten, QLIF, QLinear, QMaxPool2d, QMean

from .network import CoreElements, core_index

CORE_FIELDS = ("sops", "macs", "packets_in", "packets_out", "hops_out", "events", "buffer_bits", "updates",
               "active_updates", "spikes_out")
STEP_FIELDS = ("host_packets", "max_hops")


@dataclass
class Counts:
    layers: tuple[str, ...]
    samples: int
    timesteps: int
    cores: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self):
        shape = (len(self.layers), self.samples, self.timesteps)
        for name in CORE_FIELDS:
            self.arrays.setdefault(name, np.zeros((*shape, self.cores), np.int64))
        for name in STEP_FIELDS:
            self.arrays.setdefault(name, np.zeros(shape, np.int64))

    @classmethod
    def of(cls, net, samples: int) -> "Counts":
        """Zero counts for ``samples`` samples run through the event network ``net``."""
        return cls(tuple(layer.name for layer in net.layers), samples, net.timesteps, net.n_cores, sources=net.sources)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def equal(self, other: "Counts") -> list[str]:
        """Names of the fields where two runs disagree (empty: identical)."""
        return [k for k in (*CORE_FIELDS, *STEP_FIELDS) if not np.array_equal(self[k], other[k])]


def _computing_steps(counts: Counts, values: torch.Tensor) -> slice:
    """The steps a layer computes on: all of them, or the last for a value that exists once (a readout
    after a time mean, where `on_steps` places it)."""
    return slice(counts.timesteps - values.shape[0], counts.timesteps)


def count_layer_outputs(counts: Counts, net, values: dict, first_sample: int) -> None:
    """Neuron updates and output spikes per core, from each layer's output ``[T, S', ...]`` of samples
    ``first_sample ...``: every neuron updates once per step it computes on; a readout emits no spikes."""
    for i, layer in enumerate(net.layers):
        v = values[layer.name]
        rows = slice(first_sample, first_sample + v.shape[1])
        counts["updates"][i, rows, _computing_steps(counts, v)] += layer.neurons_per_core
        if layer.kind == "readout":
            continue
        counts["spikes_out"][i, rows] += per_core(v, layer.groups, net.n_cores)


def per_core(values: torch.Tensor, groups: CoreElements, cores: int) -> np.ndarray:
    """``[T, S', *shape]`` -> int64 ``[S', T, cores]``: how many entries are not 0 (or not False) on each
    core (``groups``: the elements of each, `group_by_core`), one count per row and core over the core's
    elements (a view where they are consecutive): nothing is widened or copied. On the CPU numpy counts
    on the tensor's own memory (``count_nonzero`` of a row is one vectorised pass, and a numpy call
    costs a fraction of a torch call on small layers); on a GPU torch counts there and only the counts
    move."""
    T, n = values.shape[:2]
    flat = values.reshape(T * n, -1)
    if flat.device.type == "cpu":
        rows = flat.numpy()
        out = np.zeros((T * n, cores), np.int64)
        for core, elements in groups:
            out[:, core] = [np.count_nonzero(row) for row in rows[:, elements]]
    else:
        on_device = torch.zeros(T * n, cores, dtype=torch.int64, device=flat.device)
        for core, elements in groups:
            on_device[:, core] = torch.count_nonzero(flat[:, core_index(elements, flat.device)], dim=1)
        out = on_device.cpu().numpy()
    return out.reshape(T, n, cores).swapaxes(0, 1)


def on_steps(values: torch.Tensor, timesteps: int) -> torch.Tensor:
    """``[T', S, ...] -> [T, S, ...]``: a value that exists once (after a time mean) lands on the last step."""
    if values.shape[0] == timesteps:
        return values
    full = torch.zeros((timesteps, *values.shape[1:]), dtype=values.dtype, device=values.device)
    full[-1] = values[-1]
    return full


def count_active_updates(counts: Counts, net, qgraph, values: dict, reached: dict, first_sample: int,
                         traces: dict | None = None) -> None:
    """Neuron updates as SANA-FE counts them (``LoihiLifModel::update``), per core, for samples
    ``first_sample ...``: a neuron counts when its membrane is not 0 before the step, it has a constant
    input (a bias), at least one event reached it (even with weights summing to 0) or it fires. The
    others keep a zero state and are only visited.

    ``values``: every node's output; ``reached[node]``: bool ``[T, S', *shape]``, the elements of a
    projection target that at least one event reached (each engine finds them its own way);
    ``traces``: the integer run's `LifTrace` per LIF (``run_integer(..., trace_lifs=True)``), whose
    ``state_before`` is the membrane test; a LIF without one is rerun from its input current."""
    T, arrivals = counts.timesteps, net.arrivals
    for i, layer in enumerate(net.layers):
        if always_driven(qgraph, layer.name, arrivals):  # every neuron has input at every step it computes
            v = values[layer.name]
            counts["active_updates"][i, first_sample:first_sample + v.shape[1], _computing_steps(counts, v)] += \
                layer.neurons_per_core
            continue
        out = on_steps(values[layer.name], T)
        active = _state_before(qgraph, layer, values, T, traces or {})  # not to be written: a trace's own
        if layer.kind != "readout":
            active = active | (out != 0)
        driven = _driven(qgraph, layer.name, arrivals, reached, out)
        if driven is not None:
            active = active | driven
        n = out.shape[1]
        counts["active_updates"][i, first_sample:first_sample + n] += per_core(active, layer.groups, net.n_cores)


def _driven(qgraph, node: str, arrivals: frozenset, reached: dict, like: torch.Tensor) -> torch.Tensor | None:
    """Elements of ``node`` with input in the step: reached by an event or given a bias, here or in the
    ops before it on the receiving core (a conv, linear or attention node takes only events). None
    where nothing can drive any element (no full-size tensor of False is made); the result may be a
    broadcast view, for reading only."""
    op = qgraph.qop(node)
    shape = (like.shape[0], like.shape[1], *qgraph.graph.nodes[node][SHAPE])
    hit = _either(reached.get(node), _biased(op, shape, like))
    if isinstance(op, (QConv2d, QLinear, QAttention)):
        return hit
    for port, src in inputs_by_port(qgraph.graph, node).items():
        if (node, port) not in arrivals and (before := _driven(qgraph, src, arrivals, reached, like)) is not None:
            hit = _either(hit, _carry(op, before, shape))
    return hit


#: Per quantized graph (frozen), per set of arrivals (`EventNetwork.arrivals`) and node: `always_driven`.
_ALWAYS_DRIVEN: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def always_driven(qgraph, node: str, arrivals: frozenset) -> bool:
    """Whether `_driven` holds for every element of ``node`` at every step whatever the events: a bias
    on every element, here or carried to it from the ops before it on the receiving core. Then the
    events that reach it need not be found at all."""
    known = _ALWAYS_DRIVEN.setdefault(qgraph, {}).setdefault(arrivals, {})
    if node not in known:
        op = qgraph.qop(node)
        known[node] = full_bias(op) or not isinstance(op, (QConv2d, QLinear, QAttention)) and not (
            isinstance(op, QMean) and op.time) and any(
            always_driven(qgraph, src, arrivals) for port, src in inputs_by_port(qgraph.graph, node).items()
            if (node, port) not in arrivals)
    return known[node]


def full_bias(op) -> bool:
    """A conv or linear whose every output has a bias that is not 0 (a constant input at every step)."""
    return isinstance(op, (QConv2d, QLinear)) and bool(np.all(op.bias != 0))


def _either(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """``a | b``, None standing for all False."""
    return b if a is None else a if b is None else a | b


def _biased(op, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor | None:
    """Where a conv's (per channel) or a linear's (per output) bias is not 0; None for other ops and
    where every bias is 0."""
    if not isinstance(op, (QConv2d, QLinear)) or not np.any(op.bias):
        return None
    mask = torch.from_numpy(op.bias != 0).to(like.device)
    return (mask[:, None, None] if isinstance(op, QConv2d) else mask).expand(shape)


def _carry(op, hit: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """An op's output elements that read at least one element of ``hit`` (its input indicator)."""
    if isinstance(op, (QMaxPool2d, QFlatten)):  # max of 0/1 is "any"; a flatten only moves elements
        return EXECUTORS[type(op)](op, {"x": hit.to(torch.int64)}, None, None, "reach") != 0
    if isinstance(op, QMean):
        if op.axes:
            hit = hit.flatten(2 + op.axes[0], 2 + op.axes[-1]).any(2 + op.axes[0])
        if op.time:
            hit = on_steps(hit.any(0, keepdim=True), shape[0])
        return hit
    return hit.expand(shape)  # elementwise (LIF, ReLU, sums, products), or broadcast


def _state_before(qgraph, layer, values: dict, T: int, traces: dict) -> torch.Tensor:
    """Where the layer's state is not 0 before each step: a LIF's membrane, a readout's running sum
    (a non-firing accumulator on the chip); other layers keep no state."""
    out = values[layer.name]
    op = qgraph.qop(layer.name)
    if isinstance(op, QLIF):
        trace = traces.get(layer.name)
        if trace is None:  # rerun with the executor's own LIF, which traces what it computes
            _, trace = trace_lif(values[next(iter(qgraph.graph.predecessors(layer.name)))], op, qgraph.state_bits)
        return on_steps(trace.state_before, T)
    if layer.kind != "readout":
        return torch.zeros_like(on_steps(out, T), dtype=torch.bool)
    state = out.cumsum(0)
    before = torch.zeros_like(state, dtype=torch.bool)
    before[1:] = state[:-1] != 0
    return on_steps(before, T)
