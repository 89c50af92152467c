"""The LIF traces the integer run hands back (`run_integer(..., trace_lifs=True)`) equal a fresh replay.

The simulator's active-update counts and NeuroBench's membrane updates read each LIF's membrane from
its trace instead of replaying it. Here the membranes are replayed independently, with
``fixed_point``'s own ``decay`` and ``saturate`` (not the executor's in-place kernels), and every
traced value is checked against them; then the counts and metrics built on traces are checked
against those built without them (the rerun path the detailed engine and plain runs take).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[2] / "ir"))
sys.path.insert(0, str(Path(__file__).parent))
from ir_nets import small_input  # noqa: E402
from sim_nets import small_deployment  # noqa: E402

from statten_hw.ir.graph import inputs_by_port  # noqa: E402
from statten_hw.metrics import neurobench_metrics  # noqa: E402
from statten_hw.metrics.neurobench import _sdsa_current  # noqa: E402
from statten_hw.quant import run_integer  # noqa: E402
from statten_hw.quant.execute import IntegerRun, _Ctx, _dvs_pool, _heads, lif_integer  # noqa: E402
from statten_hw.quant.fixed_point import decay, saturate  # noqa: E402
from statten_hw.quant.quantize import QAttention, QLIF  # noqa: E402
from statten_hw.simulator.event.counts import Counts, count_active_updates  # noqa: E402
from statten_hw.simulator.event.fast import count_events  # noqa: E402
from statten_hw.simulator.event.network import build_network  # noqa: E402

# a2os2a has a ternary LIF, sdsa and sdsa_dvs SDSA's K⊙V neurons, statten_mlp_res membrane shortcuts.
KEYS = ["statten", "a2os2a", "sdsa", "sdsa_dvs", "statten_mlp_res"]


def replay(x: torch.Tensor, op: QLIF, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spikes, membrane after each step)`` of Lava's LIF, step by step from the contract's primitives."""
    v = torch.zeros_like(x[0])
    spikes, membrane = [], []
    for x_t in x:
        h, _ = saturate(decay(v, op.dv) + x_t, bits, strict=False)
        s = (h >= op.threshold).to(torch.int64)
        if op.ternary:
            s = s - (h <= -op.threshold).to(torch.int64)
        v = torch.where(s != 0, torch.zeros_like(h), h)
        spikes.append(s)
        membrane.append(v)
    return torch.stack(spikes), torch.stack(membrane)


def assert_trace_is_the_replay(trace, spikes: torch.Tensor, membrane: torch.Tensor) -> None:
    before = torch.zeros_like(membrane, dtype=torch.bool)
    before[1:] = membrane[:-1] != 0
    assert torch.equal(trace.state_before, before)
    assert trace.membrane_updates == membrane[0].numel() + int(torch.count_nonzero(membrane[1:] != membrane[:-1]))
    assert (trace.outputs, trace.spikes) == (spikes.numel(), int(torch.count_nonzero(spikes)))


def _currents(qg, values: dict, node: str) -> torch.Tensor:
    return values[next(iter(qg.graph.predecessors(node)))]


@pytest.mark.parametrize("key", KEYS)
def test_run_traces_equal_a_fresh_replay(key):
    d = small_deployment(key)
    qg, x = d.qgraph, small_input(d.model, 2, seed=11)
    run, plain = run_integer(qg, x, trace_lifs=True), run_integer(qg, x)
    assert plain.lif_traces is None
    assert run.values.keys() == plain.values.keys()
    assert all(torch.equal(run.values[n], plain.values[n]) for n in run.values)  # tracing changes nothing
    traced = set()
    for node in qg.graph:
        op = qg.qop(node)
        if isinstance(op, QLIF):
            spikes, membrane = replay(_currents(qg, run.values, node), op, qg.state_bits)
            assert torch.equal(spikes, run.values[node]), node
            assert_trace_is_the_replay(run.lif_traces[node], spikes, membrane)
            traced.add(node)
        elif isinstance(op, QAttention) and op.mode == "SDSA":
            ins = {port: run.values[src] for port, src in inputs_by_port(qg.graph, node).items()}
            current, _ = saturate(_sdsa_current(ins["k"], ins["v"], op, _heads, _dvs_pool), qg.state_bits, False)
            assert_trace_is_the_replay(run.lif_traces[f"{node}.kv_lif"], *replay(current, op.kv_lif, qg.state_bits))
            traced.add(f"{node}.kv_lif")
    assert traced == set(run.lif_traces) and traced


@pytest.mark.parametrize("ternary", [False, True])
def test_saturating_lif_trace_equals_the_replay(ternary):
    """Clipped membranes (11 bits: cap 1023, they fire), negative ones and ternary spikes."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randint(-900, 900, (6, 3, 40), generator=gen, dtype=torch.int64)
    X[2:4, 0] = 0  # a stretch of pure decay
    op = QLIF(threshold=700, dv=1500, ternary=ternary, state_scale=1.0)
    ctx = _Ctx(11, False, traces={})
    spikes = lif_integer(X, op, ctx, "lif")
    want_spikes, membrane = replay(X, op, 11)
    assert torch.equal(spikes, want_spikes)
    assert torch.equal(spikes, lif_integer(X, op, _Ctx(11, False), "lif"))
    assert ctx.overflows["lif"] > 0 and (membrane < 0).any() and (spikes == -1).any() == ternary
    assert_trace_is_the_replay(ctx.traces["lif"], spikes, membrane)


def _active_updates(d, x, run) -> np.ndarray:
    """The fast engine's active updates from ``run`` (its LIF traces, or reruns where it has none)."""
    net = build_network(d.qgraph, d.mapping)
    counts = Counts.of(net, x.shape[0])
    reached = count_events(d.qgraph, net, run.values, counts)
    count_active_updates(counts, net, d.qgraph, run.values, reached, 0, run.lif_traces)
    return counts["active_updates"]


@pytest.mark.parametrize("key", ["statten", "a2os2a", "sdsa"])
def test_counts_and_metrics_from_traces_equal_those_rerun(key):
    d = small_deployment(key)
    x = small_input(d.model, 2, seed=11)
    run = run_integer(d.qgraph, x, trace_lifs=True)
    untraced = IntegerRun(run.logits_int, run.logits_scale, run.values, run.overflows)
    assert np.array_equal(_active_updates(d, x, run), _active_updates(d, x, untraced))
    assert neurobench_metrics(d.qgraph, run) == neurobench_metrics(d.qgraph, untraced)
