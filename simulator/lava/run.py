"""Run a quantized graph as Lava processes under ``Loihi2SimCfg(select_tag='fixed_pt')``.

>>> run = run_lava(qgraph, x)                                                  # doctest: +SKIP
>>> np.array_equal(run.spikes["q_lif"], run_integer(qgraph, x).values["q_lif"])  # doctest: +SKIP
True

The network is built and compiled once; samples then run back to back, ``samples_per_run`` windows
(`schedule`) per Lava run, each run's input sent to the injector before it starts and the recorded
outputs received after it ends. A node's value for step ``t`` is the one recorded at step
``latency + t`` of its sample's window, which is where it is read back (the delay compensation).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from statten_hw.errors import InputError
from statten_hw.ir.graph import SHAPE
from statten_hw.quant.quantize import QInput, QuantizedGraph
from statten_hw.quant.execute import EXECUTORS

from .build import LavaNetwork, build_network
from .layout import from_lava, lava_shape, to_lava
from .neurons import check_state_width
from .runtime import started

#: Samples per Lava run: the recorder holds ``window · samples`` steps of every recorded node.
SAMPLES_PER_RUN = 16


@dataclass(frozen=True)
class LavaProcessInfo:
    """One Lava process of the run: its name, its Lava class, the graph node it implements and whether
    it emits that node's recorded layer output (a LIF, SDSA's gate, A2OS2A's ReLU)."""

    name: str
    lava_class: str
    node: str
    emits: bool


@dataclass(frozen=True)
class LavaRun:
    """``spikes[node]``: int64 ``[T, batch, *shape]`` output of every neuron layer (LIF spikes, A2OS2A's
    graded ReLU, SDSA's spikes), comparable with ``run_integer(...).values[node]``; ``logits_int`` as
    ``IntegerRun.logits_int`` (int64 numpy); ``steps``: Lava steps executed; ``wall_s``: build,
    compile, run and stop; ``step_s``: injecting, stepping and receiving; ``timesteps``, ``window``,
    ``latency``: the schedule (`schedule.Schedule`); ``processes``: every Lava process of the network."""

    spikes: dict[str, np.ndarray]
    logits_int: np.ndarray
    steps: int
    wall_s: float
    step_s: float
    timesteps: int
    window: int
    latency: dict[str, int]
    processes: tuple[LavaProcessInfo, ...]

    @property
    def samples(self) -> int:
        return next(iter(self.spikes.values())).shape[1] if self.spikes else self.logits_int.shape[-2]


def integer_input(qgraph: QuantizedGraph, x: torch.Tensor) -> np.ndarray:
    """The network's integer input ``[T, batch, *shape]``: the contract's own sensor boundary."""
    name = qgraph.input_node
    return EXECUTORS[QInput](qgraph.qop(name), {}, x, None, name).numpy()


def _window_data(net: LavaNetwork, x_int: np.ndarray) -> np.ndarray:
    """Input of one run, ``[buffer, *lava_shape]``: sample k's steps in window k (zeros after its T
    steps and for padding windows)."""
    T, n = x_int.shape[:2]
    shape = x_int.shape[2:]
    data = np.zeros((net.samples, net.schedule.window, *lava_shape(shape)), np.int64)
    data[:n, :T] = to_lava(x_int.transpose(1, 0, *range(2, x_int.ndim)), shape)
    return data.reshape(-1, *data.shape[2:])


def _one_run(net: LavaNetwork, session, x_int: np.ndarray) -> dict[str, np.ndarray]:
    """Inject one chunk, run its windows, return each recorded node's ``[buffer, *lava_shape]``."""
    for step in _window_data(net, x_int):
        net.source.send(step)
    session.run(net.buffer)
    steps = [net.recorder.receive() for _ in range(net.buffer)]
    return {name: np.stack([s[i] for s in steps]).astype(np.int64) for i, name in enumerate(net.recorded)}


def _read(net: LavaNetwork, name: str, data: np.ndarray, n: int) -> np.ndarray:
    """``[buffer, *lava_shape]`` of ``name`` -> ``[T, n, *shape]`` (``[1, n, *shape]`` after a time mean)."""
    sched = net.schedule
    shape = tuple(net.qgraph.graph.nodes[name][SHAPE])
    data = data.reshape(net.samples, sched.window, *data.shape[1:])[:n]
    start = sched.latency[name]
    if name in sched.single:  # one step, as the integer executor keeps it
        return from_lava(data[None, :, start + sched.timesteps - 1], shape)
    return from_lava(data[:, start:start + sched.timesteps].swapaxes(0, 1), shape)


def run_lava(qgraph: QuantizedGraph, x: torch.Tensor, samples_per_run: int = SAMPLES_PER_RUN,
             probes: tuple[str, ...] = ()) -> LavaRun:
    """Run the batch ``x`` (model input layout) through ``qgraph`` as Lava processes (module docstring).
    ``probes``: further nodes to record; their values come back in ``spikes`` too."""
    check_state_width(qgraph.state_bits, "the Lava backend",
                      "quantize with --precision graph, or for a 24-bit target")
    began = time.perf_counter()
    x_int = integer_input(qgraph, x)
    total = x_int.shape[1]
    if total < 1:
        raise InputError("run_lava needs at least one sample")
    net = build_network(qgraph, min(samples_per_run, total), probes)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in net.recorded}
    stepping = 0.0
    with started(net.source, net.run_cfg) as session:
        for first in range(0, total, net.samples):
            chunk = x_int[:, first:first + net.samples]
            t0 = time.perf_counter()
            recorded = _one_run(net, session, chunk)
            stepping += time.perf_counter() - t0
            for name in net.recorded:
                parts[name].append(_read(net, name, recorded[name], chunk.shape[1]))
        steps = session.steps
    values = {n: np.concatenate(parts[n], axis=1) for n in net.recorded}
    out = qgraph.output_node
    if not qgraph.qop(out).per_step and values[out].shape[0] == 1:
        values[out] = values[out][0]  # as QOutput does: logits [batch, K] after the time mean
    processes = tuple(LavaProcessInfo(p.name, type(p).__name__, node, net.emitters.get(node) is p)
                      for node, p in net.processes)
    return LavaRun(spikes={n: v for n, v in values.items() if n != out}, logits_int=values[out],
                   steps=steps, wall_s=time.perf_counter() - began, step_s=stepping,
                   timesteps=net.schedule.timesteps, window=net.schedule.window,
                   latency=dict(net.schedule.latency), processes=processes)
