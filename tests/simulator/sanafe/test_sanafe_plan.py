"""Layer modes and lags, and SANA-FE's own LIF running our integer LIF through `lif_attributes`."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "ir"))
from ir_nets import small_input, small_model  # noqa: E402
from sanafe_nets import deployment, events, plain_snn, small_loihi  # noqa: E402
from statten_hw.ir import lower  # noqa: E402
from statten_hw.quant import run_integer  # noqa: E402
from statten_hw.quant.quantize import QLIF  # noqa: E402
from statten_hw.simulator.sanafe.plan import (INJECTED, REFERENCE, REPLAYED, SYNAPSES, lif_attributes,  # noqa: E402
                                              place_groups, plan_layers)
from statten_hw.targets.sanafe import read_architecture  # noqa: E402

sanafe = pytest.importorskip("sanafe")


def _plans(d, x):
    return {p.name: p for p in plan_layers(d.qgraph, d.mapping, run_integer(d.qgraph, x).values)}


def test_lif_attributes_scale_by_one_64th():
    # threshold 10 fires at v >= 10, i.e. v/64 > 9/64; dv 2048 halves; ternary also resets at v <= -10.
    assert lif_attributes(QLIF(10, 2048, False, 1.0)) == {"threshold": 9 / 64, "leak_decay": 0.5, "reset": 0.0,
                                                          "reset_mode": "hard"}
    ternary = lif_attributes(QLIF(10, 1024, True, 1.0))
    assert ternary["leak_decay"] == 0.75
    assert (ternary["reverse_threshold"], ternary["reverse_reset"], ternary["reverse_reset_mode"]) == (-9 / 64, 0.0, "hard")


@pytest.mark.parametrize("ternary", [False, True])
def test_sanafe_lif_runs_our_integer_lif(ternary, tmp_path):
    """One SANA-FE neuron driven by per-step bias currents, against this hand derivation (threshold 10,
    v -> trunc(v/2) + x, fire and reset at v >= 10; ternary also resets at v <= -10):
      x:  7  6  10  -7  -6   0  21  -3  11  -7  -7
      v:  7  9  0   -7  -9  -4  0   -3  0   -7   0 (ternary: -10 resets) / -10 (binary)
      s:  0  0  1    0   0   0  1    0  1    0   0
    (trunc(4.5) = 4 -> 14 fires; trunc(-4.5) = -4; trunc(-1.5) = -1 -> 10 is a tie and fires)."""
    currents = [7, 6, 10, -7, -6, 0, 21, -3, 11, -7, -7]
    want_v = [7, 9, 0, -7, -9, -4, 0, -3, 0, -7, 0 if ternary else -10]
    want_s = [0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0]
    arch = sanafe.load_arch(str(small_loihi(tmp_path)))  # Loihi's LIF unit on a small chip (builds fast)
    net = sanafe.Network()
    group = net.create_neuron_group("n", 1, model_attributes=lif_attributes(QLIF(10, 2048, ternary, 1.0)),
                                    soma_hw_name="loihi_lif", log_spikes=True, log_potential=True)
    group.map_to_core(arch.cores()[0])
    chip = sanafe.SpikingChip(arch)
    chip.load(net)
    neuron = chip.mapped_neuron_groups["n"][0]
    got_v, got_s = [], []
    for x in currents:
        neuron.set_attributes(model_attributes={"bias": x / 64})
        result = chip.sim(1, spike_trace=True, potential_trace=True)
        got_v.append(round(result["potential_trace"][0][0] * 64))
        got_s.append(len(result["spike_trace"][0]))
    assert (got_v, got_s) == (want_v, want_s)


def test_plain_snn_runs_on_synapses_with_the_input_replayed():
    x = events()
    plans = _plans(deployment(plain_snn(), x, "sanafe:loihi"), x)
    assert [(p.name, p.mode, p.lag) for p in plans.values()] == [
        ("input", REPLAYED, 1), ("lif1", SYNAPSES, 2), ("lif2", SYNAPSES, 3), ("lif3", SYNAPSES, 4),
        ("head", SYNAPSES, 5)]
    assert plans["lif3"].flatten == ("tokens",) and plans["lif3"].source == "lif2"
    assert all(p.steps == 4 for p in plans.values())


def test_analog_input_is_injected():
    x = events() * 0.5  # not spikes: the first layer's current comes from the reference
    plans = _plans(deployment(plain_snn(), x, "sanafe:loihi"), x)
    assert "input" not in plans
    assert (plans["lif1"].mode, plans["lif1"].lag, plans["lif1"].current) == (INJECTED, 1, "conv1")
    assert "conv of a non-spiking input" in plans["lif1"].note
    assert plans["lif2"].mode == SYNAPSES and plans["lif2"].lag == 2


def _small(key):
    model = small_model(key)
    x = small_input(model)
    graph = lower(model, encoding="events" if x.dim() == 5 else None)
    return _plans(deployment(graph, x, "sanafe:loihi", model), x)


def test_statten_attention_is_injected_never_skipped():
    plans = _small("statten")
    attn = plans["block.0.attn.attn_lif"]
    assert attn.mode == INJECTED and attn.current == "block.0.attn.attention"
    assert "STAtten attention product" in attn.note
    assert all(plans[f"block.0.attn.{p}_lif"].mode == SYNAPSES for p in "qkv")
    # The residual stream and the pooled patch embedding are not synapses of a spiking layer.
    assert plans["block.0.mlp.fc1_lif"].mode == INJECTED and "Add" in plans["block.0.mlp.fc1_lif"].note
    assert plans["patch_embed.proj_lif3"].mode == INJECTED and "MaxPool2d" in plans["patch_embed.proj_lif3"].note
    # Time runs one step per layer: q/k/v one step after the shortcut LIF, attention after them.
    assert plans["block.0.attn.q_lif"].lag == plans["block.0.attn.shortcut_lif"].lag + 1
    assert plans["block.0.attn.attn_lif"].lag == plans["block.0.attn.q_lif"].lag + 1


def test_graded_and_replayed_layers():
    a2os2a = _small("a2os2a")
    assert a2os2a["block.0.attn.k_lif"].mode == REFERENCE and not a2os2a["block.0.attn.k_lif"].on_chip
    sdsa = _small("sdsa")
    assert sdsa["block.0.attn.attention"].mode == REPLAYED and "SDSA" in sdsa["block.0.attn.attention"].note


def test_groups_sit_on_the_mapped_tiles(tmp_path: Path):
    x = events()
    d = deployment(plain_snn(), x, small_loihi(tmp_path))
    arch = read_architecture(d.target.provenance.source)
    groups = place_groups(plan_layers(d.qgraph, d.mapping, run_integer(d.qgraph, x).values), d.mapping, arch)
    rows = {c.id: c for c in d.mapping.cores}
    for g in groups:
        if g.mapped_core is not None:
            assert arch.tile_position(g.core // arch.cores_per_tile) == (rows[g.mapped_core].x, rows[g.mapped_core].y)
    mapped = {g.core for g in groups if g.mapped_core is not None}
    inputs = [g for g in groups if g.layer == "input"]
    assert sum(g.neurons for g in inputs) == 2 * 8 * 8 and not mapped & {g.core for g in inputs}
    # Every neuron of every on-chip layer is in exactly one group.
    for layer in ("lif1", "lif2", "lif3", "head"):
        spans = sorted((g.start, g.neurons) for g in groups if g.layer == layer)
        assert [s for s, _ in spans] == [0] + [a + n for a, n in spans[:-1]]
