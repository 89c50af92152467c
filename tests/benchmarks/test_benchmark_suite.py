"""The benchmark suite's own machinery: memory measurement, targets, checkpoints, fits and the GPU script.

No timings are asserted (they depend on the machine); what is checked is that each tool measures the
thing it claims to, against values known independently.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
from sdt_model import calibrate, images, qkv_rate, save_checkpoint, sdt_8_768, shift_for_rate  # noqa: E402

from statten_hw.energy.rates import measure_rates  # noqa: E402
from statten_hw.models import ModelConfig, build_model, load_checkpoint  # noqa: E402
from statten_hw.models.lif import MultiStepLIF  # noqa: E402
from statten_hw.targets import load_target  # noqa: E402

TINY = ModelConfig(family="statten", attention="STAtten", depth=1, dim=16, heads=2, timesteps=4, block_size=2,
                   img_size=8, in_channels=3, num_classes=5, pooling_stat="0001")
#: Deep enough for a residual stream to drift, small enough to calibrate in a second.
DEEP = ModelConfig(family="statten", attention="STAtten", depth=6, dim=32, heads=2, timesteps=4, block_size=2,
                   img_size=16, in_channels=3, num_classes=5, pooling_stat="0011")
ALLOCATE = ("import sys; sys.path.insert(0, sys.argv[2]); import harness; b = bytearray(int(sys.argv[1]) << 20); "
            "b[::4096] = b'x' * len(b[::4096]); print(harness.peak_rss_bytes())")


def test_a_childs_peak_memory_is_its_own_not_its_parents():
    """Two children started from this (large) test process, one allocating 300 MiB more than the
    other: their reported peaks must differ by about that, so neither carries the parent's memory
    (``ru_maxrss`` would: it counts the parent's pages at fork)."""
    peaks = [int(harness.run_child(["-c", ALLOCATE, str(mib), str(BENCH)])["stdout"]) for mib in (320, 20)]
    assert (300 << 20) * 0.9 <= peaks[0] - peaks[1] <= (300 << 20) * 1.2
    assert peaks[1] < harness.peak_rss_bytes() + (100 << 20)


def test_a_child_past_its_timeout_is_stopped():
    out = harness.run_child(["-c", "import time; print('started', flush=True); time.sleep(60)"], timeout_s=3)
    assert out["timed_out"] and out["returncode"] is None and out["wall_s"] < 30


def test_peak_memory_sees_a_temporary_allocation():
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("no /proc/self/clear_refs (not Linux)")
    with harness.PeakMemory() as mem:
        t = torch.ones(50 << 20, dtype=torch.int16)  # 100 MiB, touched
        del t
    assert (100 << 20) * 0.9 <= mem.extra < (100 << 20) * 2


def test_paired_interleaves_and_ratio_is_per_repeat():
    calls = []
    timings = harness.paired({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert all(len(t["wall_s"]) == 3 for t in timings.values())
    fake = {"a": {"wall_s": [2.0, 6.0, 3.0], "median_cpu_s": 1.0}, "b": {"wall_s": [1.0, 2.0, 3.0], "median_cpu_s": 4.0}}
    r = harness.ratio(fake, "a", "b")
    assert r["per_repeat"] == [2.0, 3.0, 1.0] and r["median"] == 2.0 and r["cpu_ratio_of_medians"] == 0.25


def test_axons_target_is_loihi2_with_only_fan_in_and_fan_out_raised():
    builtin, bench = load_target("loihi2"), load_target(BENCH / "loihi2_axons8k.toml")
    # SDT-8-768 needs 6912 (proj_lif2: 768 x 3 x 3 targets) and 6913 (shortcut LIF: 768 x 3 x 3 + 1 sources)
    assert bench.core.fan_out == bench.core.fan_in == 8192 > 6913 > builtin.core.fan_out == builtin.core.fan_in
    same_core = dataclasses.replace(bench.core, fan_out=builtin.core.fan_out, fan_in=builtin.core.fan_in)
    assert dataclasses.replace(bench, core=same_core, name=builtin.name, description=builtin.description) == builtin


def test_saved_checkpoint_loads_back_as_the_same_model(tmp_path):
    model = sdt_8_768(TINY, calibration_images=2)
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "tiny.pth"))
    assert loaded.config == TINY
    x = images(2, TINY, seed=5)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def _lif_outputs(config: ModelConfig, rates) -> dict[str, float]:
    """Each calibrated LIF's firing rate, read where the energy model reads it: at the conv that takes its
    spikes (with ``pooling_stat`` "0011" no pool lies between them) or at q, k, v themselves."""
    readers = {"patch_embed.proj_conv1": "proj_lif", "patch_embed.proj_conv2": "proj_lif1",
               "patch_embed.rpe_conv": "proj_lif3", "head": "head_lif"}
    for i in range(config.depth):
        readers.update({f"block.{i}.attn.q_conv": f"block.{i}.shortcut_lif", f"block.{i}.mlp.fc1_conv": f"block.{i}.fc1_lif",
                        f"block.{i}.mlp.fc2_conv": f"block.{i}.fc2_lif"})
        readers.update({f"block.{i}.attn.{n}_lif": f"block.{i}.{n}_lif" for n in "qkv"})
    return {lif: rates.mean(key) for key, lif in readers.items()}


def test_calibration_makes_each_lif_fire_at_its_rate_as_the_energy_model_measures_it():
    """`calibrate` sets the BatchNorms so that, on the calibration images, every LIF after a BatchNorm or on
    the residual stream fires ``rate`` and q, k, v fire ``qkv`` (two different rates, so a LIF routed to
    the wrong target shows); measured by the library's own `measure_rates` on the calibrated eval model.
    The pass adds each shift after the BatchNorm, the model inside it: one rounding apart, which flips a
    few spikes near the threshold, and the network carries them on, so the rates agree to about 1 %."""
    torch.manual_seed(0)
    x = images(4, DEEP, seed=1)
    model = calibrate(build_model(DEEP), x, rate=0.2, qkv=0.08)
    measured = _lif_outputs(DEEP, measure_rates(model, x))
    for lif, rate in measured.items():
        want = 0.08 if lif.endswith(("q_lif", "k_lif", "v_lif")) else 0.2
        if lif != "head_lif":  # 4 images give each of its channels only 0, 1/4, ... of a rate
            assert abs(rate - want) < 0.015, (lif, rate)


def test_a_calibrated_residual_stream_does_not_drift_into_saturation_with_depth():
    """On images it was not calibrated on, the LIFs reading the membrane stream fire near the default
    rate in the last block as in the first (a stream that drifts up with depth drives them to fire at
    almost every step: 89 % in SDT-8-768's fixed-shift calibration)."""
    model = sdt_8_768(DEEP, calibration_images=4)
    measured = _lif_outputs(DEEP, measure_rates(model, images(4, DEEP, seed=11)))
    for i in (0, DEEP.depth - 1):
        for lif in (f"block.{i}.shortcut_lif", f"block.{i}.fc1_lif"):
            assert 0.1 < measured[lif] < 0.2, (lif, measured[lif])
    assert all(0.02 < measured[f"block.{i}.{n}_lif"] < 2 * qkv_rate(DEEP) for i in range(DEEP.depth) for n in "qkv")


def test_a_channels_shift_is_the_smallest_that_reaches_the_rate():
    """Per channel, the LIF fires at least the rate at the shift and less just below it (the official LIF
    run independently on the shifted values; channels of different scales and signs)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 5, 6, 6, generator=gen) * torch.tensor([0.1, 1.0, 5.0, 20.0, 1.0]).view(1, 1, 5, 1, 1)
    x[:, :, 4] -= 50
    shift = shift_for_rate(x, 0.3)

    def rate(s):
        return MultiStepLIF()(x + s.view(1, 1, 5, 1, 1)).mean((0, 1, 3, 4))

    span = x.abs().amax() + 2
    assert (rate(shift) >= 0.3).all() and (rate(shift - span * 2.0**-20) < 0.3).all()


def test_linear_fit_recovers_a_known_line():
    from scaling import fit

    x = [0.0, 10.0, 20.0, 40.0]
    f = fit(x, [0.5 + 0.25 * v for v in x])
    assert f["intercept_s"] == pytest.approx(0.5) and f["slope_s_per_event"] == pytest.approx(0.25)
    assert f["r2"] == pytest.approx(1.0)
    assert fit(x, [1.0, 3.0, 0.0, 2.0])["r2"] < 0.5  # no line through scattered points


def test_gpu_script_runs_on_the_cpu_with_the_small_network(tmp_path):
    """The GPU benchmark's code path, on the CPU: both sides must agree bit for bit."""
    from gpu_sdt import main

    out = tmp_path / "gpu.json"
    assert main(["--device", "cpu", "--small", "--batch", "2", "--repeats", "1", "--cpu-repeats", "1",
                 "--threads", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["agreement"] == {"spikes_equal": True, "logits_equal": True, "count_fields_differing": []}
    assert doc["device_batch_n"]["batch"] == 2 and doc["cpu"]["images_per_s"] > 0
    assert doc["model"]["dim"] == 32 and doc["machine"]["torch"] == torch.__version__
    assert np.isfinite(doc["speedup_images_per_s"])


def test_cuda_call_floor_runs_on_the_cpu(tmp_path):
    """The CUDA per-call benchmark's code path, on the CPU: it times, and CPU equals CPU."""
    from cuda_call_floor import main

    doc = main(["--device", "cpu", "--batches", "1", "--repeats", "1", "--results", str(tmp_path)])
    assert doc["rows"][0]["equal_to_cpu"] and doc["rows"][0]["ms_per_call"] > 0
    assert (tmp_path / "cuda_call_floor.json").is_file()


@pytest.mark.parametrize("kernel, stride, padding", [(1, 1, 0), (3, 1, 1), (3, 2, 1), (5, 2, 0), (2, 3, 1)])
def test_event_driven_conv_sums_equal_torchs_conv(kernel, stride, padding):
    """The event-driven kernel `event_kernels.py` times against the dense one: each non-zero input adds
    its weights to the outputs it reaches. On sparse integer inputs (spikes and graded values, some
    rows silent) it must give torch's conv2d sums exactly, at every stride and padding."""
    from event_kernels import event_sums

    gen = torch.Generator().manual_seed(kernel * 10 + stride)
    x = torch.randint(-3, 4, (3, 5, 9, 11), generator=gen).float() * (torch.rand(3, 5, 9, 11, generator=gen) < 0.2)
    x[1] = 0  # a step with no events at all
    weight = torch.randint(-128, 128, (7, 5, kernel, kernel), generator=gen).float()
    want = torch.nn.functional.conv2d(x, weight, stride=stride, padding=padding)
    matrix = weight.permute(1, 2, 3, 0).reshape(-1, 7).contiguous()
    assert torch.equal(event_sums(x, matrix, kernel, stride, padding, want.shape[-2:]), want)


@pytest.mark.parametrize("change, problem", [
    ({"family": "spikformer", "attention": "SSA"}, "SDT/STAtten networks"),
    ({"mlp_ratio": 1}, "MLP is wider than its input")])
def test_calibration_refuses_networks_it_was_not_built_for(change, problem):
    """Its shift points assume SDT's hidden MLP LIF, its q/k/v rate STAtten's product: another network
    is refused, not calibrated to rates nobody measured."""
    config = dataclasses.replace(DEEP, depth=1, **change)
    with pytest.raises(ValueError, match=problem):
        calibrate(build_model(config), images(1, config, seed=0), 0.15, 0.05)


def test_the_qkv_rate_is_only_sized_for_statten():
    with pytest.raises(ValueError, match="sized for STAtten's block-wise attention, not SDSA"):
        qkv_rate(dataclasses.replace(DEEP, attention="SDSA"))
