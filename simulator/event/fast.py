"""The fast engine: the integer graph run as tensors, every event counted with dense tensor algebra.

Values come from the integer reference kernels (`statten_hw.quant.run_integer`, CPU or CUDA); each
projection's events ``E`` (nonzero source values, one row per step and sample) are then counted in
bulk: synaptic ops per target core ``count(E)`` summed by owner, packets ``E @ coverage``, hops per
sending core from the hop matrix. The detailed engine counts the same things one packet at a time.
Event indicators and per-element counts are small integers, exact in float32 (< 2^24) on the CPU; on
CUDA they run in float64, since cuDNN may pick Winograd or FFT convolutions for float32, which round.
Sums over many elements (per core, per route) are exact too: in float64, or in float32 where the
total is known to stay below 2^24 (`_exact_sum` checks it). The LIFs' membrane counts (active updates)
come from the integer run itself (``trace_lifs``), not from a replay.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from statten_hw.quant.execute import run_integer

from .counts import Counts, count_active_updates, count_layer_outputs, layer_sources, on_steps
from .network import CoreElements, EventNetwork, Projection, core_index
from .owners import HOST
from .synapses import AttentionSynapses


def _count_dtype(device, terms: int) -> torch.dtype:
    """float32 on the CPU while sums of ``terms`` 0/1 indicators stay exact in it (< 2^24); float64
    beyond that, and always on CUDA (module docstring)."""
    exact = torch.device(device).type == "cpu" and terms < 1 << 24
    return torch.float32 if exact else torch.float64


def _by_core(per_element: torch.Tensor, groups: CoreElements, cores: int) -> torch.Tensor:
    """``[R, elements] -> [R, cores]``: each core's column sums the non-negative integer counts of the
    elements it holds (`_exact_sum`)."""
    out = torch.zeros(per_element.shape[0], cores, dtype=torch.float64, device=per_element.device)
    for core, elements in groups:
        out[:, core] = _exact_sum(per_element[:, core_index(elements, out.device)])
    return out


#: Elements `_exact_sum` adds in float32 before the float64 sum of those partial sums.
CHUNK = 1 << 12


def _exact_sum(part: torch.Tensor) -> torch.Tensor:
    """``[R, L]`` non-negative integer counts -> their float64 row sums, exactly. float32 ones are summed
    in chunks of `CHUNK` elements in float32, and those sums in float64: a float32 sum is exact while its
    total stays below 2^24, and it then also reads below 2^24 (every partial sum of non-negative integers
    is at most the total, and rounding is monotone), so a chunk reading 2^24 or more sends the whole row
    to a float64 sum. Summing straight into float64 widens every element first, several times slower on
    the CPU; a core's total easily passes 2^24 on a large layer."""
    if part.dtype != torch.float32:
        return part.sum(1, dtype=torch.float64)
    R, L = part.shape
    whole = L - L % CHUNK
    sums = part[:, :whole].reshape(R, -1, CHUNK).sum(-1)
    if whole < L:
        sums = torch.cat([sums, part[:, whole:].sum(1, keepdim=True)], 1)
    if sums.numel() and bool(sums.max() >= 1 << 24):
        return part.sum(1, dtype=torch.float64)
    return sums.sum(1, dtype=torch.float64)


def _count_projection(p: Projection, values: torch.Tensor, net: EventNetwork, T: int, S: int,
                      acc: dict[str, np.ndarray], layer: int, reached: dict) -> None:
    dev = values.device
    ft = _count_dtype(dev, math.prod(p.synapses.in_shape))  # each count below sums at most this many
    E = (on_steps(values, T) != 0).to(ft).reshape(T * S, -1)
    K = net.n_cores
    counted = p.synapses.count(E.reshape(T * S, *p.synapses.in_shape)).reshape(T * S, -1)
    hit = (counted > 0).reshape(T, S, *p.synapses.out_shape)  # the targets at least one event reached
    reached[p.target] = reached[p.target] | hit if p.target in reached else hit
    ops = _by_core(counted, p.receivers, K)
    acc["sops" if p.spiking else "macs"][layer] += _np(ops, T, S)
    cover = p.coverage.to(device=dev, dtype=ft)
    dst = torch.from_numpy(p.dst_cores).to(dev)
    received = torch.zeros(T * S, K, dtype=ft, device=dev)
    hops = torch.from_numpy(net.hops).to(device=dev, dtype=ft)
    for o, rows in p.senders:
        rows = core_index(rows, dev)
        sending = E[:, rows]
        per_dst = sending @ cover[rows]  # [T*S, n_dst] packets from core o
        received[:, dst] += per_dst
        sent = per_dst.sum(1, dtype=torch.float64)
        if o == HOST:
            acc["host_packets"][layer] += _np(sent, T, S)
            continue
        acc["packets_out"][layer][:, :, o] += _np(sent, T, S)
        acc["events"][layer][:, :, o] += _np(sending.sum(1), T, S)  # exact in ft: 0/1 terms, fewer than its limit
        route = hops[o, dst]
        acc["hops_out"][layer][:, :, o] += _np(per_dst.double() @ route.double(), T, S)
        longest = ((per_dst > 0) * route).amax(1)
        acc["max_hops"][layer] = np.maximum(acc["max_hops"][layer], _np(longest, T, S))
    acc["packets_in"][layer] += _np(received, T, S)
    if isinstance(p.synapses, AttentionSynapses):
        acc["buffer_events"][layer] += _np(received, T, S)


def _np(x: torch.Tensor, T: int, S: int) -> np.ndarray:
    """``[T*S, ...]`` float counts -> int64 ``[S, T, ...]``."""
    a = x.reshape(T, S, *x.shape[1:]).transpose(0, 1)
    return a.round().to(torch.int64).cpu().numpy()


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
