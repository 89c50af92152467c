"""The fast engine: the integer graph run as tensors, every event counted with dense tensor algebra.

Values come from the integer reference kernels (`statten_hw.quant.run_integer`, CPU or CUDA). Every
count a projection adds is linear in its events ``E`` (nonzero source values, one row per step and
sample), so each sending core's events go through one product with the projection's ``counters``
(`network.Projection`): synaptic ops and packets per destination core, and events sent. What follows
from those per (sender, destination) totals (packets in and out, hops, the longest route) is a few
numpy operations on small arrays. The detailed engine counts the same things one packet at a time.

Exactness: event indicators are 0/1 and ``counters`` small integers, so every product is a sum of
non-negative integers, exact in float32 while the largest possible total (all inputs firing) stays
below 2^24 (`Projection.largest_core_total`), else computed in float64. On CUDA always float64:
cuDNN may pick Winograd or FFT convolutions for float32, which round. The LIFs' membrane counts
(active updates) come from the integer run itself (``trace_lifs``), not from a replay.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from statten_hw.quant.execute import run_integer

from .counts import Counts, count_active_updates, count_layer_outputs, full_bias, on_steps
from .network import EventNetwork, Projection, core_index
from .owners import HOST
from .synapses import AttentionSynapses

#: Integers a float32 sum holds exactly.
FLOAT32_EXACT = 1 << 24


def count_dtype(device, largest_total: float) -> torch.dtype:
    """float32 on the CPU while every sum stays below `FLOAT32_EXACT`; float64 beyond that, and always
    on CUDA (module docstring)."""
    exact = torch.device(device).type == "cpu" and largest_total < FLOAT32_EXACT
    return torch.float32 if exact else torch.float64


@dataclass(frozen=True)
class _Counting:
    """What counting a projection's events on one device needs besides the events, made once: the
    product's float type and ``counters`` in it, each sending core's input rows, and the routes."""

    dtype: torch.dtype
    counters: torch.Tensor
    rows: tuple  # per sending core: its input elements (a slice, or an index tensor on the device)
    dst: slice | np.ndarray  # the destination cores, as an index into the core axis
    host: np.ndarray  # [senders] bool: the sender is the host (the network input)
    cores: slice | np.ndarray  # the other senders' cores, as an index into the core axis
    route: np.ndarray  # [other senders, destinations] hops
    needs_reach: bool  # which targets the events reach matters (`counts.full_bias`: not when all are biased)


#: Per projection and device, its `_Counting`.
_COUNTING: "weakref.WeakKeyDictionary[Projection, dict]" = weakref.WeakKeyDictionary()


def _counting(p: Projection, net: EventNetwork, qgraph, device: torch.device) -> _Counting:
    per_device = _COUNTING.setdefault(p, {})
    key = str(device)
    if key not in per_device:
        dtype = count_dtype(device, max(p.largest_core_total, float(np.prod(p.synapses.in_shape))))
        senders = np.array([o for o, _ in p.senders], np.int64)
        host = senders == HOST
        cores = senders[~host]
        per_device[key] = _Counting(dtype, p.counters.to(device=device, dtype=dtype),
                                    tuple(core_index(rows, device) for _, rows in p.senders), _as_index(p.dst_cores),
                                    host, _as_index(cores), net.hops[np.ix_(cores, p.dst_cores)],
                                    not full_bias(qgraph.qop(p.target)))
    return per_device[key]


def _as_index(ids: np.ndarray) -> slice | np.ndarray:
    """Sorted distinct ids as a slice where they are consecutive (numpy then adds into a view)."""
    if len(ids) and np.array_equal(ids, np.arange(ids[0], ids[0] + len(ids))):
        return slice(int(ids[0]), int(ids[0]) + len(ids))
    return ids


def event_rows(values: torch.Tensor, T: int, dtype: torch.dtype) -> torch.Tensor:
    """``[T·S, elements]`` 0/1 in ``dtype``: where a source's output ``[T', S, ...]`` is an event."""
    return (on_steps(values, T) != 0).to(dtype).reshape(T * values.shape[1], -1)


def _count_projection(p: Projection, plan: _Counting, E: torch.Tensor, T: int, S: int,
                      acc: dict[str, np.ndarray], layer: int, reached: dict) -> None:
    """Adds the events ``E`` (`event_rows` of the source, in ``plan``'s dtype) through ``p`` to ``acc``
    (the `Counts` arrays) at ``layer``, and marks the targets they reach in ``reached[p.target]`` where
    that matters (`counts.always_driven`)."""
    if plan.needs_reach:
        hit = (p.synapses.count(E.reshape(T * S, *p.synapses.in_shape)) > 0).reshape(T, S, *p.synapses.out_shape)
        reached[p.target] = reached[p.target] | hit if p.target in reached else hit
    per_sender = torch.stack([E[:, rows] @ plan.counters[rows] for rows in plan.rows])
    _add_sender_totals(p, plan, per_sender.round().to(torch.int64).cpu().numpy(), T, S, acc, layer)


def _add_sender_totals(p: Projection, plan: _Counting, totals: np.ndarray, T: int, S: int,
                       acc: dict[str, np.ndarray], layer: int) -> None:
    """``totals [senders, T·S, 2·n + 1]``: per sending core and step-sample, the synaptic ops and the
    packets it caused on each of the ``n`` destination cores, and the events it sent."""
    n = len(p.dst_cores)
    ops, packets, events = totals[:, :, :n], totals[:, :, n:2 * n], totals[:, :, 2 * n]

    def by_sample(a: np.ndarray) -> np.ndarray:  # [T·S, ...] -> [S, T, ...]
        return a.reshape(T, S, *a.shape[1:]).swapaxes(0, 1)

    acc["sops" if p.spiking else "macs"][layer][:, :, plan.dst] += by_sample(ops.sum(0))
    received = by_sample(packets.sum(0))
    acc["packets_in"][layer][:, :, plan.dst] += received
    if isinstance(p.synapses, AttentionSynapses):
        acc["buffer_events"][layer][:, :, plan.dst] += received
    if plan.host.any():
        acc["host_packets"][layer] += by_sample(packets[plan.host].sum((0, 2)))
        packets, events = packets[~plan.host], events[~plan.host]
    if not len(packets):
        return
    acc["packets_out"][layer][:, :, plan.cores] += by_sample(packets.sum(2).T)
    acc["events"][layer][:, :, plan.cores] += by_sample(events.T)
    acc["hops_out"][layer][:, :, plan.cores] += by_sample((packets * plan.route[:, None, :]).sum(2).T)
    longest = ((packets > 0) * plan.route[:, None, :]).max((0, 2), initial=0)
    np.maximum(acc["max_hops"][layer], by_sample(longest), out=acc["max_hops"][layer])


def run_fast(qgraph, net: EventNetwork, x: torch.Tensor, device: str = "cpu", progress: bool = False):
    """(IntegerRun on ``device``, Counts) for the batch ``x``; ``progress``: a bar over the projections."""
    from tqdm import tqdm

    run = run_integer(qgraph, x, device=device, trace_lifs=True)  # the LIFs' membrane counts, kept as they run
    T, S = net.timesteps, x.shape[0]
    counts = Counts.of(net, S)
    index = {layer.name: i for i, layer in enumerate(net.layers)}
    count_layer_outputs(counts, net, {layer.name: run.values[layer.name] for layer in net.layers}, 0)
    reached: dict[str, torch.Tensor] = {}
    last, E = None, None  # projections of one source follow each other (q, k and v read the same spikes)
    for p in tqdm(net.projections, desc="counting events", unit="projection", disable=not progress):
        plan = _counting(p, net, qgraph, run.values[p.source].device)
        if last != (p.source, plan.dtype):
            last, E = (p.source, plan.dtype), event_rows(run.values[p.source], T, plan.dtype)
        _count_projection(p, plan, E, T, S, counts.arrays, index[p.layer], reached)
    count_active_updates(counts, net, qgraph, run.values, reached, 0, run.lif_traces)
    return run, counts
