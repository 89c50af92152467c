"""The simulator on real checkpoints: the embedded digits model and the official fixtures."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import OFFICIAL, official_checkpoint, official_expected
from statten_hw.cli import main
from statten_hw.data import load_dataset
from statten_hw.ir import lower
from statten_hw.mapping import map_model
from statten_hw.models import load_checkpoint
from statten_hw.pipeline import Deployment, prepare
from statten_hw.quant import quantize, run_integer
from statten_hw.simulator import simulate


def test_embedded_model_engines_match_the_reference():
    d = prepare(None, "loihi2")
    x, y = load_dataset(d.dataset, "test")
    fast = simulate(d, x[:3], engine="fast", labels=y[:3])
    detailed = simulate(d, x[:3], engine="detailed")
    ref = run_integer(d.qgraph, x[:3])
    assert torch.equal(fast.logits_int, ref.logits_int) and torch.equal(detailed.logits_int, ref.logits_int)
    for layer, spikes in ref.spikes(d.qgraph).items():
        if layer in detailed.spikes:
            assert torch.equal(detailed.spikes[layer], spikes), layer
    assert fast.counts.equal(detailed.counts) == []
    assert fast.report["simulation"]["accuracy"] == float((ref.predictions == y[:3]).double().mean())


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_fixtures_fast_engine_is_bit_exact(name):
    model = load_checkpoint(official_checkpoint(name))
    cfg = model.config
    x = torch.randn(2, *cfg.input_shape, generator=torch.Generator().manual_seed(4))
    if cfg.dvs:
        x = x.abs().round()
    qgraph = quantize(lower(model), x, weight_bits=8)
    d = Deployment(official_checkpoint(name), model, qgraph, map_model(qgraph.float_graph, "paper45nm",
                                                                       cfg.block_size), "random")
    sim = simulate(d, x, engine="fast")
    ref = run_integer(qgraph, x)
    assert torch.equal(sim.logits_int, ref.logits_int)
    for layer, spikes in ref.spikes(qgraph).items():
        if layer in sim.spikes:
            assert torch.equal(sim.spikes[layer], spikes), layer


def test_simulate_cli_writes_a_complete_deterministic_report(tmp_path):
    args = ["simulate", "--samples", "4", "--target", "layerwise"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    for f in ("report.json", "report.md", "report.html", "cores.csv", "layers.csv"):
        assert (tmp_path / "a" / f).stat().st_size > 0
    assert (tmp_path / "a" / "report.json").read_bytes() == (tmp_path / "b" / "report.json").read_bytes()
    doc = json.loads((tmp_path / "a" / "report.json").read_text())
    assert doc["command"] == "simulate" and doc["backend"] == "event" and doc["simulation"]["samples"] == 4


@pytest.mark.parametrize("bad, message", [
    (["--engine", "warp"], "--engine"), (["--samples", "0"], "--samples"),
    (["--device", "tpu"], "--device"), (["--backend", "nest"], "--backend"),
    # accepted and ignored before (the report named a device the run did not use)
    (["--engine", "detailed", "--device", "cuda"], "--device 'cuda': the detailed engine runs on the CPU"),
    (["--engine", "detailed", "--device", "bogus"], "--device 'bogus'"),
    (["--backend", "sanafe", "--target", "sanafe:loihi", "--engine", "detailed"],
     "--engine applies to the event backend (--backend event), not to sanafe"),
    (["--backend", "lava", "--engine", "fast", "--device", "cuda"], "--engine and --device apply to the event backend"),
    (["--sanafe-timing", "simple"], "--sanafe-timing applies to --backend sanafe, not to event")])
def test_simulate_cli_bad_options_fail_in_one_line(bad, message, tmp_path, capsys):
    assert main(["simulate", "--samples", "1", *bad, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "report.json").exists()


def test_sdsa_attention_output_arrives_as_spikes():
    """SDT v1's SDSA attention outputs q ⊙ the spikes of its K⊙V neurons: binary. Its events into the
    projection conv were counted as multiply-accumulates, as if graded; they are accumulates: fc1_lif's
    SOPs (proj_conv, 1x1, is its synapse) are the attention's spikes times dim, plus one accumulate per
    non-zero value of the residual stream its dendrite adds (the block's input: the patch embedding's sum,
    then the previous block's), all from the integer run, and none is a MAC."""
    name = "sdt_cifar_t4"
    model = load_checkpoint(official_checkpoint(name)).eval()
    x = official_expected(name)["inputs"][:2]
    qgraph = quantize(lower(model), x)
    d = Deployment(official_checkpoint(name), model, qgraph, map_model(qgraph.float_graph, "paper45nm",
                                                                       model.config.block_size), "fixture")
    sim = simulate(d, x)
    values = run_integer(qgraph, x).values
    for block in range(model.config.depth):
        attention = values[f"block.{block}.attn.attention"]
        assert set(attention.unique().tolist()) == {0, 1}  # spikes, and some of them
        li = sim.counts.layers.index(f"block.{block}.mlp.fc1_lif")
        stream = values["patch_embed.rpe_add" if block == 0 else f"block.{block - 1}.mlp.residual"]
        assert sim.counts["sops"][li].sum() == int(attention.sum()) * model.config.dim + int((stream != 0).sum())
        assert sim.counts["macs"][li].sum() == 0
