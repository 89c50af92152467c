"""SANA-FE runs: bit-exact spikes and readouts, and its per-step counters equal the counts derived here
from the integer reference's spikes with SANA-FE's rules (one packet per firing neuron and destination
core, one synaptic event per synapse of the packet, hops = tile Manhattan distance, chip.cpp)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import torch

from sanafe_nets import deployment, events, plain_snn, small_loihi
from statten_hw.errors import ConfigError
from statten_hw.quant import run_integer
from statten_hw.quant.fixed_point import decay
from statten_hw.simulator.sanafe import run_sanafe
from statten_hw.simulator.sanafe.build import layer_synapses
from statten_hw.simulator.sanafe.plan import INJECTED, SYNAPSES

sanafe = pytest.importorskip("sanafe")

PJ = 1e-12
SYNAPSE_PJ, PACKET_PJ, EAST_WEST_PJ, NORTH_SOUTH_PJ = 35.5, 111.0, 3.0, 4.2  # loihi.yaml


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    x = events()
    d = deployment(plain_snn(), x, small_loihi(tmp_path_factory.mktemp("arch")))
    return d, x, run_integer(d.qgraph, x), run_sanafe(d, x, timing_model="simple")


def test_plain_snn_is_bit_exact(plain):
    d, x, ref, run = plain
    assert set(run.spikes) == {"input", "lif1", "lif2", "lif3"} and set(run.readouts) == {"head"}
    for name, got in run.spikes.items():
        assert torch.equal(got, ref.values[name]), name
        assert 0 < int(got.sum()) < got.numel()  # spikes happen, and not everywhere
    assert torch.equal(run.readouts["head"], ref.values["head"])
    assert set(run.reference_mismatches.values()) == {0}
    assert all(p.mode == SYNAPSES for p in run.plans if p.kind != "input")


class _Wiring:
    """Where every neuron sits (SANA-FE core) and whom it reaches: ``fan[(layer, n)] = {(layer, m): synapses}``."""

    def __init__(self, d, run):
        self.arch = run.architecture
        self.core = {(g.layer, n): g.core for g in run.groups for n in range(g.start, g.start + g.neurons)}
        self.fan = defaultdict(lambda: defaultdict(int))
        for plan in run.plans:
            if plan.mode == SYNAPSES:
                syn = layer_synapses(d.qgraph, plan)
                for a, b in zip(syn.source.tolist(), syn.target.tolist()):
                    self.fan[(plan.source, a)][(plan.name, b)] += 1

    def packets(self, layer: str, n: int) -> dict[int, int]:
        """Destination core -> synapses, one packet each, for a spike of neuron ``n`` of ``layer``."""
        out = defaultdict(int)
        for key, count in self.fan[(layer, n)].items():
            out[self.core[key]] += count
        return out

    def distance(self, a: int, b: int) -> tuple[int, int]:
        (xa, ya), (xb, yb) = (self.arch.tile_position(c // self.arch.cores_per_tile) for c in (a, b))
        return abs(xa - xb), abs(ya - yb)


def _fired(ref, plan, t: int, sample: int) -> list[int]:
    return torch.nonzero(ref.values[plan.name][t, sample].reshape(-1) == 1).flatten().tolist()


def _window(plans, step: int):
    """(plan, t) of every layer computing a time step at this SANA-FE step."""
    return [(p, step - p.lag) for p in plans if 0 <= step - p.lag < p.steps]


@pytest.mark.parametrize("sample", [0, 1])
def test_step_counters_follow_sanafes_rules(plain, sample):
    d, x, ref, run = plain
    wiring = _Wiring(d, run)
    for s in run.steps[sample]:
        spikes = packets = hops = synapses = 0
        network_pj = 0.0
        for plan, t in _window(run.plans, s.step):
            if plan.kind == "readout":
                continue
            for n in _fired(ref, plan, t, sample):
                spikes += 1
                for dest, count in wiring.packets(plan.name, n).items():
                    dx, dy = wiring.distance(wiring.core[(plan.name, n)], dest)
                    packets, hops, synapses = packets + 1, hops + dx + dy, synapses + count
                    network_pj += PACKET_PJ + EAST_WEST_PJ * dx + NORTH_SOUTH_PJ * dy
        assert (s.spikes, s.packets, s.hops, s.synaptic_events) == (spikes, packets, hops, synapses), s.step
        assert s.energy_j["synapse"] == pytest.approx(synapses * SYNAPSE_PJ * PJ)
        assert s.energy_j["network"] == pytest.approx(network_pj * PJ)
        assert s.energy_j["total"] == pytest.approx(sum(s.energy_j[k] for k in ("synapse", "dendrite", "soma", "network")))
    assert sum(s.hops for s in run.steps[sample]) > 0  # the network spans tiles


def _membranes(d, ref, plan, sample: int) -> torch.Tensor:
    """``[T, n]`` state after each step: the LIF rule ``v = 0 if h >= threshold else h``, ``h = decay(v) + x``
    on the reference's input current (a readout never fires: it sums its input)."""
    x = ref.values[plan.name if plan.kind == "readout" else plan.synapse][:, sample].reshape(plan.steps, -1)
    if plan.kind == "readout":
        return x.cumsum(0)
    op = d.qgraph.qop(plan.name)
    v, out = torch.zeros_like(x[0]), []
    for x_t in x:
        h = decay(v, op.dv) + x_t
        v = torch.where(h >= op.threshold, torch.zeros_like(h), h)
        out.append(v)
    return torch.stack(out)


@pytest.mark.parametrize("sample", [0, 1])
def test_neuron_updates_and_simple_timing_follow_sanafes_rules(plain, sample):
    """A soma counts as updated when its potential before the step is not 0, it has a bias, a packet
    reached it or it fires (LoihiLifModel::update); an input neuron only when it fires. Step time
    (timing model 'simple'): max over cores of (6 ns per soma visited, + 3.7 ns if updated, + 30 ns if
    it fires, + 5.1 ns per packet sent) and (16 ns + 3.8 ns per synapse, per packet received), plus the
    sync delay of the tiles in use (loihi.yaml)."""
    d, x, ref, run = plain
    wiring = _Wiring(d, run)
    v = {p.name: _membranes(d, ref, p, sample) for p in run.plans if p.kind != "input"}
    bias = {p.name: torch.from_numpy(layer_synapses(d.qgraph, p).bias) != 0 for p in run.plans if p.kind != "input"}
    tiles = len({g.core // wiring.arch.cores_per_tile for g in run.groups})
    for s in run.steps[sample]:
        updates, send, receive = 0, defaultdict(float), defaultdict(float)
        for key, core in wiring.core.items():  # every soma is visited every step
            send[core] += 6.0 if key[0] != "input" else 0.0
        for plan, t in _window(run.plans, s.step):
            fired = _fired(ref, plan, t, sample) if plan.kind != "readout" else []
            if plan.kind == "input":
                updates += len(fired)
            else:
                # The source's spikes of step t were sent one SANA-FE step earlier: they arrive now.
                active = bias[plan.name] | (v[plan.name][t - 1] != 0 if t else False)
                for n in _fired(ref, next(p for p in run.plans if p.name == plan.source), t, sample):
                    for layer, m in wiring.fan[(plan.source, n)]:
                        active[m] |= layer == plan.name
                active[fired] = True
                updates += int(active.sum())
                for n in torch.nonzero(active).flatten().tolist():
                    send[wiring.core[(plan.name, n)]] += 3.7
            for n in fired:
                send[wiring.core[(plan.name, n)]] += 30.0 * (plan.kind != "input")
                for dest, count in wiring.packets(plan.name, n).items():
                    send[wiring.core[(plan.name, n)]] += 5.1
                    receive[dest] += 16.0 + 3.8 * count
        assert s.neuron_updates == updates, s.step
        busiest = max(max(send.values()), max(receive.values(), default=0.0))
        assert s.sim_time_s == pytest.approx(busiest * 1e-9 + wiring.arch.sync_seconds(tiles), rel=1e-9), s.step


def test_core_counters_add_up(plain):
    _, _, _, run = plain
    steps = [s for sample in run.steps for s in sample]
    cores = run.cores.values()
    assert sum(c.packets_out for c in cores) == sum(c.packets_in for c in cores) == sum(s.packets for s in steps)
    assert sum(c.hops_out for c in cores) == sum(s.hops for s in steps)
    assert sum(c.synaptic_events for c in cores) == sum(s.synaptic_events for s in steps)
    assert sum(c.spikes for c in cores) == sum(s.spikes for s in steps)


def test_embedded_model_end_to_end():
    from statten_hw.data import load_dataset
    from statten_hw.pipeline import prepare

    d = prepare(None, "sanafe:loihi")
    x, _ = load_dataset(d.dataset, split="test")
    run = run_sanafe(d, x[:2])
    mapped = [row.name for row in d.mapping.layers]
    assert [p.name for p in run.plans] == mapped  # every layer has a plan: none skipped
    assert set(run.reference_mismatches.values()) == {0}  # every LIF and the readout, bit-exact
    assert set(run.reference_mismatches) == set(mapped)
    plans = {p.name: p for p in run.plans}
    assert plans["block.0.attn.attn_lif"].mode == INJECTED
    non_attention = [n for n in mapped if plans[n].mode == SYNAPSES]
    assert {"patch_embed.proj_lif1", "patch_embed.proj_lif2", "block.0.attn.q_lif", "block.0.mlp.fc2_lif",
            "head"} <= set(non_attention)
    assert len(run.steps) == 2 and all(s.sim_time_s > 0 for s in run.steps[0])


def test_non_sanafe_targets_are_refused(tmp_path: Path):
    x = events()
    with pytest.raises(ConfigError, match="needs a SANA-FE target"):
        run_sanafe(deployment(plain_snn(), x, "loihi2"), x)
    with pytest.raises(ConfigError, match="'leaky_integrate_fire' soma.*'truenorth'"):
        run_sanafe(deployment(plain_snn(), x, "sanafe:truenorth"), x)
    with pytest.raises(ConfigError, match="timing model"):
        run_sanafe(deployment(plain_snn(), x, "sanafe:loihi"), x, timing_model="cycle")
