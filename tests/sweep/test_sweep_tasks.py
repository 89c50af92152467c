"""The work of one configuration, run in-process (statten_hw/sweep/tasks.py)."""
from __future__ import annotations

import pytest

from statten_hw.data import load_dataset
from statten_hw.quant import run_integer
from statten_hw.simulator import simulate
from statten_hw.sweep.config import plan
from statten_hw.sweep.tasks import (SIMULATED_TOTALS, TaskError, combine, evaluate_shard, prepare_configuration,
                                    shard_ranges)
from sweep_fixtures import tiny  # noqa: F401 (pytest fixtures)


def test_shard_ranges_cover_every_sample_once():
    assert shard_ranges(24, 10) == [(0, 10), (10, 20), (20, 24)]
    assert shard_ranges(5, 128) == [(0, 5)]
    assert shard_ranges(6, 3) == [(0, 3), (3, 6)]


@pytest.fixture(scope="module")
def config(tiny):
    ckpt, data = tiny
    return plan([str(ckpt)], "4", ["loihi2"], [8], samples=12, dataset=str(data), calibration_samples=8)[0]


def test_shards_add_up_to_one_run_on_the_whole_batch(config):
    deployment = prepare_configuration(config)
    record = combine(config, deployment, *(evaluate_shard(deployment, config, a, b) for a, b in shard_ranges(12, 5)))
    # The reference: the integer executor and the simulator, each run once on all 12 samples.
    x, y = load_dataset(config.dataset, split="test")
    x, y = x[:12], y[:12]
    whole = simulate(deployment, x)
    correct = int((run_integer(deployment.qgraph, x).predictions == y).sum())
    assert record["status"] == "ok" and record["backend"] == "event"
    assert (record["n"], record["correct"], record["accuracy"]) == (12, correct, correct / 12)
    assert record["simulation_agreeing"] == 12
    for field in ("spikes", "sops", "neuron_updates"):
        assert record["totals"][field] == whole.report["totals"][field]
    for field in ("cycles", "latency_s", "energy_j"):
        assert record["totals"][field] == pytest.approx(whole.report["totals"][field], rel=1e-12)
    assert record["per_inference"]["energy_j"] == pytest.approx(
        whole.report["simulation"]["per_inference"]["energy_j"], rel=1e-12)
    m = deployment.mapping
    assert record["totals"]["cores"] == m.totals.cores
    assert record["memory_bytes"] == m.totals.synapse_bytes + m.totals.state_bytes + m.totals.buffer_bytes
    assert record["latency_steps"] == m.schedule.latency_steps
    assert record["model"]["timesteps"] == 4 and record["block_size"] == 4


def test_without_simulation_dynamic_figures_stay_null(tiny):
    ckpt, data = tiny
    config = plan([str(ckpt)], "2", ["layerwise"], [8], dataset=str(data), calibration_samples=8, engine="none")[0]
    deployment = prepare_configuration(config)
    record = combine(config, deployment, evaluate_shard(deployment, config, 0, 6))
    assert record["backend"] == "none" and record["n"] == 6
    assert all(record["totals"][f] is None for f in SIMULATED_TOTALS)
    assert all(v is None for v in record["per_inference"].values())
    assert record["simulation_agreeing"] is None
    assert record["totals"]["cores"] == deployment.mapping.totals.cores


def test_a_network_that_does_not_fit_is_a_stored_error(tiny, tmp_path):
    from importlib import resources

    toml = resources.files("statten_hw.targets").joinpath("builtin", "loihi2.toml").read_text()
    narrow = tmp_path / "narrow.toml"
    narrow.write_text(toml.replace("\nfan_in = 4096 ", "\nfan_in = 8 "))
    ckpt, data = tiny
    config = plan([str(ckpt)], "2", [str(narrow)], [8], dataset=str(data), calibration_samples=8)[0]
    deployment = prepare_configuration(config)
    assert isinstance(deployment, TaskError)
    assert evaluate_shard(deployment, config, 0, 24) is deployment
    record = combine(config, deployment, deployment)
    assert record["status"] == "error" and record["accuracy"] is None and record["totals"] is None
    # The first conv is 3x3 over 3 input channels: 27 inputs per neuron.
    assert record["error"] == "layer 'patch_embed.proj_lif' does not fit: fan-in per neuron needs 27, limit is 8"


def test_records_keep_the_options(config):
    record = combine(config, TaskError("x"))
    assert {k: record[k] for k in ("key", "checkpoint", "target", "block_size", "bits", "precision", "samples",
                                   "engine")} == {
        "key": config.key, "checkpoint": config.checkpoint, "target": "loihi2", "block_size": 4, "bits": 8,
        "precision": "graph", "samples": 12, "engine": "fast"}


def test_a_configuration_quantized_for_its_target_carries_the_targets_formats(tiny):
    """--precision target reaches the worker: layerwise's 16-bit state and exponent-free weights."""
    ckpt, data = tiny
    config = plan([str(ckpt)], "4", ["layerwise"], [8], samples=12, dataset=str(data), calibration_samples=8,
                  precisions=("target",))[0]
    deployment = prepare_configuration(config)
    assert deployment.precision == "target" and deployment.qgraph.state_bits == 16
    assert all(op.weight_exp == 0 for op in map(deployment.qgraph.qop, deployment.qgraph.graph)
               if hasattr(op, "weight_exp"))
    assert combine(config, TaskError("x"))["precision"] == "target"
