"""Quantized graph -> Lava processes: Lava's own Conv, Dense and LIF wherever they express a layer,
our processes (`processes`, `attention`) for the rest, an injector for the input, one recorder for the outputs.

Per node of the integer graph (`statten_hw.quant.quantize`):

* ``QConv2d`` -> ``lava.proc.conv.process.Conv``: the 8-bit mantissas and the layer's ``weight_exp``
  (which our conv model applies, as Loihi does; Lava's own fixed-point conv ignores it), kernel
  flipped and in Lava's ``(C_out, X, Y, C_in)`` order (Lava convolves, PyTorch correlates), 24-bit
  accumulator, run by `synapses.PyConvFastModel`, which sums in int64 (exact) and wraps the sums to
  24 bits as Lava's ``clamp_precision`` does: where the integer contract saturates a sum, Lava
  wraps it, and it wraps the sum before its bias (added by the receiver, below), so a bias-free
  sum beyond 24 bits that the bias brings back differs too. Only runs with neither are bit-exact;
  the report counts both (`report.agreement`).
* ``QLinear`` -> ``lava.proc.dense.process.Dense`` (one weight block per token), Loihi's mixed-sign
  8-bit synapse: mantissa ``2·w`` with ``weight_exp`` one below the layer's (Lava truncates the
  lowest bit of mixed-sign weights), int32 sums: a layer whose sums could reach 2^31 is refused
  (`UnsupportedLayer`).
* ``QLIF`` -> ``lava.proc.lif.process.LIFReset`` (``TernaryLIF`` for ternary neurons) run by
  `neurons.LIF_MODELS`: ``du = 4095`` (no current memory), ``dv`` as is, ``vth = threshold - 1``
  (Lava fires on ``v > vth``), the feeding synapse's bias as ``bias_mant`` with ``bias_exp = 6``,
  reset in every sample window at the step where its input first becomes valid (``arrival``).
* ``QFlatten`` -> no process: a Lava ``ReshapePort`` (channels-last maps are tokens already).
* ``QOutput`` -> no process: the recorder reads the logits where they are made.
* everything else -> one of our graded processes; SDSA -> `SdsaKV`, a ``LIFReset``, `SdsaGate`.

One `Recorder` process keeps the outputs of every layer (and of any probed node).

Synapses carry no bias: the bias of a conv/dense output is added by whatever receives it (the LIF's
``bias_mant`` or a graded process's ``bias``), so a synapse fed by another synapse is refused. Loihi 2 precisions are checked, not assumed: weights
must fit 8 bits, ``dv`` 12 bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from statten_hw.errors import GraphError, UnsupportedLayer
from statten_hw.ir.graph import SHAPE, inputs_by_port, topological_order
from statten_hw.quant.quantize import (QAdd, QAttention, QConv2d, QFlatten, QInput, QLIF, QLinear, QMaxPool2d,
                                       QMean, QMul, QOutput, QReLU, QuantizedGraph)
from statten_hw.quant.fixed_point import limit

from . import _compat
from .attention import ATTENTION_MODELS, SdsaGate, SdsaKV, SpikingAttention
from .graded import MESSAGE_BITS
from .layout import lava_shape, to_lava
from .neurons import LIF_MODELS, NO_CURRENT_MEMORY_DU, UNIT_BIAS_EXP, check_dv
from .hostio import PyIntegerInjectorModel, Recorder, recorder_model
from .processes import PROCESS_MODELS, Add, MaxPool, Mean, Mul, ReLU
from .schedule import Schedule, schedule
from .synapses import CONV_MODELS, LOIHI_WEIGHT_BITS, check_weights

lava = _compat.import_lava()

#: Lava's Dense sums in int32.
DENSE_LIMIT = 1 << 31


@dataclass
class NodeOutput:
    """How a node's value reaches its consumers: the Lava port, the bias the consumer must add
    (Lava layout, or None), whether it is a binary spike stream, and a bound on its magnitude."""

    port: object
    bias: np.ndarray | None
    binary: bool
    bound: int


@dataclass
class LavaNetwork:
    """The Lava processes of one quantized graph: ``source`` (Lava's ``Injector``) takes the samples
    from the host, ``recorder`` sends the outputs of ``recorded`` nodes (every layer, the probes, the
    output node last) back, both through external pipes of one run's steps; ``processes`` lists
    ``(node, process)`` pairs, ``emitters[layer]`` the process sending a layer's output. One Lava run
    covers ``samples`` windows, ``buffer`` steps."""

    qgraph: QuantizedGraph
    schedule: Schedule
    samples: int
    source: object = None
    recorder: object = None
    recorded: list = field(default_factory=list)
    processes: list = field(default_factory=list)
    emitters: dict = field(default_factory=dict)

    @property
    def buffer(self) -> int:
        return self.schedule.window * self.samples

    @property
    def run_cfg(self):
        """``fixed_pt`` models; ours (and the integer-membrane LIF models) named per process instance,
        which Lava's compiler honours before it searches module folders for models."""
        models = {**LIF_MODELS, **CONV_MODELS, **PROCESS_MODELS, **ATTENTION_MODELS}
        chosen = {p: models[type(p)] for _, p in self.processes if type(p) in models}
        chosen[self.recorder] = recorder_model(len(self.recorded))
        chosen[self.source] = PyIntegerInjectorModel
        return lava.Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=chosen)


def recorded_nodes(qgraph: QuantizedGraph) -> list[str]:
    """Nodes whose outputs are neuron-layer outputs: every LIF, every ReLU (A2OS2A's graded K) and
    every attention that spikes itself (SDSA)."""
    def is_layer(op):
        return isinstance(op, (QLIF, QReLU)) or (isinstance(op, QAttention) and op.mode == "SDSA")
    return [n for n in topological_order(qgraph.graph) if is_layer(qgraph.qop(n))]


class _Builder:
    def __init__(self, qgraph: QuantizedGraph, samples: int):
        self.q, self.g = qgraph, qgraph.graph
        self.net = LavaNetwork(qgraph, schedule(qgraph), samples)
        self.out: dict[str, NodeOutput] = {}
        self.cap = limit(qgraph.state_bits)

    # -- helpers --------------------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.g.nodes[name][SHAPE])

    def inputs(self, name: str) -> dict[str, str]:
        return inputs_by_port(self.g, name)

    def add(self, name: str, process) -> object:
        self.net.processes.append((name, process))
        return process

    def graded(self, cls, name: str, **params):
        """A graded process for ``name`` wired to its inputs, with delays, biases and window."""
        ports = self.inputs(name)
        sched = self.net.schedule
        process = self.add(name, cls(
            shapes={p: self.shape(src) for p, src in ports.items()}, out_shape=self.shape(name),
            delay=sched.port_delay(self.q, name), bias={p: self.out[src].bias for p, src in ports.items()},
            window=sched.window, start=sched.arrival[name], name=name, **params))
        for port, src in ports.items():
            self.out[src].port.connect(getattr(process, port))
        return process

    def message_bits(self, src: str) -> int:
        return 0 if self.out[src].binary else MESSAGE_BITS

    def reset(self, step: int) -> dict:
        """LIFReset parameters: clear the state at window step ``step`` (the neurons' first valid
        input) of every window; Lava counts time steps from 1."""
        window = self.net.schedule.window
        return {"reset_interval": window, "reset_offset": (step + 1) % window}

    # -- one method per integer op --------------------------------------------------------------
    def input(self, name, op: QInput):
        self.net.source = self.add(name, lava.Injector(shape=lava_shape(self.shape(name)),
                                                      buffer_size=self.net.buffer, name=name))
        return NodeOutput(self.net.source.out_port, None, False, op.levels[1])

    def synapse_input(self, name: str, kind: str) -> str:
        """The node feeding synapse ``name``; `UnsupportedLayer` when its values still lack a bias
        (a synapse feeding a synapse: Lava's synapses add none, the receiver of a sum adds it)."""
        src = self.inputs(name)["x"]
        if self.out[src].bias is not None:
            raise UnsupportedLayer(name, kind, f"its input {src!r} is another synapse's sum, whose bias no Lava "
                                               "synapse adds (put a neuron or graded op between them)")
        return src

    def conv(self, name, op: QConv2d):
        src = self.synapse_input(name, "conv2d")
        w = check_weights(name, "conv2d", op.mantissa)
        kernel = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1)).astype(np.int32)
        conv = self.add(name, lava.Conv(weight=kernel, weight_exp=op.weight_exp,
                                        input_shape=lava_shape(self.shape(src)),
                                        padding=op.padding, stride=op.stride, groups=op.groups,
                                        num_message_bits=self.message_bits(src), name=name))
        self.out[src].port.connect(conv.s_in)
        bias = to_lava(np.broadcast_to(op.bias[:, None, None], self.shape(name)), self.shape(name))
        return NodeOutput(conv.a_out, bias, False, self.cap)

    def linear(self, name, op: QLinear):
        src = self.synapse_input(name, "linear")
        w = check_weights(name, "linear", op.mantissa)
        tokens = self.shape(name)[0] if len(self.shape(name)) == 2 else 1
        reach = (2 << op.weight_exp) * self.out[src].bound * int(np.abs(w).sum(1).max(initial=0))
        if reach >= DENSE_LIMIT:
            raise UnsupportedLayer(name, "linear", f"sums may reach {reach} >= 2^31, beyond Lava's int32 Dense")
        weights = 2 * np.kron(np.eye(tokens, dtype=np.int64), w)  # Loihi's mixed-sign mantissa: 2w, exponent - 1
        dense = self.add(name, lava.Dense(weights=weights.astype(np.int32), weight_exp=op.weight_exp - 1,
                                          num_weight_bits=LOIHI_WEIGHT_BITS, sign_mode=lava.SignMode.MIXED,
                                          num_message_bits=self.message_bits(src), name=name))
        self.out[src].port.connect(dense.s_in)
        return NodeOutput(dense.a_out, np.tile(op.bias, tokens), False, self.cap)

    def lif(self, name, op: QLIF):
        src = self.inputs(name)["x"]
        check_dv(name, op.dv)
        shape = lava_shape(self.shape(name))
        bias = self.out[src].bias if self.out[src].bias is not None else np.zeros(shape, np.int64)
        common = dict(shape=shape, du=NO_CURRENT_MEMORY_DU, dv=op.dv, bias_mant=bias.astype(np.int32),
                      bias_exp=UNIT_BIAS_EXP, name=name)
        if op.ternary:
            neuron = lava.TernaryLIF(vth_hi=op.threshold - 1, vth_lo=1 - op.threshold, **common)
            for key, value in self.reset(self.net.schedule.arrival[name]).items():  # read by our ternary model
                neuron.proc_params[key] = value
        else:
            neuron = lava.LIFReset(vth=op.threshold - 1, **common, **self.reset(self.net.schedule.arrival[name]))
        self.add(name, neuron)
        self.out[src].port.connect(neuron.a_in)
        return NodeOutput(neuron.s_out, None, not op.ternary, 1)

    def relu(self, name, op):
        return NodeOutput(self.graded(ReLU, name).s_out, None, False, self.out[self.inputs(name)["x"]].bound)

    def maxpool(self, name, op: QMaxPool2d):
        src = self.inputs(name)["x"]
        pool = self.graded(MaxPool, name, kernel=op.kernel, stride=op.stride, padding=op.padding)
        return NodeOutput(pool.s_out, None, self.out[src].binary, self.out[src].bound)

    def flatten(self, name, op: QFlatten):
        src = self.out[self.inputs(name)["x"]]
        if not op.channels_last:
            raise UnsupportedLayer(name, "flatten", "only channels-last flattening ([C,H,W] -> [H·W, C]) is a "
                                                    "Lava reshape")
        shape = lava_shape(self.shape(name))
        bias = None if src.bias is None else src.bias.reshape(shape)
        return NodeOutput(src.port.reshape(shape), bias, src.binary, src.bound)

    def mean(self, name, op: QMean):
        src = self.inputs(name)["x"]
        bound = self.cap if op.mult is not None else min(self.cap, self.out[src].bound * op.count)
        process = self.graded(Mean, name, axes=op.axes, time=op.time, mult=op.mult, shift=op.shift,
                              state_bits=self.q.state_bits)
        return NodeOutput(process.s_out, None, False, bound)

    def add_op(self, name, op: QAdd):
        ports = self.inputs(name)
        process = self.graded(Add, name, lhs_rq=op.lhs_rq, rhs_rq=op.rhs_rq, state_bits=self.q.state_bits)
        plain = op.lhs_rq == (1, 0) and op.rhs_rq == (1, 0)
        bound = sum(self.out[s].bound for s in ports.values()) if plain else self.cap
        return NodeOutput(process.s_out, None, False, min(bound, self.cap))

    def mul(self, name, op):
        ports = self.inputs(name)
        process = self.graded(Mul, name, state_bits=self.q.state_bits)
        bound = math.prod(self.out[s].bound for s in ports.values())
        binary = all(self.out[s].binary for s in ports.values())
        return NodeOutput(process.s_out, None, binary, min(bound, self.cap))

    def attention(self, name, op: QAttention):
        if op.mode == "SDSA":
            return self._sdsa(name, op)
        process = self.graded(SpikingAttention, name, mode=op.mode, heads=op.heads, block_size=op.block_size,
                              state_bits=self.q.state_bits)
        return NodeOutput(process.s_out, None, False, self.cap)

    def _sdsa(self, name, op: QAttention):
        """K⊙V sums -> a real Lava LIFReset (the K⊙V neurons) -> Q gate; all in step with q, k, v."""
        ports, sched = self.inputs(name), self.net.schedule
        kv_start = max(sched.latency[ports["k"]], sched.latency[ports["v"]])
        channels = self.shape(name)[0]
        common = dict(window=sched.window, state_bits=self.q.state_bits, heads=op.heads, dvs=op.dvs)
        kv = self.add(name, SdsaKV(shapes={p: self.shape(ports[p]) for p in "kv"}, out_shape=(channels,),
                                   delay={p: kv_start - sched.latency[ports[p]] for p in "kv"},
                                   bias={p: self.out[ports[p]].bias for p in "kv"}, start=kv_start,
                                   name=f"{name}.kv", **common))
        for p in "kv":
            self.out[ports[p]].port.connect(getattr(kv, p))
        neurons = self.add(name, lava.LIFReset(shape=(channels,), du=NO_CURRENT_MEMORY_DU,
                                               dv=check_dv(f"{name}.kv_lif", op.kv_lif.dv),
                                               vth=op.kv_lif.threshold - 1, bias_mant=0, bias_exp=UNIT_BIAS_EXP,
                                               name=f"{name}.kv_lif", **self.reset(kv_start)))
        kv.s_out.connect(neurons.a_in)
        start = sched.arrival[name]
        gate = self.add(name, SdsaGate(shapes={"q": self.shape(ports["q"]), "kv": (channels,)},
                                       out_shape=self.shape(name),
                                       delay={"q": start - sched.latency[ports["q"]], "kv": start - kv_start},
                                       bias={"q": self.out[ports["q"]].bias, "kv": None}, start=start,
                                       name=f"{name}.gate", **common))
        self.out[ports["q"]].port.connect(gate.q)
        neurons.s_out.connect(gate.kv)
        return NodeOutput(gate.s_out, None, True, 1)

    def output(self, name, op: QOutput):
        return self.out[self.inputs(name)["x"]]  # the logits are what feeds the output (bias added when recorded)

    # -- the whole graph ------------------------------------------------------------------------
    def build(self, probes: tuple[str, ...]) -> LavaNetwork:
        rules = {QInput: self.input, QConv2d: self.conv, QLinear: self.linear, QLIF: self.lif,
                 QReLU: self.relu, QMaxPool2d: self.maxpool, QFlatten: self.flatten, QMean: self.mean,
                 QAdd: self.add_op, QMul: self.mul, QAttention: self.attention, QOutput: self.output}
        for name in topological_order(self.g):
            op = self.q.qop(name)
            rule = rules.get(type(op))
            if rule is None:
                raise UnsupportedLayer(name, type(op).__name__, "no Lava process for this integer op")
            self.out[name] = rule(name, op)
        layers = recorded_nodes(self.q)
        self.net.emitters = {n: self.out[n].port.process for n in layers}
        further = dict.fromkeys(p for p in probes if p not in layers and p != self.q.output_node)  # once each
        names = [*layers, *further, self.q.output_node]
        self.net.recorded = names
        self.net.recorder = Recorder(shapes=[lava_shape(self.shape(n)) for n in names],
                                     bias=[self.out[n].bias for n in names], buffer=self.net.buffer, name="recorder")
        for i, name in enumerate(names):
            self.out[name].port.connect(getattr(self.net.recorder, f"in_{i}"))
        return self.net


def build_network(qgraph: QuantizedGraph, samples: int, probes: tuple[str, ...] = ()) -> LavaNetwork:
    """The Lava network of ``qgraph``, running ``samples`` sample windows per run (module docstring);
    ``probes``: further nodes whose values are recorded (e.g. attention counts, residual sums)."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    unknown = [p for p in probes if p not in qgraph.graph]
    if unknown:
        raise GraphError(f"probe nodes {unknown} are not in the graph")
    return _Builder(qgraph, samples).build(tuple(probes))
