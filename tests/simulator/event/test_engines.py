"""The event simulator: bit-exact spikes, identical engines, conserved counts, complete reports."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[2] / "ir"))
sys.path.insert(0, str(Path(__file__).parent))
from ir_nets import SMALL, small_input  # noqa: E402
from sim_nets import small_deployment  # noqa: E402

from statten_hw.quant import run_integer  # noqa: E402
from statten_hw.simulator import simulate  # noqa: E402
from statten_hw.simulator.event.synapses import AttentionSynapses  # noqa: E402

KEYS = sorted(SMALL)


def _both(key: str, execution: str = "step", batch: int = 2):
    d = small_deployment(key, execution)
    x = small_input(d.model, batch, seed=11)
    return d, x, simulate(d, x, engine="fast"), simulate(d, x, engine="detailed")


@pytest.mark.parametrize("key", KEYS)
def test_engines_are_bit_exact_with_the_integer_reference_and_count_alike(key):
    d, x, fast, detailed = _both(key)
    ref = run_integer(d.qgraph, x)
    assert d.mapping.totals.cores > 3  # spread over several cores: packets really travel
    for layer, spikes in ref.spikes(d.qgraph).items():
        if layer in detailed.spikes:
            assert torch.equal(detailed.spikes[layer], spikes), layer
            assert torch.equal(fast.spikes[layer], spikes), layer
    assert torch.equal(detailed.logits_int, ref.logits_int)
    assert torch.equal(fast.logits_int, ref.logits_int)
    assert fast.counts.equal(detailed.counts) == []
    assert fast.report == detailed.report | {"simulation": fast.report["simulation"]}
    assert np.array_equal(fast.timeline.slot_cycles, detailed.timeline.slot_cycles)


@pytest.mark.parametrize("key", ["statten", "ssa", "sdsa_dvs"])
def test_layer_by_layer_targets_run_the_same_spikes_with_their_own_schedule(key):
    d, x, fast, detailed = _both(key, "layer")
    assert fast.counts.equal(detailed.counts) == []
    sched = d.mapping.schedule
    assert len(fast.report["simulation"]["slots"]) == sched.blocks * sched.layers
    assert torch.equal(fast.logits_int, run_integer(d.qgraph, x).logits_int)


@pytest.mark.parametrize("key", ["statten", "t_statten", "ssa", "statten_dvs_tet"])
def test_counts_are_conserved(key):
    d, x, fast, _ = _both(key)
    c, net = fast.counts, fast.network
    # Every packet sent (by a core or injected from the host) is received once.
    assert c["packets_out"].sum() + c["host_packets"].sum() == c["packets_in"].sum()
    # Synaptic ops = Σ events × fan-out, the fan-out of each element enumerated target by target.
    expected = 0
    values = run_integer(d.qgraph, x).values
    for p in net.projections:
        events = (values[p.source] != 0).reshape(values[p.source].shape[0], x.shape[0], -1).sum((0, 1)).numpy()
        fan = np.array([len(p.synapses.targets(e)[0]) for e in range(events.size)])
        expected += int((events * fan).sum())
    assert c["sops"].sum() + c["macs"].sum() == expected
    # Events leave their own layer's cores; a core never sends more packets than events x cores.
    assert (c["packets_out"] >= c["events"]).all()
    # Attention buffers take one write per q/k/v packet; no other projection writes there.
    attn = sum(1 for p in net.projections if isinstance(p.synapses, AttentionSynapses))
    assert attn == 3 and c["buffer_events"].sum() > 0


def test_step_targets_delay_attention_by_b_minus_one_and_count_hops():
    d, x, fast, _ = _both("statten")
    sched = d.mapping.schedule
    assert len(fast.report["simulation"]["slots"]) == sched.timesteps + (sched.block_size - 1)
    assert fast.report["totals"]["noc_hops"] > 0
    # Hop cycles make the slots longer than the busiest core alone.
    t = d.mapping.target.timing
    assert (fast.timeline.slot_cycles >= fast.timeline.busy.max(2) + t.barrier_cycles).all()


def test_report_fills_every_schema_field():
    _, _, fast, _ = _both("statten")
    doc = fast.report
    assert all(v is not None for v in doc["totals"].values())
    for row in doc["layers"]:
        assert all(row[k] is not None for k in ("spikes", "sops", "firing_rate", "energy_j")), row["name"]
    for row in doc["cores"]:
        assert all(row[k] is not None for k in ("spikes_in", "spikes_out", "sops", "neuron_updates", "cycles_busy",
                                                "noc_packets", "noc_hops", "energy_j")), row["id"]
    assert sum(r["spikes"] for r in doc["layers"]) == doc["totals"]["spikes"]
    assert sum(r["spikes_out"] for r in doc["cores"]) == doc["totals"]["spikes"]
    assert sum(r["noc_hops"] for r in doc["cores"]) == doc["totals"]["noc_hops"]
    assert doc["totals"]["buffer_peak_bytes"] <= doc["totals"]["buffer_bytes"]
    assert abs(sum(doc["simulation"]["energy_breakdown_j"].values()) - doc["totals"]["energy_j"]) < 1e-12
    nb = doc["neurobench"]  # NeuroBench's names; its own definitions are tested in tests/metrics
    assert nb["SynapticOperations"]["Dense"] >= nb["SynapticOperations"]["Effective_ACs"] > 0
    assert 0 <= nb["ActivationSparsity"] <= 1 and nb["Footprint"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("key", ["statten", "ssa", "n_statten"])
def test_cuda_fast_engine_equals_cpu(key):
    d = small_deployment(key)
    x = small_input(d.model, 4, seed=3)
    cpu, gpu = simulate(d, x, device="cpu"), simulate(d, x, device="cuda")
    assert torch.equal(cpu.logits_int, gpu.logits_int.cpu())
    assert cpu.counts.equal(gpu.counts) == []
