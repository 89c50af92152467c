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

import numpy as np
import torch

from statten_hw.quant.execute import run_integer

from .counts import Counts, count_active_updates, count_layer_outputs, layer_sources, on_steps
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


#: A projection's ``counters`` on a device and in a dtype other than its own, made once.
_COUNTERS: "weakref.WeakKeyDictionary[Projection, dict]" = weakref.WeakKeyDictionary()


def _counters(p: Projection, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if p.counters.device == device and p.counters.dtype == dtype:
        return p.counters
    cache = _COUNTERS.setdefault(p, {})
    key = (str(device), dtype)
    if key not in cache:
        cache[key] = p.counters.to(device=device, dtype=dtype)
    return cache[key]


def _count_projection(p: Projection, values: torch.Tensor, net: EventNetwork, T: int, S: int,
                      acc: dict[str, np.ndarray], layer: int, reached: dict) -> None:
    """Adds the events of ``values`` (the source's output) through ``p`` to ``acc`` (the `Counts`
    arrays) at ``layer``, and marks the targets they reach in ``reached[p.target]``."""
    dev = values.device
    dtype = count_dtype(dev, max(p.largest_core_total, float(np.prod(p.synapses.in_shape))))
    E = (on_steps(values, T) != 0).to(dtype).reshape(T * S, -1)
    hit = (p.synapses.count(E.reshape(T * S, *p.synapses.in_shape)) > 0).reshape(T, S, *p.synapses.out_shape)
    reached[p.target] = reached[p.target] | hit if p.target in reached else hit
    counters = _counters(p, dev, dtype)
    senders = np.array([o for o, _ in p.senders], np.int64)
    per_sender = torch.stack([E[:, core_index(rows, dev)] @ counters[core_index(rows, dev)] for _, rows in p.senders])
    _add_sender_totals(p, per_sender.round().to(torch.int64).cpu().numpy(), senders, net.hops, T, S, acc, layer)


def _add_sender_totals(p: Projection, totals: np.ndarray, senders: np.ndarray, hops: np.ndarray, T: int, S: int,
                       acc: dict[str, np.ndarray], layer: int) -> None:
    """``totals [senders, T·S, 2·n + 1]``: per sending core and step-sample, the synaptic ops and the
    packets it caused on each of the ``n`` destination cores, and the events it sent."""
    n, dst = len(p.dst_cores), p.dst_cores
    ops, packets, events = totals[:, :, :n], totals[:, :, n:2 * n], totals[:, :, 2 * n]
    def by_sample(a: np.ndarray) -> np.ndarray:  # [T·S, ...] -> [S, T, ...]
        return a.reshape(T, S, *a.shape[1:]).swapaxes(0, 1)

    acc["sops" if p.spiking else "macs"][layer][:, :, dst] += by_sample(ops.sum(0))
    received = by_sample(packets.sum(0))
    acc["packets_in"][layer][:, :, dst] += received
    if isinstance(p.synapses, AttentionSynapses):
        acc["buffer_events"][layer][:, :, dst] += received
    host = senders == HOST
    if host.any():
        acc["host_packets"][layer] += by_sample(packets[host].sum((0, 2)))
    cores, packets, events = senders[~host], packets[~host], events[~host]
    if not len(cores):
        return
    route = hops[np.ix_(cores, dst)]  # [senders, n]
    acc["packets_out"][layer][:, :, cores] += by_sample(packets.sum(2).T)
    acc["events"][layer][:, :, cores] += by_sample(events.T)
    acc["hops_out"][layer][:, :, cores] += by_sample(np.einsum("otd,od->to", packets, route))
    longest = np.where(packets > 0, route[:, None, :], 0).max((0, 2), initial=0)
    acc["max_hops"][layer] = np.maximum(acc["max_hops"][layer], by_sample(longest))


def run_fast(qgraph, net: EventNetwork, x: torch.Tensor, device: str = "cpu", progress: bool = False):
    """(IntegerRun on ``device``, Counts) for the batch ``x``; ``progress``: a bar over the projections."""
    from tqdm import tqdm

    run = run_integer(qgraph, x, device=device, trace_lifs=True)  # the LIFs' membrane counts, kept as they run
    T, S = net.timesteps, x.shape[0]
    counts = Counts(tuple(layer.name for layer in net.layers), S, T, net.n_cores, sources=layer_sources(qgraph, net))
    index = {layer.name: i for i, layer in enumerate(net.layers)}
    count_layer_outputs(counts, net, {layer.name: run.values[layer.name] for layer in net.layers}, 0)
    reached: dict[str, torch.Tensor] = {}
    for p in tqdm(net.projections, desc="counting events", unit="projection", disable=not progress):
        _count_projection(p, run.values[p.source], net, T, S, counts.arrays, index[p.layer], reached)
    count_active_updates(counts, net, qgraph, run.values, reached, 0, run.lif_traces)
    return run, counts
