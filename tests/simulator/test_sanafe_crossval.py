"""The event simulator against SANA-FE 2.2.9 (`statten_hw.simulator.sanafe.crossval`), same network,
placement and architecture file: per-step counts equal exactly, total energy and simulated time within
5 %, and every remaining difference is the stated one. SANA-FE is the independent oracle here: its
counters, energies and times come from its own C++ kernel (chip.cpp, schedule.cpp)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "sanafe"))
sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from sanafe_crossval import deploy, random_csnn, random_events, rate_code, train_digits_csnn  # noqa: E402
from sanafe_nets import deployment, events, forked_snn, plain_snn, small_loihi  # noqa: E402

from statten_hw.data import load_digits_split  # noqa: E402
from statten_hw.errors import ConfigError, InputError  # noqa: E402
from statten_hw.simulator.event.fast import run_fast  # noqa: E402
from statten_hw.simulator.event.network import build_network  # noqa: E402
from statten_hw.simulator.event.timing import energy_pj, timeline, visit_energy_pj  # noqa: E402
from statten_hw.simulator.sanafe.crossval import cross_validate  # noqa: E402

pytest.importorskip("sanafe")


@pytest.fixture(scope="module")
def digits():
    """A digits CSNN trained for a few epochs (a shortened run of the benchmark's), 4 test digits, loihi.yaml."""
    x, _ = load_digits_split("digits", "test")
    events = rate_code(x[:64])
    d = deploy(train_digits_csnn(epochs=2), events, "sanafe:loihi")
    return d, cross_validate(d, events[:4])


@pytest.fixture(scope="module")
def two_tiles():
    """Random weights, 5,760 neurons: six loihi.yaml cores on two tiles, the input on a free one of them."""
    x = random_events(2, (2, 16, 16))
    d = deploy(random_csnn(), x, "sanafe:loihi")
    return d, cross_validate(d, x)


@pytest.fixture(scope="module")
def small_tiles(tmp_path_factory):
    """loihi.yaml cut to 100-neuron cores, 2 per tile: the plain network spreads over 3 tiles, and its
    128 input neurons need two more cores, one of them on a fourth tile."""
    x = events()
    d = deployment(plain_snn(), x, small_loihi(tmp_path_factory.mktemp("arch")))
    return d, cross_validate(d, x)


@pytest.fixture(scope="module")
def forked():
    """One layer's spikes feed two layers on the same core: SANA-FE sends each spike once per
    destination core, not once per projection (our count was 62, 189, 313, ... against its 62, 114, 255)."""
    x = events()
    d = deployment(forked_snn(), x, "sanafe:loihi")
    assert d.mapping.layers[1].cores == d.mapping.layers[2].cores  # both branches on one core
    return d, cross_validate(d, x)


CASES = ("digits", "two_tiles", "small_tiles", "forked")


@pytest.mark.parametrize("case", CASES)
def test_counts_agree_exactly_per_step(case, request):
    d, cv = request.getfixturevalue(case)
    assert cv.mismatches() == []
    assert all(ours == theirs for ours, theirs in cv.lags.values()), cv.lags
    assert set(cv.lags) == {row.name for row in d.mapping.layers}
    steps = cv.ours.steps
    assert steps["fired"].sum() > 0 and steps["synaptic_events"].sum() > 0
    # SANA-FE's neuron updates are not every neuron every step: the count really is the active one.
    assert 0 < steps["neuron_updates"].sum() < d.mapping.totals.neurons * steps["fired"].size


def test_detailed_engine_agrees_exactly_too(small_tiles):
    """The event-queue engine finds SANA-FE's active neurons from the packets it delivers, the fast one
    from tensor counts: both equal SANA-FE's count."""
    d, fast = small_tiles
    detailed = cross_validate(d, events(), engine="detailed")
    assert detailed.mismatches() == []
    assert detailed.ours.energy_j == fast.ours.energy_j


def test_networks_on_several_tiles_cross_hops(two_tiles, small_tiles):
    for _, cv in (two_tiles, small_tiles):
        assert cv.ours.steps["hops"].sum() > 0


@pytest.mark.parametrize("case", ("digits", "two_tiles"))
def test_energy_and_time_agree_within_5_percent(case, request):
    _, cv = request.getfixturevalue(case)
    assert cv.relative_difference("energy_j") < 0.05
    assert cv.relative_difference("sim_time_s") < 0.05
    np.testing.assert_allclose(cv.ours.sim_time_s, cv.sanafe.sim_time_s, rtol=1e-9)  # step by step, in fact


def test_time_differs_only_by_the_synchronization_of_the_input_tile(small_tiles):
    """SANA-FE looks its end-of-step sync delay up by the tiles holding neurons, its input neurons' tile
    included; ours by the mapping's tiles. That, step by step, is the whole difference."""
    d, cv = small_tiles
    arch = cv.run.architecture
    ours = len({(c.x, c.y) for c in d.mapping.cores})
    theirs = len({g.core // arch.cores_per_tile for g in cv.run.groups})
    assert theirs == ours + 1
    extra = arch.sync_seconds(theirs) - arch.sync_seconds(ours)
    assert extra > 0
    np.testing.assert_allclose(cv.ours.sim_time_s + extra, cv.sanafe.sim_time_s, rtol=1e-9)
    assert cv.relative_difference("energy_j") < 0.05
    assert cv.input_hops > 0  # the input's packets cross the NoC on SANA-FE, not from our host


def test_only_networks_sanafe_runs_on_its_synapses_are_compared():
    x = events() * 0.5  # graded input: SANA-FE can only inject the first layer's current
    with pytest.raises(ConfigError, match="entirely through its synapses.*lif1 \\(injected-current\\)"):
        cross_validate(deployment(plain_snn(), x, "sanafe:loihi"), x)
    with pytest.raises(ConfigError, match="needs a SANA-FE target"):
        cross_validate(deployment(plain_snn(), events(), "loihi2"), events())
    with pytest.raises(InputError, match="--engine must be one of fast, detailed"):
        cross_validate(deployment(plain_snn(), events(), "sanafe:loihi"), events(), engine="exact")


def test_sanafe_cost_fields_change_nothing_on_builtin_targets():
    """With SANA-FE's extra costs at their default 0 (every built-in target), busy cycles and energy are
    the model's original formulas, written out here."""
    x = events()
    d = deployment(plain_snn(), x, "loihi2")
    net = build_network(d.qgraph, d.mapping)
    _, counts = run_fast(d.qgraph, net, x)
    tl, slots = timeline(counts, net, d.mapping)
    t, e, c = d.mapping.target.timing, d.mapping.target.energy, counts.arrays
    busy = (t.sop_cycles * (slots["sops"] + slots["macs"]) + t.neuron_update_cycles * slots["updates"]
            + t.spike_packet_cycles * (slots["packets_in"] + slots["packets_out"]))
    assert np.array_equal(tl.busy, busy)
    assert np.array_equal(tl.slot_cycles, busy.max(2) + t.hop_cycles * slots["max_hops"] + t.barrier_cycles)
    energy = (e.sop_pj * c["sops"] + e.mac_pj * c["macs"] + e.neuron_update_pj * c["updates"]
              + e.noc_hop_pj * c["hops_out"] + (e.sram_write_byte_pj + e.sram_read_byte_pj) * (c["buffer_bits"] / 8))
    assert np.array_equal(energy_pj(c, d.mapping.target), energy)
    assert not visit_energy_pj(tl, d.mapping.target).any()
    assert (counts["active_updates"] <= counts["updates"]).all() and counts["active_updates"].sum() > 0


def test_sanafe_lava_converter_cannot_take_our_lava_processes(tmp_path: Path):
    """``sanafe.lava`` (2.2.9) reads only ``proc_params['shape']`` as (rows, cols) neuron populations joined
    densely without weights, and forwards every other parameter as a SANA-FE model attribute: our Lava
    network (`statten_hw.simulator.lava`) has synapse processes (Conv, Dense) without a 'shape', and LIF
    parameters (numpy biases, du/dv/vth) that SANA-FE cannot take. So it gives no counts to compare."""
    lava_build = pytest.importorskip("statten_hw.simulator.lava.build")
    sanafe_lava = pytest.importorskip("sanafe.lava")
    import sanafe
    from statten_hw.targets.sanafe import shipped_path

    x = events()
    processes = dict(lava_build.build_network(deployment(plain_snn(), x, "sanafe:loihi").qgraph, 1).processes)
    arch = sanafe.load_arch(str(shipped_path("loihi")))
    for synapses in ("conv1", "fc"):
        with pytest.raises(KeyError, match="shape"):
            sanafe_lava.process_to_sanafe(processes[synapses], arch=arch, save_path=str(tmp_path / "net.yaml"))
    with pytest.raises(RuntimeError, match="Unable to cast Python instance of type <class 'numpy.ndarray'>"):
        sanafe_lava.process_to_sanafe(processes["lif1"], arch=arch, save_path=str(tmp_path / "net.yaml"))
