"""When each value exists in a Lava run: synapse delays, the attention block buffer, sample windows.

Every Lava process advances one step per global step. A synapse (``Dense``: ``PyDenseModelBitAcc``,
``Conv``: ``PyConvModelFixed``) sends at step ``s`` what it accumulated at ``s - 1`` (``a_out.send``
before ``s_in.recv``, Lava's guard against deadlock in recurrent nets), so it adds one step. Neurons
and our graded processes receive and send within a step. A block-wise attention process answers only
once the last of its B steps arrived, so it adds ``B - 1``. Hence node ``n``'s value for integer step
``t`` leaves its process at Lava step ``latency[n] + t``; a process with several inputs delays the
earlier ones by `port_delay` so that all its inputs describe the same ``t``.

Samples run back to back in windows of ``window = T + max latency`` steps. Node ``n`` holds valid
values at window steps ``latency[n] .. latency[n] + T - 1``; every stateful process resets its state
at its window step ``arrival[n]`` (the first step its inputs are valid), so what came earlier (the
previous sample's tail, a synapse's buffered sum) never reaches a valid value.

After a time mean (``QMean(time=True)``) a value has one step: its running sum is valid at its last
window step only, so nothing stateful may follow it (`UnsupportedLayer` otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass

from statten_hw.errors import UnsupportedLayer
from statten_hw.ir.graph import inputs_by_port, topological_order
from statten_hw.quant.quantize import QAttention, QConv2d, QInput, QLIF, QLinear, QMean, QOutput, QuantizedGraph

#: Extra steps per node kind: synapses deliver one step late (see the module docstring).
SYNAPSE_DELAY = 1


@dataclass(frozen=True)
class Schedule:
    """``latency[n]``: window step of ``n``'s value for ``t = 0``; ``arrival[n]``: the window step
    at which all inputs of ``n`` are valid; ``single[n]``: ``n`` follows a time mean (one value,
    valid at ``latency[n] + T - 1``)."""

    timesteps: int
    latency: dict[str, int]
    arrival: dict[str, int]
    single: frozenset[str]

    @property
    def window(self) -> int:
        """Lava steps per sample."""
        return self.timesteps + max(self.latency.values())

    def port_delay(self, qgraph: QuantizedGraph, name: str) -> dict[str, int]:
        """Steps each input port of ``name`` is held back so that all describe the same ``t``."""
        ports = inputs_by_port(qgraph.graph, name)
        return {port: self.arrival[name] - self.latency[src] for port, src in ports.items()}


def _extra_latency(op) -> int:
    if isinstance(op, (QConv2d, QLinear)):
        return SYNAPSE_DELAY
    if isinstance(op, QAttention) and op.mode not in ("SSA", "SDSA"):
        return op.block_size - 1
    return 0


def _is_stateful(op) -> bool:
    return isinstance(op, (QLIF, QAttention)) or (isinstance(op, QMean) and op.time)


def schedule(qgraph: QuantizedGraph) -> Schedule:
    """The Lava timing of every node of ``qgraph`` (module docstring)."""
    g = qgraph.graph
    latency: dict[str, int] = {}
    arrival: dict[str, int] = {}
    single: set[str] = set()
    timesteps = None
    for name in topological_order(g):
        op = qgraph.qop(name)
        sources = list(inputs_by_port(g, name).values())
        arrival[name] = max((latency[s] for s in sources), default=0)
        latency[name] = arrival[name] + _extra_latency(op)
        if isinstance(op, QInput):
            timesteps = op.timesteps
        after_mean = any(s in single for s in sources)
        if after_mean and _is_stateful(op):
            raise UnsupportedLayer(name, type(op).__name__, "follows a time mean; its one value cannot drive "
                                                            "state on a step-by-step chip")
        if after_mean and isinstance(op, QOutput) and op.per_step:
            raise UnsupportedLayer(name, "QOutput", "per-step output after a time mean")
        if after_mean or (isinstance(op, QMean) and op.time):
            single.add(name)
    return Schedule(timesteps, latency, arrival, frozenset(single))
