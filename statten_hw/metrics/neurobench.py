"""NeuroBench's complexity metrics of a run, under NeuroBench's names and with its definitions.

Definitions: Yik et al., "The neurobench framework for benchmarking neuromorphic computing algorithms
and systems", Nature Communications 16, 1545 (2025), arXiv:2304.04640, Methods, "Algorithm track
metrics", as the ``neurobench`` package (version :data:`NEUROBENCH_VERSION`) implements them; the
paths below are modules of that package. The keys are the names its ``Benchmark.run`` returns.

* ``Footprint`` (``metrics/static/footprint.py``): bytes of the model's parameters and buffers,
  ``Σ numel · element_size``. The integer deployment's parameters are its conv/linear weights, each
  stored in the narrowest integer type holding ``weight_bits`` (1 byte up to 8 bits, 2 up to 16,
  as torch's ``element_size`` counts an int8/int16 tensor), and its folded biases, ``state_bits``
  wide (4 bytes for 24 bits). It has no buffers in NeuroBench's sense: BN's running statistics are
  folded into the biases, and neuron state is created per run, like snntorch's lazily shaped
  ``mem``, which NeuroBench's static pass finds empty. Per-layer constants (thresholds, leaks) are
  plain numbers in our float model, not torch tensors, so NeuroBench does not count them there
  either.
* ``ConnectionSparsity`` (``metrics/static/connection_sparsity.py``): zero weights over all weights
  of the Linear and Conv layers (biases not counted), rounded to 4 decimals as NeuroBench rounds it.
* ``ActivationSparsity`` (``metrics/workload/activation_sparsity.py``): zero outputs over all
  outputs of every activation layer (LIF neurons, SDSA's K⊙V neurons, ReLU), all steps and samples.
* ``SynapticOperations`` (``metrics/workload/synaptic_operations.py``, ``metrics/utils/layers/``):
  for every Linear/Conv layer NeuroBench runs a 0/1 copy of the layer (bias zeroed) on a 0/1 copy
  of its input and sums the outputs: each non-zero input entry times the non-zero weights it meets.
  If the input holds only -1, 0 and 1 the count goes to ``Effective_ACs``, else to
  ``Effective_MACs``. ``Dense`` is the same with every input and weight set to 1 (taps on zero
  padding still count nothing, unlike the STAtten paper's ``F_conv``). All three are summed over
  steps and divided by the number of samples. Attention products (Q·KᵀV) are not Linear/Conv
  modules, so NeuroBench does not count them, and neither do we here.
* ``MembraneUpdates`` (``metrics/workload/membrane_updates.py``): per spiking layer, every neuron at
  the first step, then each neuron whose membrane differs from its value one step before; divided
  by the number of samples. The membrane is the state a neuron keeps between steps, ``v`` after
  the hard reset (snntorch's ``mem`` with ``reset_delay=False``). ReLU keeps none and counts none.

NeuroBench decides AC versus MAC per forward call (per batch); here one run is one call. Neither
executor stores membrane potentials. An integer run made with ``run_integer(..., trace_lifs=True)``
(as ``simulate`` makes it) hands back each LIF's membrane updates and spike count, reduced while it
ran (`statten_hw.quant.execute.LifTrace`); for any other run, and for the float model, each LIF is
replayed from its input current with its executor's own arithmetic, and a replay that does not
reproduce the run's spikes raises. The fan-outs of a layer depend on its weights and input shape
only, so they are kept per (layer, shape).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import partial
from itertools import chain

import networkx as nx
import numpy as np
import torch
from torch import nn

from statten_hw.errors import GraphError, UnsupportedLayer
from statten_hw.ir import nodes as ir
from statten_hw.ir.execute_float import _dvs_pool as _float_dvs_pool, _heads_from_map, run_float
from statten_hw.ir.graph import OP, inputs_by_port, topological_order
from statten_hw.quant.execute import (IntegerRun, LifTrace, _dvs_pool as _integer_dvs_pool, _heads, exact_dtype,
                                      execution_plan, trace_lif)
from statten_hw.quant.fixed_point import saturate
from statten_hw.quant.quantize import QAttention, QConv2d, QLIF, QLinear, QReLU, QuantizedGraph

#: The neurobench release whose metric code these definitions were checked against.
NEUROBENCH_VERSION = "2.3.0"
#: The torch layers NeuroBench counts as connections (``neurobench/blocks/layer.py``, stateless).
CONNECTION_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class Synapse:
    """A conv or linear layer (IR or integer op) and its input ``[T, batch, *in_shape]``."""

    name: str
    op: object
    x: torch.Tensor


@dataclass(frozen=True)
class Neuron:
    """An activation layer, as much of it as the metrics read: how many outputs it gave (all steps
    and samples), how many of them were not 0, and for a spiking layer its ``membrane_updates``
    (every neuron at the first step, then each one whose membrane changed; None for ReLU)."""

    name: str
    outputs: int
    nonzero: int
    membrane_updates: int | None


def neuron(name: str, out: torch.Tensor, membrane: torch.Tensor | None = None) -> Neuron:
    """The `Neuron` of an output ``[T, batch, *shape]`` and, for a spiking layer, its membrane after
    every step (same shape)."""
    updates = None if membrane is None else (
        membrane[0].numel() + int(torch.count_nonzero(membrane[1:] != membrane[:-1])))
    return Neuron(name, out.numel(), int(torch.count_nonzero(out)), updates)


def traced_neuron(name: str, trace: LifTrace) -> Neuron:
    """The `Neuron` of an integer LIF from what the run reduced its membrane to."""
    return Neuron(name, trace.outputs, trace.spikes, trace.membrane_updates)


# --- the metrics, on synapses and neurons ------------------------------------------------------

def _narrowest_bytes(bits: int) -> int:
    """Bytes of the narrowest torch integer type holding ``bits`` (int8, int16, int32, int64)."""
    return next(b for b in (1, 2, 4, 8) if 8 * b >= bits)


def connection_sparsity(weights: list[np.ndarray]) -> float:
    """Zero weights over all weights, rounded to 4 decimals (NeuroBench's rounding)."""
    return _sparsity([_zeros(w) for w in weights], [w.size for w in weights])


def _sparsity(zeros: list[int], sizes: list[int]) -> float:
    return round(sum(zeros) / sum(sizes), 4)


def _zeros(w: np.ndarray) -> int:
    return int(np.count_nonzero(w == 0))  # numpy counts booleans several times faster than floats


#: Zero weights per integer conv/linear op (its weights are frozen): ``ConnectionSparsity`` reads every
#: weight of the deployment, hundreds of MB on SDT-8-768, the same for every run.
_ZERO_WEIGHTS: "weakref.WeakKeyDictionary[object, int]" = weakref.WeakKeyDictionary()


def integer_connection_sparsity(qgraph: QuantizedGraph) -> float:
    """`connection_sparsity` of the integer deployment's weights, each op's zeros counted once."""
    ops = synaptic_ops(qgraph)
    for op in ops:
        if op not in _ZERO_WEIGHTS:
            _ZERO_WEIGHTS[op] = _zeros(op.weight)
    return _sparsity([_ZERO_WEIGHTS[op] for op in ops], [op.weight.size for op in ops])


def activation_sparsity(neurons: list[Neuron]) -> float:
    """Zero outputs over all outputs of every activation layer (0.0 with no activations, as NeuroBench)."""
    total = sum(n.outputs for n in neurons)
    firing = sum(n.nonzero for n in neurons)
    return (total - firing) / total if total else 0.0


def membrane_updates(neurons: list[Neuron], samples: int) -> float:
    """Per sample: all neurons at step 0, then every neuron whose membrane changed from the step before."""
    return sum(n.membrane_updates for n in neurons if n.membrane_updates is not None) / samples


def _fan_out(op, in_shape: tuple[int, ...], mask: np.ndarray) -> torch.Tensor:
    """Per input site: how many (output, weight) pairs with ``mask`` set read it, shape ``in_shape``.

    One input event at a site costs exactly that many operations, so ``Σ events · fan_out`` is the
    sum NeuroBench takes over the 0/1 layer's output. A linear layer's is its column's count. A
    conv's (its transpose applied to ones) separates: input ``(c, y, x)`` is read through tap
    ``(i, j)`` by one output exactly where row ``y`` is read through ``i`` and column ``x`` through
    ``j`` (`_reads`), so it is ``Σ_ij taps[c, i, j] · rows[y, i] · cols[x, j]`` with ``taps`` the
    mask summed over the outputs of ``c``'s group: a few operations per site, not a transposed conv.
    """
    w = torch.from_numpy(mask.astype(np.float64))
    if w.dim() == 2:  # linear on the last axis: a column's non-zero weights
        return w.sum(0).expand(in_shape)
    C, H, W = in_shape
    c_out, per_group, kh, kw = w.shape
    taps = w.reshape(op.groups, c_out // op.groups, per_group, kh, kw).sum(1).reshape(C, kh, kw)
    rows = _reads(H, kh, op.stride[0], op.padding[0])
    cols = _reads(W, kw, op.stride[1], op.padding[1])
    return torch.einsum("cij,yi,xj->cyx", taps, rows, cols)


def _reads(n: int, k: int, stride: int, pad: int) -> torch.Tensor:
    """``[n, k]`` 0/1: input position ``y`` meets tap ``i`` of some output position ``o`` along one
    axis, ``y + pad - i = stride · o`` with ``0 <= o < n_out`` (taps on the padding read nothing)."""
    n_out = (n + 2 * pad - k) // stride + 1
    at = torch.arange(n)[:, None] + pad - torch.arange(k)[None, :]
    return ((at >= 0) & (at % stride == 0) & (at < n_out * stride)).to(torch.float64)


#: Per conv/linear op (its weights are frozen) and input shape: ``(effective fan-out per input site,
#: dense operations per step and sample)``.
_FAN_OUTS: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def fan_outs(op, in_shape: tuple[int, ...]) -> tuple[torch.Tensor, int]:
    """`_fan_out` of the non-zero weights, and the dense count (every weight, every input site),
    computed once per (op, input shape)."""
    per_shape = _FAN_OUTS.setdefault(op, {})
    if in_shape not in per_shape:
        weight = np.asarray(op.weight)
        dense = _fan_out(op, in_shape, np.ones_like(weight, dtype=bool)).sum()
        per_shape[in_shape] = _fan_out(op, in_shape, weight != 0), int(dense)
    return per_shape[in_shape]


def is_spiking(x: torch.Tensor) -> bool:
    """NeuroBench's test for an AC layer: every input value is -1, 0 or 1. One ``aminmax`` pass
    decides it for integer tensors (and rules out floats beyond ±1); other floats are compared."""
    if x.numel() == 0:
        return True
    low, high = torch.aminmax(x)
    if not (-1 <= low and high <= 1):  # also False on NaN
        return False
    return not x.is_floating_point() or bool(((x == 0) | (x == 1) | (x == -1)).all())


def layer_operations(s: Synapse) -> tuple[int, int]:
    """``(effective, dense)`` operations of one layer over its whole input (all steps, all samples):
    each step-sample's 0/1 event row times the fan-outs, one matrix-vector product."""
    shape = tuple(s.x.shape[2:])
    fan = _fan_on(s.op, shape, s.x.device)
    per_row = (s.x != 0).reshape(-1, fan.numel()).to(fan.dtype) @ fan
    return int(per_row.sum(dtype=torch.float64)), fan_outs(s.op, shape)[1] * s.x.shape[0] * s.x.shape[1]


#: `fan_outs`' effective fan-outs, flat, per (input shape, device): the form the product reads.
_FAN_ON: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def _fan_on(op, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The fan-outs in the float type whose sums are exact: a row's sum is at most ``Σ fan``
    (`quant.execute.exact_dtype`: float32 below 2^24 on the CPU)."""
    per_key = _FAN_ON.setdefault(op, {})
    key = (shape, str(device))
    if key not in per_key:
        fan = fan_outs(op, shape)[0].reshape(-1)
        per_key[key] = fan.to(device=device, dtype=exact_dtype(float(fan.sum()), device))
    return per_key[key]


def synaptic_operations(synapses: list[Synapse], samples: int) -> dict[str, float]:
    """NeuroBench's ``SynapticOperations`` result: effective MACs, effective ACs, dense, per sample."""
    macs = acs = dense = 0
    for s in synapses:
        effective, total = layer_operations(s)
        if is_spiking(s.x):
            acs += effective
        else:
            macs += effective
        dense += total
    return {"Effective_MACs": macs / samples, "Effective_ACs": acs / samples, "Dense": dense / samples}


def workload_metrics(synapses: list[Synapse], neurons: list[Neuron], samples: int) -> dict:
    """The three workload metrics under NeuroBench's result keys."""
    return {"ActivationSparsity": activation_sparsity(neurons),
            "SynapticOperations": synaptic_operations(synapses, samples),
            "MembraneUpdates": membrane_updates(neurons, samples)}


# --- membranes: each executor's LIF, replayed with its state kept --------------------------------

def float_lif(x: torch.Tensor, op: ir.LIF, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spikes, membrane)`` of ``ir.execute_float.lif_forward`` (hard reset to 0, the integer contract's LIF)."""
    if op.reset != "hard" or op.v_reset != 0:
        raise UnsupportedLayer(name, "lif", f"membrane updates are counted for hard reset to 0 only "
                                            f"(reset {op.reset!r}, v_reset {op.v_reset})")
    v = torch.zeros_like(x[0])
    spikes, membrane = [], []
    for x_t in x:
        h = v + (x_t - v) * (1.0 / op.tau)
        s = (h - op.threshold >= 0).to(h.dtype)
        if op.ternary:
            s = s - (-h - op.threshold >= 0).to(h.dtype)
        v = h * (1.0 - s.abs())
        spikes.append(s)
        membrane.append(v)
    return torch.stack(spikes), torch.stack(membrane)


def _checked(name: str, spikes: torch.Tensor, recorded: torch.Tensor) -> None:
    if not torch.equal(spikes, recorded):
        raise GraphError(f"node {name!r}: the membrane replay does not reproduce the run's spikes")


def _sdsa_current(k: torch.Tensor, v: torch.Tensor, op, heads_of, pool) -> torch.Tensor:
    """SDSA's K⊙V neuron input ``Σ_N K⊙V`` per head (DVS: pooled first), as both executors form it."""
    kv = heads_of(k, op.heads) * heads_of(v, op.heads)
    return (pool(kv) if op.dvs else kv).sum(dim=-2, keepdim=True)


# --- activity of a run: which layers NeuroBench would hook, with what they saw ------------------

def _integer_rule(name, op, ins, out, state_bits, traces):
    """``traces``: the run's `LifTrace` per LIF (empty for a run made without them: then replayed)."""
    if isinstance(op, (QConv2d, QLinear)):
        return Synapse(name, op, ins["x"])
    if isinstance(op, QLIF):
        trace = traces.get(name)
        if trace is None:
            spikes, trace = trace_lif(ins["x"], op, state_bits)
            _checked(name, spikes, out)
        return traced_neuron(name, trace)
    if isinstance(op, QReLU):
        return neuron(name, out)
    if isinstance(op, QAttention) and op.mode == "SDSA":
        key = f"{name}.kv_lif"
        trace = traces.get(key)
        if trace is None:
            current = _sdsa_current(ins["k"], ins["v"], op, _heads, _integer_dvs_pool)
            _, trace = trace_lif(saturate(current, state_bits, strict=False)[0], op.kv_lif, state_bits)
        return traced_neuron(key, trace)
    return None


def _float_rule(name, op, ins, out):
    if isinstance(op, (ir.Conv2d, ir.Linear)):
        return Synapse(name, op, ins["x"])
    if isinstance(op, ir.LIF):
        spikes, membrane = float_lif(ins["x"], op, name)
        _checked(name, spikes, out)
        return neuron(name, out, membrane)
    if isinstance(op, ir.ReLU):
        return neuron(name, out)
    if isinstance(op, ir.SpikingAttention) and op.mode == "SDSA":
        current = _sdsa_current(ins["k"], ins["v"], op, _heads_from_map, _float_dvs_pool)
        return neuron(f"{name}.kv_lif", *float_lif(current, ir.LIF(threshold=op.kv_threshold), name))
    return None


def _activity(steps: list[tuple[str, object, tuple]], values: dict, rule) -> tuple[list[Synapse], list[Neuron], int]:
    """``steps``: ``(node, op, ((port, source), ...))`` in dependency order, the input first."""
    synapses, neurons = [], []
    for name, op, inputs in steps:
        found = rule(name, op, {port: values[src] for port, src in inputs}, values[name])
        if isinstance(found, Synapse):
            synapses.append(found)
        elif isinstance(found, Neuron):
            neurons.append(found)
    return synapses, neurons, values[steps[0][0]].shape[1]


# --- entry points -------------------------------------------------------------------------------

def torch_footprint(model: nn.Module) -> int:
    """NeuroBench's ``Footprint`` of a torch module: its parameters' and buffers' bytes."""
    return sum(t.numel() * t.element_size() for t in chain(model.parameters(), model.buffers()))


def torch_connection_sparsity(model: nn.Module) -> float:
    """NeuroBench's ``ConnectionSparsity`` of a torch module: over every Linear/Conv weight in it,
    called or not (an unused module's weights count too)."""
    return connection_sparsity([m.weight.detach().cpu().numpy() for m in model.modules()
                                if isinstance(m, CONNECTION_LAYERS)])


def integer_footprint(qgraph: QuantizedGraph) -> int:
    """Bytes of the integer deployment's weights and biases (module docstring: the storage widths)."""
    w, b = _narrowest_bytes(qgraph.weight_bits), _narrowest_bytes(qgraph.state_bits)
    return sum(op.weight.size * w + op.bias.size * b for op in synaptic_ops(qgraph))


def synaptic_ops(qgraph: QuantizedGraph) -> list:
    """The integer conv/linear ops of ``qgraph``, in topological order: the layers NeuroBench counts."""
    return [step.op for step in execution_plan(qgraph) if isinstance(step.op, (QConv2d, QLinear))]


def neurobench_metrics(qgraph: QuantizedGraph, run: IntegerRun, model: nn.Module | None = None) -> dict:
    """NeuroBench's metrics of the integer deployment ``qgraph`` on ``run = run_integer(qgraph, x)``:
    ``Footprint``, ``ConnectionSparsity``,
    ``ActivationSparsity``, ``SynapticOperations`` (``Effective_MACs``, ``Effective_ACs``, ``Dense``)
    and ``MembraneUpdates``, per sample where NeuroBench averages. With the float ``model``,
    ``"float_model"`` adds the two static metrics NeuroBench reports for that torch module. A run
    made with ``trace_lifs=True`` gives its LIFs' counts directly; otherwise each LIF is rerun."""
    rule = partial(_integer_rule, state_bits=qgraph.state_bits, traces=run.lif_traces or {})
    steps = [(step.name, step.op, step.inputs) for step in execution_plan(qgraph)]
    synapses, neurons, samples = _activity(steps, run.values, rule)
    result = {"Footprint": integer_footprint(qgraph), "ConnectionSparsity": integer_connection_sparsity(qgraph),
              **workload_metrics(synapses, neurons, samples)}
    if model is not None:
        result["float_model"] = float_model_metrics(model)
    return result


def float_model_metrics(model: nn.Module) -> dict:
    """The two static metrics NeuroBench reports for the torch module ``model``."""
    return {"Footprint": torch_footprint(model), "ConnectionSparsity": torch_connection_sparsity(model)}


def float_neurobench_metrics(model: nn.Module, graph: nx.DiGraph, x: torch.Tensor) -> dict:
    """The same metrics for the float ``model`` on the batch ``x``, as NeuroBench measures it: static
    metrics of the torch module, workload metrics of ``graph`` (``ir.lower(model)`` or an equivalent
    hand-built graph, run by ``ir.execute_float``, which is bit-exact with the model)."""
    values = run_float(graph, x, keep=True)
    steps = [(n, graph.nodes[n][OP], tuple(inputs_by_port(graph, n).items())) for n in topological_order(graph)]
    synapses, neurons, samples = _activity(steps, values, _float_rule)
    return {**float_model_metrics(model), **workload_metrics(synapses, neurons, samples)}
