"""Placement: the traffic-aware strategy never does worse than in-order; hop distances."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mapping_helpers import small_target
from statten_hw.mapping.placement import (CHIP_CROSSING_HOPS, InOrderPlacement, TrafficAwarePlacement, hop_matrix, hops,
                                          placement_cost, slot_position)

MESH = {"mesh_x": 4, "mesh_y": 3, "chips_x": 2, "chips_y": 1, "max_chips": 2}


def test_slots_are_row_major_then_chip():
    t = small_target(mesh=MESH)
    assert [slot_position(s, t) for s in (0, 1, 4, 11, 12)] == [(0, 0, 0), (0, 1, 0), (0, 0, 1), (0, 3, 2),
                                                                 (1, 0, 0)]


def test_hops_add_a_penalty_per_chip_crossing():
    t = small_target(mesh=MESH)
    assert hops((0, 0, 0), (0, 3, 2), t) == 5
    # (0, 3, 0) -> (1, 0, 0): global x 3 -> 4 is one hop, plus one chip boundary.
    assert hops((0, 3, 0), (1, 0, 0), t) == 1 + CHIP_CROSSING_HOPS


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 20).flatmap(lambda n: st.tuples(
    st.just(n), st.dictionaries(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] < p[1]),
                                st.floats(0.01, 100.0), max_size=40))))
def test_traffic_aware_never_worse(case):
    n, traffic = case
    t = small_target(mesh=MESH)
    naive = InOrderPlacement().place(n, traffic, t)
    smart = TrafficAwarePlacement().place(n, traffic, t)
    assert len(set(smart)) == n, "two cores on one slot"
    assert placement_cost(smart, traffic, t) <= placement_cost(naive, traffic, t) + 1e-6
    assert TrafficAwarePlacement().place(n, traffic, t) == smart  # deterministic


def test_traffic_aware_pulls_a_chatty_pair_together():
    t = small_target(mesh=MESH)
    traffic = {(0, 11): 50.0, (0, 1): 1.0}  # core 11 starts at (0, 3, 2), 5 hops from core 0
    naive = InOrderPlacement().place(12, traffic, t)
    smart = TrafficAwarePlacement().place(12, traffic, t)
    assert placement_cost(smart, traffic, t) < placement_cost(naive, traffic, t)
    assert hops(smart[0], smart[11], t) == 1


def test_hop_matrix_is_hops_for_every_pair():
    t = small_target(mesh=MESH)
    positions = [slot_position(s, t) for s in range(2 * t.cores_per_chip)]
    matrix = hop_matrix(positions, t)
    assert matrix.tolist() == [[hops(a, b, t) for b in positions] for a in positions]
