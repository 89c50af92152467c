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
layer, spread over the target layer's cores in proportion to their neurons. Cost of a placement:
``Σ traffic × hops`` (hop-events per timestep).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

from statten_hw.targets.schema import Target

from .layers import NeuronLayer
from .partition import Partition

#: Extra hops charged for each chip boundary a spike crosses (ASSUMPTION: a chip-to-chip link costs
#: about as much as crossing half of an 8 x 16 Loihi mesh).
CHIP_CROSSING_HOPS = 8
#: Firing rate (spikes per neuron per step) assumed for a layer with no given rate.
DEFAULT_RATE = 0.1

Position = tuple[int, int, int]  # (chip, x, y)
Traffic = dict[tuple[int, int], float]  # (core a, core b), a < b -> events per step


def slot_position(slot: int, target: Target) -> Position:
    chip, r = divmod(slot, target.cores_per_chip)
    tile = r // target.mesh.cores_per_tile
    return chip, tile % target.mesh.mesh_x, tile // target.mesh.mesh_x


def hops(a: Position, b: Position, target: Target) -> int:
    """NoC hops from ``a`` to ``b``, chip crossings charged `CHIP_CROSSING_HOPS` each (module docstring)."""
    m, cx = target.mesh, target.mesh.chips_x
    (ca, xa, ya), (cb, xb, yb) = a, b
    ax, ay, bx, by = ca % cx, ca // cx, cb % cx, cb // cx
    chip_dist = abs(ax - bx) + abs(ay - by)
    return (abs(ax * m.mesh_x + xa - bx * m.mesh_x - xb) + abs(ay * m.mesh_y + ya - by * m.mesh_y - yb)
            + CHIP_CROSSING_HOPS * chip_dist)


def core_traffic(layers: list[NeuronLayer], part: Partition, rates: Mapping[str, float] | None = None) -> Traffic:
    """Events per step between every pair of cores (module docstring); intra-core traffic left out."""
    rates = rates or {}
    share: dict[str, list[tuple[int, int]]] = {}
    for core in part.cores:
        for p in core.pieces:
            share.setdefault(p.layer, []).append((core.id, p.neurons))
    traffic: Traffic = {}
    for layer in layers:
        for src, fan_out in layer.sources:
            rate = float(rates.get(src, DEFAULT_RATE))
            for a, n_a in share.get(src, ()):
                for b, n_b in share[layer.name]:
                    if a != b:
                        key = (min(a, b), max(a, b))
                        traffic[key] = traffic.get(key, 0.0) + rate * n_a * fan_out * n_b / layer.neurons
    return traffic


def placement_cost(positions: tuple[Position, ...], traffic: Traffic, target: Target) -> float:
    """Σ traffic × hops over core pairs (hop-events per step)."""
    return sum(t * hops(positions[a], positions[b], target) for (a, b), t in traffic.items())


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
    """Greedy: start from in-order and move a core to any slot of the chips in use (swapping with
    the core there, if any) whenever that lowers ``Σ traffic × hops``; repeat until a full round
    finds no move or ``max_rounds`` rounds ran. Deterministic (fixed visiting order)."""

    max_rounds: int = 20
    name: str = "traffic-aware"

    def place(self, n_cores: int, traffic: Traffic, target: Target) -> tuple[Position, ...]:
        if n_cores == 0:
            return ()
        n_slots = -(-n_cores // target.cores_per_chip) * target.cores_per_chip
        coords = [slot_position(s, target) for s in range(n_slots)]
        slot = list(range(n_cores))
        occupant: list[int | None] = list(range(n_cores)) + [None] * (n_slots - n_cores)
        nbrs: list[list[tuple[int, float]]] = [[] for _ in range(n_cores)]
        for (a, b), t in traffic.items():
            nbrs[a].append((b, t))
            nbrs[b].append((a, t))
        dist: dict[tuple[int, int], int] = {}

        def h(s1: int, s2: int) -> int:
            key = (s1, s2) if s1 < s2 else (s2, s1)
            if key not in dist:
                dist[key] = hops(coords[s1], coords[s2], target)
            return dist[key]

        def moved_cost(core: int, to: int, other: int | None) -> float:
            """Cost of ``core``'s edges (except to ``other``) if it sat on slot ``to``."""
            return sum(t * h(to, slot[j]) for j, t in nbrs[core] if j != other)

        for _ in range(self.max_rounds):
            improved = False
            for a in range(n_cores):
                if not nbrs[a]:
                    continue
                for s in range(n_slots):
                    sa = slot[a]
                    if s == sa:
                        continue
                    b = occupant[s]
                    delta = moved_cost(a, s, b) - moved_cost(a, sa, b)
                    if b is not None:
                        delta += moved_cost(b, sa, a) - moved_cost(b, s, a)
                    if delta < -1e-9:
                        slot[a], occupant[s], occupant[sa] = s, a, b
                        if b is not None:
                            slot[b] = sa
                        improved = True
            if not improved:
                break
        return tuple(coords[slot[i]] for i in range(n_cores))


STRATEGIES: dict[str, type] = {"in-order": InOrderPlacement, "traffic-aware": TrafficAwarePlacement}

__all__ = ["CHIP_CROSSING_HOPS", "DEFAULT_RATE", "InOrderPlacement", "Placement", "Position", "STRATEGIES",
           "TrafficAwarePlacement", "Traffic", "core_traffic", "hops", "placement_cost", "slot_position"]
