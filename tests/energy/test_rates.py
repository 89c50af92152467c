"""Measured rates against the official code's LIF firing rates (an independent oracle).

Every conv/linear here is fed by exactly one LIF (possibly through nothing but a reshape), so the
mean of its per-step input rates must equal that LIF's mean output measured by the official code.
"""
from __future__ import annotations

import pytest

from conftest import official_checkpoint, official_expected
from statten_hw import load_checkpoint
from statten_hw.energy import layer_geometry, load_rate_profile, measure_rates, rate_keys


def _feeders(name: str, depth: int) -> dict[str, str]:
    """conv/linear path -> path of the LIF whose output is its input (from models/sdt.py, models/sps.py).

    ``proj_conv3`` is left out: with pooling "0011" it sees ``maxpool2(proj_lif2)``, not a LIF output.
    SDSA's ``proj_conv`` sees ``Q ⊙ LIF(Σ K⊙V)``, not a LIF output, so only STAtten lists it.
    """
    feeders = {
        "patch_embed.proj_conv1": "patch_embed.proj_lif",
        "patch_embed.proj_conv2": "patch_embed.proj_lif1",
        "patch_embed.rpe_conv": "patch_embed.proj_lif3",
        "head": "head_lif",
    }
    for i in range(depth):
        b = f"block.{i}"
        for q in "qkv":
            feeders[f"{b}.attn.{q}_conv"] = f"{b}.attn.shortcut_lif"  # MS shortcut: spikes, not membrane
        feeders[f"{b}.mlp.fc1_conv"] = f"{b}.mlp.fc1_lif"
        feeders[f"{b}.mlp.fc2_conv"] = f"{b}.mlp.fc2_lif"
        if name.startswith("statten"):
            feeders[f"{b}.attn.proj_conv"] = f"{b}.attn.attn_lif"
    return feeders


@pytest.mark.parametrize("name", ["sdt_cifar_t4", "statten_cifar_t4_b2"])
def test_conv_input_rates_equal_official_lif_rates(name):
    model = load_checkpoint(official_checkpoint(name))
    expected = official_expected(name)
    rates = measure_rates(model, expected["inputs"])
    official = expected["lif_module_rates"]
    feeders = _feeders(name, model.config.depth)
    for layer, lif in feeders.items():
        assert len(rates.rates[layer]) == model.config.timesteps
        assert rates.mean(layer) == pytest.approx(official[lif], abs=1e-6), f"{layer} fed by {lif}"
    for i in range(model.config.depth):
        for q in ("q_lif", "k_lif", "v_lif"):
            key = f"block.{i}.attn.{q}"
            assert rates.mean(key) == pytest.approx(official[key], abs=1e-6), key


@pytest.mark.parametrize("name", ["sdt_cifar_t4", "statten_cifar_t4_b2"])
def test_every_rate_key_is_measured_and_spike_rates_lie_in_unit_interval(name):
    model = load_checkpoint(official_checkpoint(name))
    rates = measure_rates(model, official_expected(name)["inputs"])
    assert set(rates.rates) == set(rate_keys(model))
    # CIFAR models feed every non-first layer binary spikes (maxpooled or not), so rates are fractions.
    assert all(0.0 <= r <= 1.0 for v in rates.rates.values() for r in v)


def test_first_conv_is_analog_and_carries_no_rate():
    model = load_checkpoint(official_checkpoint("statten_cifar_t4_b2"))
    geometry = {g.name: g for g in layer_geometry(model)}
    assert geometry["patch_embed.proj_conv"].analog and geometry["patch_embed.proj_conv"].steps == 4
    assert "patch_embed.proj_conv" not in rate_keys(model)
    assert not any(g.analog for n, g in geometry.items() if n != "patch_embed.proj_conv")


@pytest.mark.parametrize("timesteps", [4, 1])
def test_spikformer_head_sees_a_time_average_so_runs_once_as_mac(timesteps):
    """``head(mean_T(mean_N(x)))`` reads real values at any T. At T = 1 the shapes do not show the time
    mean, and the head was charged E_AC per input event (and asked for a rate) as if fed spikes."""
    model = load_checkpoint(official_checkpoint("spikformer_cifar_t4"), timesteps=timesteps)
    head = {g.name: g for g in layer_geometry(model)}["head"]
    assert head.analog and head.steps == 1 and head.flops == 64 * 10
    assert "head" not in rate_keys(model)


@pytest.mark.parametrize("name", ["statten_cifar_t4_b2", "spikformer_cifar_t4"])
def test_measured_rates_round_trip_through_a_profile(tmp_path, name):
    """Spikformer's residual stream sums spike tensors, so its input rates pass 1 (the module
    docstring says they may): its profile was refused when read back."""
    import json

    from statten_hw.energy import paper_energy

    model = load_checkpoint(official_checkpoint(name))
    measured = measure_rates(model, official_expected(name)["inputs"])
    if name.startswith("spikformer"):
        assert max(max(v) for v in measured.rates.values()) > 1
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(measured.to_profile()))
    loaded = load_rate_profile(path, model)
    assert dict(loaded.rates) == dict(measured.rates)
    assert paper_energy(model, loaded).total_j == paper_energy(model, measured).total_j
