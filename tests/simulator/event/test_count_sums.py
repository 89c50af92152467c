"""The fast engine's counting primitives: per-core counts, each projection's per-core counters, the
float type its products run in."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[2] / "ir"))
sys.path.insert(0, str(Path(__file__).parent))
from sim_nets import small_deployment  # noqa: E402

from statten_hw.simulator.event.counts import per_core  # noqa: E402
from statten_hw.quant.execute import exact_dtype  # noqa: E402
from statten_hw.simulator.event.network import group_by_core  # noqa: E402
from statten_hw.simulator.event.owners import HOST  # noqa: E402
from statten_hw.simulator.event.synapses import AttentionSynapses  # noqa: E402


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64])
def test_per_core_counts_nonzero_entries_of_each_core(dtype):
    gen = torch.Generator().manual_seed(1)
    width = 1 << 15  # long rows, and a core whose elements are not consecutive
    values = (torch.rand(3, 2, 3 * width, generator=gen) < 0.5).to(dtype)  # [T, S, elements]
    owner = np.concatenate([np.zeros(width, int), np.tile([2, 3], width)])
    got = per_core(values, group_by_core(owner), 4)
    assert got.shape == (2, 3, 4)
    for core in range(4):
        want = (values[:, :, owner == core] != 0).sum(2).T.numpy()
        assert (got[:, :, core] == want).all(), core
    assert per_core(values[:, :, :width][..., ::2], group_by_core(np.zeros(width // 2, int)), 1).sum() == \
        int((values[:, :, :width:2] != 0).sum())  # a strided view


FLOAT32_EXACT = 1 << 24


def test_count_dtype_is_float32_only_while_sums_stay_exact():
    assert exact_dtype(FLOAT32_EXACT - 1, "cpu") == torch.float32
    assert exact_dtype(FLOAT32_EXACT, "cpu") == torch.float64
    assert exact_dtype(1, "cuda") == torch.float64  # cuDNN/cuBLAS may round float32 sums
    assert float(torch.tensor(FLOAT32_EXACT + 1, dtype=torch.float32)) != FLOAT32_EXACT + 1  # why: 2^24 + 1 rounds


@pytest.mark.parametrize("key", ["statten", "ssa", "statten_mlp_res"])
def test_projection_counters_equal_the_synapses_enumerated_one_by_one(key):
    """Per input element and destination core: the targets it has there (from ``targets(e)``, the
    detailed engine's definition) and whether this projection sends it there (not when an earlier
    projection of the same source already does, q/k/v buffer writes aside), and 1; and the longest
    route to its targets on the placed mesh (none from the host; None where no packet travels)."""
    net = small_deployment(key).event_network
    travelling, shared, sent = 0, 0, set()  # (source, element, core) packets already sent
    for p in net.projections:
        n = len(p.dst_cores)
        column = {int(core): i for i, core in enumerate(p.dst_cores)}
        want = np.zeros((len(p.origin), 2 * n + 1), np.float32)
        want[:, 2 * n] = 1
        longest = np.zeros(len(p.origin))
        for e in range(len(p.origin)):
            targets, _ = p.synapses.targets(e)
            for core in p.owner[targets]:
                want[e, column[int(core)]] += 1
            if p.origin[e] != HOST:
                longest[e] = max((net.hops[p.origin[e], int(core)] for core in p.owner[targets]), default=0)
        want[:, n:2 * n] = want[:, :n] > 0
        if not isinstance(p.synapses, AttentionSynapses):
            for e, j in zip(*np.nonzero(want[:, n:2 * n])):
                packet = (p.source, int(e), int(p.dst_cores[j]))
                if packet in sent:
                    want[e, n + j], shared = 0, shared + 1
                sent.add(packet)
        assert np.array_equal(p.counters.numpy(), want), (p.source, p.target)
        assert p.largest_total == want.sum(0).max()
        if longest.any():
            assert np.array_equal(p.longest_route.numpy(), longest), (p.source, p.target)
            travelling += 1
        else:
            assert p.longest_route is None
    assert travelling > 0  # packets really travel between cores
    assert shared > 0  # q, k and v read the same spikes: their packets to a core are shared


@pytest.mark.parametrize("key", ["statten", "sdsa", "ssa", "statten_mlp_res"])
def test_always_driven_layers_are_driven_everywhere_with_no_events(key):
    """The static shortcut against the definition: with no event reaching anything, `_driven` of a
    layer called always driven is True at every element and step; of the others, not everywhere."""
    from statten_hw.simulator.event.counts import _driven, always_driven

    d = small_deployment(key)
    net = d.event_network
    like = torch.zeros((net.timesteps, 2, 1), dtype=torch.int64)
    verdicts = set()
    for layer in net.layers:
        driven = _driven(d.qgraph, layer.name, net.arrivals, {}, like)
        everywhere = driven is not None and bool(driven.all()) and driven.shape[2:] == layer.shape
        assert always_driven(d.qgraph, layer.name, net.arrivals) == everywhere, layer.name
        verdicts.add(everywhere)
    assert verdicts == {True, False}  # both kinds occur in every one of these networks


def test_always_driven_answers_for_the_arrivals_it_is_given():
    """The verdict depends on which inputs arrive as events (a bias before them is not carried): asked
    for two sets of arrivals of one graph, each answer follows `_driven` for its own set, not the set
    asked about first. The second set also has every biased conv/linear's output arrive, so their
    biases no longer reach the LIFs after them."""
    from statten_hw.simulator.event.counts import _driven, always_driven, full_bias

    d = small_deployment("statten")
    net, g = d.event_network, d.qgraph.graph
    like = torch.zeros((net.timesteps, 2, 1), dtype=torch.int64)
    biased_outputs = frozenset((succ, data["port"]) for n in g.nodes if full_bias(d.qgraph.qop(n))
                               for _, succ, data in g.out_edges(n, data=True))
    answers = {}
    for arrivals in (net.arrivals, net.arrivals | biased_outputs):
        for layer in net.layers:
            driven = _driven(d.qgraph, layer.name, arrivals, {}, like)
            everywhere = driven is not None and bool(driven.all()) and driven.shape[2:] == layer.shape
            assert always_driven(d.qgraph, layer.name, arrivals) == everywhere, (layer.name, len(arrivals))
            answers[layer.name, len(arrivals)] = everywhere
    sizes = (len(net.arrivals), len(net.arrivals | biased_outputs))
    assert sizes[0] < sizes[1]
    assert any(answers[layer.name, sizes[0]] != answers[layer.name, sizes[1]] for layer in net.layers)  # they differ


@pytest.mark.parametrize("key", ["statten", "sdsa"])
def test_float64_counters_count_what_float32_ones_count(key, monkeypatch):
    """Counters are stored in float64 where a step's totals may pass 2^24 (`exact_dtype`). Forcing that
    branch on every projection (float32 then holds nothing) changes no count, spike or report figure."""
    from ir_nets import small_input

    from statten_hw.quant import execute
    from statten_hw.simulator import simulate

    fresh = small_deployment.__wrapped__  # not the cached deployment: its network is built once
    mixed = fresh(key)
    x = small_input(mixed.model, 3, seed=11)
    want = simulate(mixed, x)
    assert any(p.counters.dtype == torch.float32 for p in mixed.event_network.projections)
    monkeypatch.setattr(execute, "EXACT_LIMITS", ((torch.float32, 1), (torch.float64, 1 << 53)))
    wide = fresh(key)
    got = simulate(wide, x)
    assert all(p.counters.dtype == torch.float64 for p in wide.event_network.projections)
    for name, array in want.counts.arrays.items():
        assert np.array_equal(got.counts.arrays[name], array), name
    assert got.report["totals"] == want.report["totals"] and got.report["cores"] == want.report["cores"]
    assert all(torch.equal(got.spikes[n], s) for n, s in want.spikes.items())
