"""The embedded model on Lava: bit-exact with the integer reference, and its report.json."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from statten_hw.quant import run_integer
from statten_hw.reports.files import write_json
from statten_hw.reports.schema import STATIC_TOTALS, TOTAL_FIELDS
from statten_hw.simulator.lava import _compat

pytestmark = [pytest.mark.lava,
              pytest.mark.skipif(not _compat.HAS_LAVA, reason=f"lava-nc not importable: {_compat.LAVA_IMPORT_ERROR!r}")]


@pytest.fixture(scope="module")
def embedded():
    """The embedded STAtten digits model on loihi2, two test samples, one sample per Lava run."""
    from statten_hw.data import load_dataset
    from statten_hw.pipeline import prepare
    from statten_hw.simulator.lava.report import lava_report
    from statten_hw.simulator.lava.run import run_lava

    deployment = prepare(None, "loihi2")
    x = load_dataset(deployment.dataset, split="test")[0][:2]
    run = run_lava(deployment.qgraph, x, samples_per_run=1)
    reference = run_integer(deployment.qgraph, x)
    return deployment, x, run, reference, lava_report(deployment, run, reference)


def test_the_report_says_every_layer_equals_the_integer_reference(embedded):
    deployment, _, run, reference, doc = embedded
    lifs = deployment.qgraph.lif_nodes
    assert doc["lava"]["integer_reference"] == {"layers_compared": len(lifs), "layers_equal": len(lifs),
                                                "layers_differing": [], "logits_equal": True,
                                                "reference_saturated": 0, "lava_wrapped_sums": 0}


def test_the_report_names_a_layer_that_differs(embedded):
    """A run with one spike of one layer removed: that layer, and only it, is named."""
    from dataclasses import replace

    from statten_hw.simulator.lava.report import agreement

    deployment, _, run, reference, _ = embedded
    victim = deployment.qgraph.lif_nodes[3]
    spikes = run.spikes[victim].copy()
    spikes.reshape(-1)[np.flatnonzero(spikes)[0]] = 0
    doctored = replace(run, spikes={**run.spikes, victim: spikes})
    check = agreement(doctored, reference, deployment.qgraph)
    assert check["layers_differing"] == [victim] and check["layers_equal"] == check["layers_compared"] - 1
    assert check["logits_equal"]  # the logits were left alone


def test_embedded_model_is_bit_exact(embedded):
    deployment, x, run, ref, _ = embedded
    assert not any(ref.overflows.values())
    assert set(run.spikes) == set(deployment.qgraph.lif_nodes)
    for node in deployment.qgraph.lif_nodes:
        np.testing.assert_array_equal(run.spikes[node], ref.values[node].numpy(), err_msg=node)
    np.testing.assert_array_equal(run.logits_int, ref.logits_int.numpy())
    assert all(ref.values[n].any() for n in deployment.qgraph.lif_nodes)
    assert run.steps == 2 * run.window


def test_report_fills_what_lava_measures_and_leaves_the_rest_null(embedded, tmp_path):
    deployment, x, run, ref, doc = embedded
    assert (doc["command"], doc["backend"], doc["target"]) == ("simulate", "lava", "loihi2")
    assert set(doc["totals"]) == set(TOTAL_FIELDS)
    # Measured: the spikes; the mapping's static totals as every backend's report gives them.
    assert {k for k, v in doc["totals"].items() if v is not None} == {"spikes", *STATIC_TOTALS}
    assert all(doc["totals"][f] == getattr(deployment.mapping.totals, f) for f in STATIC_TOTALS)
    T, samples = deployment.model.config.timesteps, 2
    for row in doc["layers"]:
        assert row["sops"] is None and row["energy_j"] is None
        if row["kind"] == "readout":
            assert row["spikes"] is None
            continue
        spikes = int((ref.values[row["name"]] != 0).sum())  # counted from the integer reference
        assert row["spikes"] == spikes
        assert row["firing_rate"] == pytest.approx(spikes / (row["neurons"] * T * samples))
    assert doc["totals"]["spikes"] == sum(r["spikes"] or 0 for r in doc["layers"])
    assert sum(c["spikes_out"] for c in doc["cores"]) == doc["totals"]["spikes"]
    assert all(c["sops"] is None and c["energy_j"] is None for c in doc["cores"])
    write_json(tmp_path / "report.json", doc)  # plain JSON, no NaN
    assert json.loads((tmp_path / "report.json").read_text())["lava"]["steps"] == run.steps


def test_every_lava_process_is_placed_on_its_layers_cores(embedded):
    deployment, _, run, _, doc = embedded
    cores = {r.name: set(r.cores) for r in deployment.mapping.layers}
    rows = {p["name"]: p for p in doc["lava"]["processes"]}
    assert len(rows) == len(run.processes)
    lif = rows["block.0.attn.q_lif"]
    assert (lif["lava_class"], lif["layers"], set(lif["cores"])) == ("LIFReset", ["block.0.attn.q_lif"],
                                                                     cores["block.0.attn.q_lif"])
    assert lif["spikes"] == next(r["spikes"] for r in doc["layers"] if r["name"] == "block.0.attn.q_lif")
    conv = rows["block.0.attn.q_conv"]  # a synapse runs where the neurons it feeds are
    assert (conv["lava_class"], conv["layers"], conv["spikes"]) == ("Conv", ["block.0.attn.q_lif"], None)
    assert rows["block.0.attn.attention"]["layers"] == ["block.0.attn.attn_lif"]
    assert rows["patch_embed.maxpool3"]["layers"] == ["patch_embed.proj_lif3"]
    assert rows["head.time_mean"]["layers"] == ["head"]
    assert rows["input"]["cores"] is None  # the host
    assert all(set(p["cores"] or ()) <= {c.id for c in deployment.mapping.cores} for p in rows.values())


def test_lava_and_the_event_simulator_agree_on_every_field_both_measure(embedded):
    from statten_hw.reports.diff import diff_reports
    from statten_hw.simulator import simulate

    deployment, x, _, _, doc = embedded
    event = simulate(deployment, x, engine="fast").report
    diffs = diff_reports(event, doc)
    assert [d for d in diffs if d.kind not in ("null_in_b",)] == []
    assert any(d.field == "energy_j" for d in diffs)  # what only the event simulator models


def test_a_run_where_the_reference_saturates_says_so():
    """Lava wraps 24-bit synaptic sums where the contract saturates them (a stated limit): a network
    calibrated on faint input and run at full scale saturates `fc1`, and the check names the count,
    so `simulate` can say why the layers differ instead of calling it a defect."""
    from statten_hw.ir import nodes as ir
    from statten_hw.ir.graph import add_op, new_graph
    from statten_hw.ir.passes.infer_shapes import infer_shapes
    from statten_hw.quant import quantize
    from statten_hw.simulator.lava.report import agreement
    from statten_hw.simulator.lava.run import run_lava

    rng = np.random.default_rng(0)
    g = new_graph()
    add_op(g, "input", ir.Input(shape=(64,), timesteps=2), "")
    w = rng.normal(size=(4, 64)).astype(np.float32)
    add_op(g, "fc1", ir.Linear(weight=w, bias=np.zeros(4, np.float32)), "", x="input")
    add_op(g, "lif", ir.LIF(threshold=0.5), "", x="fc1")
    add_op(g, "head", ir.Linear(weight=rng.normal(size=(3, 4)).astype(np.float32)), "", x="lif")
    add_op(g, "time_mean", ir.Mean(time=True), "", x="head")
    add_op(g, "output", ir.Output(), "", x="time_mean")
    infer_shapes(g)
    faint = torch.zeros(4, 64)
    faint[0, 0], faint[1, 1] = 0.5, -0.5
    qg = quantize(g, faint)
    x = torch.from_numpy(0.5 * np.sign(w[:2]))
    reference = run_integer(qg, x)
    check = agreement(run_lava(qg, x), reference, qg)
    assert check["reference_saturated"] == sum(reference.overflows.values()) > 0


def test_a_sum_its_bias_brings_back_into_the_state_is_wrapped_by_lava_and_counted():
    """Review finding: Lava adds a synapse's bias after its 24-bit wrap, so a bias-free sum beyond 2^23
    that a negative bias brings back in range differs, with nothing saturated. The count of such sums
    is worked out here from the input levels and the integer weights."""
    from statten_hw.ir import nodes as ir
    from statten_hw.ir.graph import add_op, new_graph
    from statten_hw.ir.passes.infer_shapes import infer_shapes
    from statten_hw.quant import quantize
    from statten_hw.quant.execute import input_levels
    from statten_hw.simulator.lava.report import agreement
    from statten_hw.simulator.lava.run import run_lava

    n = 64
    w = np.full((2, n), 0.01, np.float32)
    w[0, 1:] = 1.0
    g = new_graph()
    add_op(g, "input", ir.Input(shape=(n,), timesteps=2), "")
    add_op(g, "fc", ir.Linear(weight=w, bias=np.array([-0.25, 0.0], np.float32)), "", x="input")
    add_op(g, "lif", ir.LIF(threshold=0.5), "", x="fc")
    add_op(g, "time_mean", ir.Mean(time=True), "", x="lif")
    add_op(g, "output", ir.Output(), "", x="time_mean")
    infer_shapes(g)
    calibration = torch.zeros(2, n)
    calibration[1, 0] = 0.5
    qg = quantize(g, calibration)
    x = torch.full((1, n), 17 * 0.5 / 255)
    reference = run_integer(qg, x)
    op = qg.qop("fc")
    sums = input_levels(qg.qop("input"), x).numpy() @ op.weight.astype(np.int64).T  # bias-free, per step
    expected = 2 * int((np.abs(sums) > (1 << 23) - 1).sum())  # the input repeats over T = 2 steps
    check = agreement(run_lava(qg, x), reference, qg)
    assert check["reference_saturated"] == 0 and expected > 0 and check["lava_wrapped_sums"] == expected
    assert check["layers_differing"] == ["lif"]


def test_a_residual_stream_two_layers_read_belongs_to_the_layer_whose_cores_compute_it():
    """With an MLP as wide as its input, fc2_lif's dendrite reads the residual stream that fc1_lif's
    computes; the event simulator sends it from fc1_lif's cores (`dendrite_arrivals`), so its process
    is on fc1_lif's cores only, and the sum fc2_lif adds it into is fc2_lif's."""
    import sys
    from pathlib import Path

    sys.path[:0] = [str(Path(__file__).parents[2] / "ir"), str(Path(__file__).parents[1] / "event")]
    from sim_nets import small_deployment
    from statten_hw.simulator.event.network import dendrite_arrivals
    from statten_hw.simulator.lava.report import node_layers

    d = small_deployment("statten_mlp_res")
    owners = node_layers(d.qgraph, {r.name for r in d.mapping.layers}, dendrite_arrivals(d.qgraph, d.mapping))
    assert owners["block.0.attn.residual"] == {"block.0.mlp.fc1_lif"}
    assert owners["block.0.mlp.hidden_residual"] == {"block.0.mlp.fc2_lif"}
    assert dendrite_arrivals(d.qgraph, d.mapping) == d.event_network.arrivals
