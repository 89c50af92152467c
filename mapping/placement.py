"""Place cores on the mesh: two interchangeable strategies, ``place(n_cores, traffic, target)``.

A position is ``(chip, x, y)``: slot ``s`` is chip ``s // cores_per_chip``, and inside the chip the
``cores_per_tile`` cores of one tile take consecutive slots, tiles row-major: tile ``k = r // cores_per_tile``
at ``x = k % mesh_x``, ``y = k // mesh_x``. Cores of one tile share its position. Chips sit on a grid ``chips_x`` wide
(chip ``c`` at ``(c % chips_x, c // chips_x)``; a system grown to ``max_chips`` adds rows).

Distance (NoC hops) between two positions: Manhattan distance of their global mesh coordinates
(``chip_x·mesh_x + x``, ``chip_y·mesh_y + y``) plus `CHIP_CROSSING_HOPS` for each chip boundary
crossed (Manhattan distance on the chip grid): an off-chip link costs more than an on-chip hop.

Traffic between two cores (`core_traffic`): synaptic events per timestep, from the firing rate of
the source layer (per layer, `DEFAULT_RATE` where none is given) times its fan-out into the target
layer, spread over the target layer's cores in proportion to their neurons; plus a shortcut's graded
values, each of its elements at every step (`GRADED_RATE`), from the cores of the layer that computes
them in proportion to its neurons there (`NeuronLayer.shortcut_sources`). Cost of a placement:
``Σ traffic × hops`` (hop-events per timestep).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from statten_hw.targets.schema import Target

from .layers import NeuronLayer
from .partition import Partition

#: Extra hops charged for each chip boundary a spike crosses (ASSUMPTION: a chip-to-chip link costs
#: about as much as crossing half of an 8 x 16 Loihi mesh).
CHIP_CROSSING_HOPS = 8
#: Firing rate (spikes per neuron per step) assumed for a layer with no given rate.
DEFAULT_RATE = 0.1
#: Values per element and step a membrane shortcut sends: a graded membrane value is sent whenever it
#: is non-zero, which it nearly always is.
GRADED_RATE = 1.0

Position = tuple[int, int, int]  # (chip, x, y)
Traffic = dict[tuple[int, int], float]  # (core a, core b), a < b -> events per step


def slot_position(slot: int, target: Target) -> Position:
    chip, r = divmod(slot, target.cores_per_chip)
    tile = r // target.mesh.cores_per_tile
    return chip, tile % target.mesh.mesh_x, tile // target.mesh.mesh_x


def hops(a: Position, b: Position, target: Target) -> int:
    """NoC hops from ``a`` to ``b``, chip crossings charged `CHIP_CROSSING_HOPS` each (module docstring)."""
    return int(hops_between(np.asarray(a), np.asarray(b), target))


def core_traffic(layers: list[NeuronLayer], part: Partition, rates: Mapping[str, float] | None = None) -> Traffic:
    """Events per step between every pair of cores (module docstring); intra-core traffic left out."""
    rates = rates or {}
    share: dict[str, list[tuple[int, int]]] = {}
    for core in part.cores:
        for p in core.pieces:
            share.setdefault(p.layer, []).append((core.id, p.neurons))
    traffic: Traffic = {}
    neurons = {layer.name: layer.neurons for layer in layers}
    for layer in layers:
        streams = [(src, float(rates.get(src, DEFAULT_RATE)) * fan_out) for src, fan_out in layer.sources]
        streams += [(src, GRADED_RATE * values / neurons[src]) for src, values in layer.shortcut_sources]
        for src, events_per_neuron in streams:
            for a, n_a in share.get(src, ()):
                for b, n_b in share[layer.name]:
                    if a != b:
                        key = (min(a, b), max(a, b))
                        traffic[key] = traffic.get(key, 0.0) + events_per_neuron * n_a * n_b / layer.neurons
    return traffic


def placement_cost(positions: tuple[Position, ...], traffic: Traffic, target: Target) -> float:
    """Σ traffic × hops over core pairs (hop-events per step)."""
    if not traffic:
        return 0.0
    pairs, t = zip(*traffic.items())
    pos = np.asarray(positions, np.int64).reshape(-1, 3)
    a, b = (np.array(side) for side in zip(*pairs))
    return float(np.dot(np.array(t), hops_between(pos[a], pos[b], target)))


class Placement(Protocol):
    name: str

    def place(self, n_cores: int, traffic: Traffic, target: Target) -> tuple[Position, ...]:
        """Position of each core id ``0..n_cores-1``."""


@dataclass(frozen=True)
class InOrderPlacement:
    """Naive: core i on slot i (layer order, row-major along the mesh, chip after chip)."""

    name: str = "in-order"

    def place(self, n_cores: int, traffic: Traffic, target: Target) -> tuple[Position, ...]:
        return tuple(slot_position(i, target) for i in range(n_cores))


@dataclass(frozen=True)
class TrafficAwarePlacement:
    """Greedy local search: start from in-order; visit the cores in id order and move each to the slot
    (of the chips in use; swapping with the core there, if any) that lowers ``Σ traffic × hops`` most;
    repeat until a round lowers the cost by less than ``min_gain`` of what it was (on SDT-8-768 the first two rounds bring 21 %, the next ones under
    0.5 % each) or ``max_rounds`` rounds ran. Deterministic; only improving moves are made, so it is
    never worse than in-order.

    Why it is fast (`_SwapSearch`): hops are a weighted sum of per-axis distances (`_axes`), so a
    core's cost on every slot follows from a histogram of where its neighbours sit along each axis,
    and a move updates those histograms only for the moved cores' neighbours. Memory is
    ``cores × (axis lengths)``, not ``cores × slots``."""

    max_rounds: int = 20
    min_gain: float = 1e-3
    name: str = "traffic-aware"

    def place(self, n_cores: int, traffic: Traffic, target: Target) -> tuple[Position, ...]:
        if n_cores == 0:
            return ()
        n_slots = -(-n_cores // target.cores_per_chip) * target.cores_per_chip
        coords = [slot_position(s, target) for s in range(n_slots)]
        # Its matrix-vector products are small: BLAS threads would cost more to wake than they save.
        with threadpool_limits(1, user_api="blas"):
            search = _SwapSearch(_traffic_matrix(n_cores, traffic), _axes(np.array(coords), target))
            for _ in range(self.max_rounds):
                before = search.total_cost()
                if search.sweep() > -self.min_gain * before or before == 0:
                    break
        return tuple(coords[s] for s in search.slot)


def _axes(pos: np.ndarray, target: Target) -> list[tuple[np.ndarray, int]]:
    """Hops are separable: ``Σ_k factor_k · |coord_k(a) - coord_k(b)|`` over the global mesh x and y
    (factor 1) and the chip-grid x and y (factor `CHIP_CROSSING_HOPS`). ``pos``: ``[..., 3]``."""
    m = target.mesh
    chip_x, chip_y = pos[..., 0] % m.chips_x, pos[..., 0] // m.chips_x
    return [(chip_x * m.mesh_x + pos[..., 1], 1), (chip_y * m.mesh_y + pos[..., 2], 1),
            (chip_x, CHIP_CROSSING_HOPS), (chip_y, CHIP_CROSSING_HOPS)]


def hops_between(a: np.ndarray, b: np.ndarray, target: Target) -> np.ndarray:
    """`hops` of position arrays ``a``, ``b`` (``[..., 3]``: chip, x, y; broadcast), vectorised."""
    return sum(f * np.abs(ca - cb) for (ca, f), (cb, _) in zip(_axes(a, target), _axes(b, target)))


def hop_matrix(positions, target: Target) -> np.ndarray:
    """``hops(positions[i], positions[j])`` for every pair, as one int64 matrix."""
    pos = np.asarray(positions, np.int64).reshape(-1, 3)
    return hops_between(pos[:, None], pos[None, :], target)


def _traffic_matrix(n_cores: int, traffic: Traffic) -> sparse.csr_matrix:
    """Symmetric sparse ``T[a, b] = T[b, a]`` = events per step between cores ``a`` and ``b``."""
    if not traffic:
        return sparse.csr_matrix((n_cores, n_cores))
    pairs, t = zip(*traffic.items())
    a, b = zip(*pairs)
    rows, cols = np.array(a + b), np.array(b + a)
    return sparse.csr_matrix((np.array(t + t, np.float64), (rows, cols)), shape=(n_cores, n_cores))


class _SwapSearch:
    """State of `TrafficAwarePlacement`: core -> slot, slot -> core (-1: empty), and per axis ``k`` the
    histogram ``hist_k[i, v] = Σ_j T[i, j]·[coord_k(slot j) = v]``, from which core ``i``'s cost on
    slot ``s`` is ``C[i, s] = Σ_k (hist_k[i] @ dist_k)[coord_k(s)]`` with ``dist_k[v, u] = f_k·|v - u|``;
    ``here[i] = C[i, slot i]`` is kept up to date.

    Moving core ``a`` from ``sa`` to ``s`` while the core ``b`` there (if any) goes to ``sa`` changes
    the cost by ``C[a, s] - C[a, sa] + C[b, sa] - C[b, s] + 2·T[a, b]·H[s, sa]`` (the edge ``a–b``
    keeps its length; ``C`` counts it on each side with the other end's old slot)."""

    def __init__(self, traffic: sparse.csr_matrix, axes: list[tuple[np.ndarray, int]]):
        n_cores, n_slots = traffic.shape[0], len(axes[0][0])
        self.t = traffic
        self.slot = np.arange(n_cores)
        self.occupant = np.full(n_slots, -1)
        self.occupant[:n_cores] = self.slot
        self.coord = [np.asarray(c) for c, _ in axes]
        self.dist = [f * np.abs(np.subtract.outer(np.arange(c.max() + 1), np.arange(c.max() + 1))).astype(np.float64)
                     for c, f in axes]
        self.hist = [self._histogram(c) for c in self.coord]
        self.here = np.array([self._cost_at(i, s) for i, s in enumerate(self.slot)], np.float64)

    def _histogram(self, coord: np.ndarray) -> np.ndarray:
        n = self.t.shape[0]
        where = sparse.csr_matrix((np.ones(n), (np.arange(n), coord[self.slot])), shape=(n, coord.max() + 1))
        return (self.t @ where).toarray()

    def _hops(self, s1, s2) -> np.ndarray:
        return sum(d[c[s1], c[s2]] for c, d in zip(self.coord, self.dist))

    def _cost_at(self, cores, slot: int) -> np.ndarray:
        """``C[cores, slot]``."""
        return sum(h[cores] @ d[:, c[slot]] for h, d, c in zip(self.hist, self.dist, self.coord))

    def total_cost(self) -> float:
        """``Σ traffic × hops`` of the current slots."""
        return float(self.here.sum() / 2)

    def sweep(self) -> float:
        """One round over all cores; the change of the total cost (<= 0)."""
        return sum(self._move(a) for a in range(self.t.shape[0]) if self.t.indptr[a] != self.t.indptr[a + 1])

    def _move(self, a: int) -> float:
        """Move core ``a`` to its best slot if that lowers the cost; the change (0 if it stays)."""
        sa, occ = self.slot[a], self.occupant
        row = sum((h[a] @ d)[c] for h, d, c in zip(self.hist, self.dist, self.coord))
        delta = row - row[sa]
        busy = np.flatnonzero(occ >= 0)
        b = occ[busy]
        there = self._cost_at(slice(None), sa)[b]
        delta[busy] += there - self.here[b] + 2 * self._row(a)[b] * self._hops(busy, sa)
        delta[sa] = 0.0
        s = int(np.argmin(delta))
        if not delta[s] < -1e-9:
            return 0.0
        other = int(occ[s])
        self._relocate(a, sa, s)
        if other >= 0:
            self._relocate(other, s, sa)
        occ[s], occ[sa] = a, other
        return float(delta[s])

    def _row(self, core: int) -> np.ndarray:
        """``T[core, :]`` dense."""
        row = np.zeros(self.t.shape[0])
        lo, hi = self.t.indptr[core], self.t.indptr[core + 1]
        row[self.t.indices[lo:hi]] = self.t.data[lo:hi]
        return row

    def _relocate(self, core: int, old: int, new: int) -> None:
        """``core`` from slot ``old`` to ``new``: its weight moves in its neighbours' histograms."""
        lo, hi = self.t.indptr[core], self.t.indptr[core + 1]
        nbrs, w = self.t.indices[lo:hi], self.t.data[lo:hi]
        self.slot[core] = new
        for h, c in zip(self.hist, self.coord):
            h[nbrs, c[old]] -= w
            h[nbrs, c[new]] += w
        self.here[nbrs] += w * (self._hops(new, self.slot[nbrs]) - self._hops(old, self.slot[nbrs]))
        self.here[core] = self._cost_at(core, new)


__all__ = ["CHIP_CROSSING_HOPS", "DEFAULT_RATE", "GRADED_RATE", "InOrderPlacement", "Placement", "Position",
           "TrafficAwarePlacement", "Traffic", "core_traffic", "hop_matrix", "hops", "hops_between", "placement_cost",
           "slot_position"]
