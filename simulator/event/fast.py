"""The fast engine: the integer graph run as tensors, every event counted with dense tensor algebra.

Values come from the integer reference kernels (`statten_hw.quant.run_integer`, CPU or CUDA). Every
count a projection adds is linear in its events ``E`` (nonzero source values, one row per step and
sample): each sending core's events go through one product with the projection's ``counters``
(`network.Projection`: targets and packets per destination core, and the event). Each product lands
in its own columns of one buffer per run (`_Tally`), and one scatter at the end adds every column to
its counts: synaptic ops and packets received per destination core; events, packets sent and their
hops (the packets to each destination core times its distance) per sending core; host packets. The
longest route of a step is the one nonlinear count: the largest ``longest_route`` among the events.
The detailed engine counts the same things one packet at a time.

Exactness: event indicators are 0/1 and the counters small integers, so every product is a sum of
non-negative integers, exact in float32 while the largest possible total (all inputs firing) stays
below 2^24, else computed in float64; always float64 on CUDA (`quant.execute.exact_dtype`, the
integer kernels' rule). The LIFs' membrane counts (active updates) come from the
integer run itself (``trace_lifs``), not from a replay.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from statten_hw.quant.execute import exact_dtype, run_integer

from .counts import Counts, count_active_updates, count_layer_outputs, full_bias, on_steps
from .network import EventNetwork, Projection, core_index
from .owners import HOST
from .synapses import AttentionSynapses

@dataclass(frozen=True)
class _Block:
    """One projection's counting on one device: per sending core its input rows and its ``counters``
    (``[rows, 2·n + 1]``), each product's first column in the buffer of ``dtype``, and ``far`` where
    packets travel."""

    projection: Projection
    layer: int
    dtype: torch.dtype
    rows: tuple  # per sending core: its input elements (a slice, or an index tensor on the device)
    weights: tuple  # per sending core: its rows of the counters
    offsets: tuple  # per sending core: the first buffer column its product fills
    far: torch.Tensor | None  # `Projection.longest_route`
    needs_reach: bool  # which targets the events reach matters (`counts.full_bias`: not when all are biased)


class _Tally:
    """How one event network's events are counted on one device, made once: every projection's
    `_Block`, the buffer width per float type, and where each buffer column adds in the counts."""

    def __init__(self, net: EventNetwork, qgraph, device: torch.device):
        self.widths = {torch.float32: 0, torch.float64: 0}
        places: dict[tuple, list] = {}  # (count name, dtype) -> [(buffer column, layer, core, weight)]
        index = {layer.name: i for i, layer in enumerate(net.layers)}
        self.blocks = tuple(self._block(p, index[p.layer], net.hops, qgraph, device, places) for p in net.projections)
        # per (count name, dtype): the buffer columns that add to it, their layers, cores and weights
        # (None: all 1)
        self.places = {key: _arrays(found) for key, found in places.items()}
        self.far_layers = np.array([b.layer for b in self.blocks if b.far is not None], np.int64)

    def _block(self, p: Projection, layer: int, hops: np.ndarray, qgraph, device, places: dict) -> _Block:
        dtype, far = exact_dtype(p.largest_total, device, f"{p.source} -> {p.target}"), p.longest_route
        offsets = []
        for core, _ in p.senders:
            offsets.append(self.widths[dtype])
            for name, columns, cores, weights in _sender_places(p, core, hops):
                places.setdefault((name, dtype), []).extend(
                    (offsets[-1] + column, layer, int(c), int(w)) for column, c, w in zip(columns, cores, weights))
            self.widths[dtype] += p.counters.shape[1]
        weights = tuple(p.counters[rows].to(device=device, dtype=dtype) for _, rows in p.senders)  # views on the CPU
        return _Block(p, layer, dtype, tuple(core_index(rows, device) for _, rows in p.senders), weights,
                      tuple(offsets), None if far is None else far.to(device=device, dtype=dtype),
                      not full_bias(qgraph.qop(p.target)))

    def buffers(self, steps: int, device) -> dict[torch.dtype, torch.Tensor]:
        """Empty ``[steps, columns]`` buffers, one per float type, that the products fill."""
        return {dtype: torch.empty(steps, w, dtype=dtype, device=device) for dtype, w in self.widths.items() if w}

    def add_to(self, acc: dict[str, np.ndarray], buffers: dict, longest: torch.Tensor | None, T: int, S: int) -> None:
        """Adds the filled buffers to the `Counts` arrays ``acc`` (``[L, S, T, K]``, or ``[L, S, T]``),
        and the steps' longest routes (``[T·S, blocks with far]``) to ``max_hops``."""
        totals = {dtype: b.to(torch.int64).cpu().numpy() for dtype, b in buffers.items()}  # exact integers
        for (name, dtype), (columns, layers, cores, weights) in self.places.items():
            array = acc[name]
            K = array.shape[3] if array.ndim == 4 else 1
            values = totals[dtype][:, columns].T
            np.add.at(array.reshape(-1), _flat_index(layers, cores, S, T, K),
                      values if weights is None else values * weights[:, None])
        if longest is not None:
            np.maximum.at(acc["max_hops"].reshape(-1), _flat_index(self.far_layers, 0, S, T, 1),
                          longest.cpu().numpy().T)


def _arrays(places: list) -> tuple:
    """``[(column, layer, core, weight)]`` as four int64 arrays, the weights None where all are 1."""
    columns, layers, cores, weights = (np.array(field, np.int64) for field in zip(*places))
    return columns, layers, cores, None if np.all(weights == 1) else weights


def _sender_places(p: Projection, sender: int, hops: np.ndarray):
    """``(count name, columns, cores, weights)``: where the columns of one sender's product add, each
    times its weight. The product is ``[ops per destination | packets per destination | events]``
    (`Projection.counters`): a sender's packets out are its packets to every destination, their hops
    those packets times the distance; the host's packets are host packets, its events and hops no core's."""
    n, dst = len(p.dst_cores), p.dst_cores
    ones, packets = np.ones(n, np.int64), range(n, 2 * n)
    yield "macs" if p.multiplies else "sops", range(n), dst, ones
    yield "packets_in", packets, dst, ones
    if isinstance(p.synapses, AttentionSynapses):
        yield "buffer_bits", packets, dst, np.full(n, p.value_bits, np.int64)
    if sender == HOST:
        yield "host_packets", packets, [0] * n, ones
        return
    yield "events", [2 * n], [sender], [1]
    yield "packets_out", packets, [sender] * n, ones
    yield "hops_out", packets, [sender] * n, hops[sender, dst]


def _flat_index(layers: np.ndarray, cores, S: int, T: int, K: int) -> np.ndarray:
    """``[places, T·S]``: where each place (layer, core) of a ``[L, S, T, K]`` array is, in the flat array,
    at each step-sample (step-major, as `event_rows` orders its rows)."""
    t, s = np.divmod(np.arange(T * S), S)
    return (layers * (S * T * K) + cores)[:, None] + (s * T * K + t * K)[None, :]


#: Per event network, per device: its `_Tally`.
_TALLIES: "weakref.WeakKeyDictionary[EventNetwork, dict]" = weakref.WeakKeyDictionary()


def _tally(net: EventNetwork, qgraph, device: torch.device) -> _Tally:
    per_device = _TALLIES.setdefault(net, {})
    if str(device) not in per_device:
        per_device[str(device)] = _Tally(net, qgraph, device)
    return per_device[str(device)]


def event_rows(values: torch.Tensor, T: int, dtype: torch.dtype) -> torch.Tensor:
    """``[T·S, elements]`` 0/1 in ``dtype``: where a source's output ``[T', S, ...]`` is an event."""
    return (on_steps(values, T) != 0).to(dtype).reshape(T * values.shape[1], -1)


def count_events(qgraph, net: EventNetwork, values: dict, counts: Counts, progress: bool = False) -> dict:
    """Adds the events of every projection (sources' ``values`` ``[T', S, ...]`` of one run) to
    ``counts``; returns ``reached``: per projection target whose reach matters, bool ``[T, S, *shape]``,
    the elements at least one event reached (`counts.count_active_updates`)."""
    from tqdm import tqdm

    device = values[net.projections[0].source].device if net.projections else torch.device("cpu")
    tally, T, S = _tally(net, qgraph, device), net.timesteps, counts.samples
    buffers = tally.buffers(T * S, device)
    longest = []  # per block with far: the longest route of each step-sample
    reached: dict[str, torch.Tensor] = {}
    last, E = None, None  # projections of one source follow each other (q, k and v read the same spikes)
    for b in tqdm(tally.blocks, desc="counting events", unit="projection", disable=not progress):
        p = b.projection
        if last != (p.source, b.dtype):
            last, E = (p.source, b.dtype), event_rows(values[p.source], T, b.dtype)
        if b.needs_reach:
            hit = (p.synapses.count(E.reshape(T * S, *p.synapses.in_shape)) > 0).reshape(T, S, *p.synapses.out_shape)
            reached[p.target] = reached[p.target] | hit if p.target in reached else hit
        for rows, weights, first in zip(b.rows, b.weights, b.offsets):
            torch.matmul(E[:, rows], weights, out=buffers[b.dtype][:, first:first + weights.shape[1]])
        if b.far is not None:
            longest.append((E * b.far).amax(1).to(torch.int64))
    tally.add_to(counts.arrays, buffers, torch.stack(longest, 1) if longest else None, T, S)
    return reached


def run_fast(qgraph, net: EventNetwork, x: torch.Tensor, device: str = "cpu", progress: bool = False):
    """(IntegerRun on ``device``, Counts) for the batch ``x``; ``progress``: a bar over the projections."""
    run = run_integer(qgraph, x, device=device, trace_lifs=True)  # the LIFs' membrane counts, kept as they run
    counts = Counts.of(net, x.shape[0])
    count_layer_outputs(counts, net, {layer.name: run.values[layer.name] for layer in net.layers}, 0)
    reached = count_events(qgraph, net, run.values, counts, progress)
    count_active_updates(counts, net, qgraph, run.values, reached, 0, run.lif_traces)
    return run, counts
