"""The command line end to end: export writes loadable files; bad options exit 2 with one line."""
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import official_checkpoint, official_expected
from statten_hw import load_checkpoint
from statten_hw.cli import main
from statten_hw.ir import load_graph, run_float


def test_export_writes_graph_and_onnx_that_reproduce_the_model(tmp_path):
    ckpt = official_checkpoint("sdt_cifar_t4")
    expected = official_expected("sdt_cifar_t4")
    batch = len(expected["inputs"])
    assert main(["export", str(ckpt), "-o", str(tmp_path), "--batch", str(batch), "--format", "ir,onnx-float"]) == 0
    graph = load_graph(tmp_path / "sdt_cifar_t4")
    with torch.no_grad():
        assert torch.equal(run_float(graph, expected["inputs"]), expected["logits"])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(tmp_path / "sdt_cifar_t4.float.onnx"), options, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": expected["inputs"].numpy()})
    assert np.abs(logits - expected["logits"].numpy()).max() <= 1e-5


def test_export_prints_its_summary(tmp_path, capsys):
    """Nodes, parameters, bits, files and float-vs-integer accuracy, each derived here independently."""
    from statten_hw.data import load_dataset
    from statten_hw.defaults import default_checkpoint
    from statten_hw.evaluate import accuracy
    from statten_hw.ir import lower
    from statten_hw.quant import quantize, run_integer

    assert main(["export", "--format", "ir,onnx", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    model = load_checkpoint(default_checkpoint()).eval()
    graph = lower(model)
    calib, _ = load_dataset("digits", split="train")
    x, y = load_dataset("digits", split="test")
    logits = run_integer(quantize(graph, calib[:256]), x).logits_int
    integer = float((logits.argmax(-1) == y).double().mean())
    assert (f"integer network (8-bit weights): accuracy float {100 * accuracy(model, x, y):.2f} % vs "
            f"integer {100 * integer:.2f} % on {len(y)} digits test samples") in out
    params = sum(p.numel() for p in model.parameters())
    assert f"{params:,} parameters, deployment graph of {graph.number_of_nodes()} nodes" in out
    for name in ("digits_statten.json", "digits_statten.npz", "digits_statten.int.onnx"):
        assert str(tmp_path / name) in out and (tmp_path / name).is_file()


def test_export_unknown_format(tmp_path, capsys):
    assert main(["export", "--format", "vhdl", "-o", str(tmp_path)]) == 2
    assert "unknown export format" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["-1", "17"])
def test_export_fraction_bits_out_of_range(value, tmp_path, capsys):
    assert main(["export", "--fraction-bits", value, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--fraction-bits {value}: fraction_bits must be an int in 0..16, got {value}" in err
    assert not any(tmp_path.iterdir())


def test_export_writes_nothing_when_calibration_data_does_not_fit(tmp_path, capsys):
    # The CIFAR-shaped fixture cannot be calibrated on 8x8 digits: refused before any file is written.
    out = tmp_path / "out"
    assert main(["export", str(official_checkpoint("sdt_cifar_t4")), "-o", str(out)]) == 2
    assert "the model takes [3, 32, 32]" in capsys.readouterr().err
    assert not out.exists()


def test_export_never_writes_over_its_own_input(tmp_path, capsys):
    """``-o .`` beside a data file named like the checkpoint: the graph's .npz would replace it."""
    import shutil

    from statten_hw.data import load_dataset
    from statten_hw.defaults import default_checkpoint

    ckpt = shutil.copy(default_checkpoint(), tmp_path / "run.pth")
    x, y = load_dataset("digits", split="train")
    np.savez(tmp_path / "run.npz", x=x.numpy(), y=y.numpy())
    before = (tmp_path / "run.npz").read_bytes()
    assert main(["export", str(ckpt), "--calibration", str(tmp_path / "run.npz"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "would overwrite --calibration" in err
    assert (tmp_path / "run.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz", "run.pth"]


def test_a_format_that_fails_late_leaves_no_file_of_the_export(tmp_path, capsys):
    """netx is written last and refuses weights with an exponent (the default quantization): the graph
    and both ONNX files were already written by then, into the staging folder, and none may stay."""
    out = tmp_path / "out"
    assert main(["export", "--format", "ir,onnx-float,onnx,nir,netx", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(export --fraction-bits 0, without --for-target)" in err
    assert not out.exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "digits_statten.json").write_text("an earlier export")
    assert main(["export", "--format", "ir,netx", "-o", str(tmp_path / "kept")]) == 2
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["digits_statten.json"]
    assert (tmp_path / "kept" / "digits_statten.json").read_text() == "an earlier export"


def test_a_state_width_int64_cannot_rescale_is_refused_in_one_line(tmp_path, capsys):
    """48-bit state (a valid target): the residual add's rescaling would leave int64; one line, no file."""
    from importlib import resources

    toml = resources.files("statten_hw.targets").joinpath("builtin", "loihi2.toml").read_text()
    wide = tmp_path / "wide.toml"
    wide.write_text(toml.replace("\nstate_bits = 24 ", "\nstate_bits = 48 "))
    out = tmp_path / "out"
    assert main(["export", "--for-target", str(wide), "--format", "ir,onnx-float,onnx", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'patch_embed.rpe_add': requantization product" in err
    assert not out.exists()


def test_export_names_files_after_the_whole_checkpoint_name(tmp_path, capsys):
    """``run.b2.pth`` and ``run.b4.pth`` into one folder: every file keeps its ``.b2``/``.b4``."""
    import shutil

    from statten_hw.defaults import default_checkpoint

    for tag in ("b2", "b4"):
        ckpt = shutil.copy(default_checkpoint(), tmp_path / f"run.{tag}.pth")
        assert main(["export", str(ckpt), "-o", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"run.{tag}{suffix}" for tag in ("b2", "b4")
                             for suffix in (".json", ".npz", ".float.onnx", ".int.onnx", ".nir"))


def test_a_sequence_models_float_onnx_takes_the_sequences_its_integer_onnx_takes(tmp_path, capsys):
    """digits-seq data is [N, T, C, H, W]: both ONNX files take it, and the float one gives the model's logits."""
    import onnx

    from statten_hw.data import load_dataset
    from statten_hw.defaults import seq_checkpoint

    ckpt = seq_checkpoint(2)
    assert main(["export", str(ckpt), "--calibration", "digits-seq", "--format", "ir,onnx-float,onnx",
                 "--batch", "3", "-o", str(tmp_path)]) == 0
    shapes = {kind: [d.dim_value for d in onnx.load(str(tmp_path / f"digits_seq_b2.{kind}.onnx")).graph.input[0]
                     .type.tensor_type.shape.dim] for kind in ("float", "int")}
    x = load_dataset("digits-seq", split="test")[0][:3]
    assert shapes["float"] == shapes["int"] == list(x.shape)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(tmp_path / "digits_seq_b2.float.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        expected = load_checkpoint(ckpt)(x).numpy()
    assert np.abs(logits - expected).max() <= 1e-5


@pytest.mark.parametrize("argv, message", [
    (["export", "--batch", "0"], "--batch must be >= 1, got 0"),
    (["export", "--calibration-samples", "-5"], "--calibration-samples must be >= 1, got -5"),
    (["export", "--format", ","], "--format: no format given"),
    (["export", "--format", "ir,onnx,netx"], "(export --fraction-bits 0, without --for-target)"),
    (["export", "--format", "netx", "--for-target", "loihi2"], "(export --fraction-bits 0, without --for-target)"),
    (["energy", "--samples", "0"], "--samples must be >= 1, got 0"),
    # a rate profile was read and --dataset/--samples silently ignored
    (["energy", "--rates", "profile.json", "--dataset", "digits"],
     "--dataset chooses the data measured rates come from; the profile profile.json gives its rates already"),
    (["energy", "--rates", "profile.json", "--dataset", "digits", "--samples", "8"], "--dataset and --samples choose"),
])
def test_bad_counts_and_formats_are_one_line_and_write_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


@pytest.mark.parametrize("command", [["export"], ["map"], ["energy"], ["simulate", "--samples", "1"]])
def test_an_output_folder_in_place_of_a_file_is_one_line(command, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    for out in (tmp_path / "taken", tmp_path / "taken" / "below"):
        assert main([*command, "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is a file, not a folder" in err
    assert (tmp_path / "taken").read_text() == "a file"


def _cifar_like(path, n: int = 12):
    rng = np.random.default_rng(5)
    np.savez(path, x=rng.random((n, 3, 32, 32)).astype(np.float32), y=rng.integers(0, 10, n))
    return path


def _spikes(out) -> int:
    import json

    return json.loads((out / "report.json").read_text())["totals"]["spikes"]


def test_simulate_quantizes_a_non_digits_model_on_the_input_data(tmp_path, capsys):
    """An official CIFAR-shaped checkpoint simulates on the user's .npz, which also calibrates it
    (the built-in digits cannot), with a note; ``--calibration`` takes other data instead, and a
    calibration set scaled by 4 quantizes a different network (other spike counts)."""
    import json

    ckpt, data, out = official_checkpoint("statten_cifar_t4_b2"), _cifar_like(tmp_path / "own.npz"), tmp_path / "s"
    assert main(["simulate", str(ckpt), "--input", str(data), "--samples", "2", "-o", str(out)]) == 0
    assert "note: the network is quantized on the samples it simulates" in capsys.readouterr().err
    doc = json.loads((out / "report.json").read_text())
    assert doc["data"] == {"input": str(data), "samples": 2, "calibration": str(data)}
    assert f"2 of {data}, network quantized on {data}" in (out / "report.md").read_text()

    with np.load(data) as arrays:
        np.savez(tmp_path / "bright.npz", x=4 * arrays["x"], y=arrays["y"])
    bright = tmp_path / "bright.npz"
    for calibration, out_b in ((data, tmp_path / "same"), (bright, tmp_path / "bright")):
        assert main(["simulate", str(ckpt), "--input", str(data), "--calibration", str(calibration), "--samples", "2",
                     "-o", str(out_b)]) == 0
    assert "note" not in capsys.readouterr().err
    assert json.loads((tmp_path / "bright" / "report.json").read_text())["data"]["calibration"] == str(bright)
    assert _spikes(tmp_path / "same") == _spikes(out) != _spikes(tmp_path / "bright")


def test_a_digits_model_keeps_calibrating_on_the_digits_train_split(tmp_path, capsys):
    """Test samples given as a file do not calibrate a model the built-in digits fit: no overlap."""
    import json

    from statten_hw.data import load_dataset

    x, y = load_dataset("digits", split="test")
    np.savez(tmp_path / "mine.npz", x=x[:3].numpy(), y=y[:3].numpy())
    assert main(["simulate", "--input", str(tmp_path / "mine.npz"), "-o", str(tmp_path / "f")]) == 0
    assert main(["simulate", "--samples", "3", "-o", str(tmp_path / "d")]) == 0
    assert "note" not in capsys.readouterr().err
    assert json.loads((tmp_path / "f" / "report.json").read_text())["data"]["calibration"] == "digits"
    assert _spikes(tmp_path / "f") == _spikes(tmp_path / "d")


def test_reports_of_one_file_named_two_ways_are_equal(tmp_path, capsys, monkeypatch):
    """A report names a data file by its absolute path: `diff` of two runs of one file, named once
    relative and once absolute, finds nothing (the header compared the paths as typed)."""
    import json

    from statten_hw.data import load_dataset

    x, y = load_dataset("digits", split="test")
    np.savez(tmp_path / "mine.npz", x=x[:3].numpy(), y=y[:3].numpy())
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "--input", "mine.npz", "-o", "relative"]) == 0
    assert main(["simulate", "--input", str(tmp_path / "mine.npz"), "-o", "absolute"]) == 0
    doc = json.loads((tmp_path / "relative" / "report.json").read_text())
    assert doc["data"]["input"] == str((tmp_path / "mine.npz").resolve())
    capsys.readouterr()
    assert main(["diff", "relative/report.json", "absolute/report.json"]) == 0


def test_simulate_names_the_data_a_non_digits_model_needs(tmp_path, capsys):
    """Without data of its shape, one line that says what to give; the digits as calibration fail."""
    ckpt, out = official_checkpoint("statten_cifar_t4_b2"), tmp_path / "s"
    assert main(["simulate", str(ckpt), "--samples", "2", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the model takes [3, 32, 32]" in err and "PATH.npz" in err
    data = _cifar_like(tmp_path / "own.npz")  # fits, but calibrating on the built-in digits does not
    assert main(["simulate", str(ckpt), "--input", str(data), "--calibration", "digits", "-o", str(out)]) == 2
    assert "digits: data samples have shape [1, 8, 8]" in capsys.readouterr().err
    assert not out.exists()


def test_info_lists_every_spiking_layer(capsys):
    assert main(["info", str(official_checkpoint("statten_cifar_t4_b2"))]) == 0
    out = capsys.readouterr().out
    model = load_checkpoint(official_checkpoint("statten_cifar_t4_b2"))
    assert "T = 4, B = 2" in out and f"{sum(p.numel() for p in model.parameters()):,}" in out
    assert "block.1.attn.attn_lif" in out and "head_lif" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "info" in capsys.readouterr().out


def test_map_block_size_sweep_writes_one_report_per_B(tmp_path, capsys):
    from statten_hw.defaults import seq_checkpoint

    assert main(["map", str(seq_checkpoint(2)), "-B", "1,4", "--target", "layerwise", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    import json

    docs = {b: json.loads((tmp_path / f"B{b}" / "report.json").read_text()) for b in (1, 4)}
    assert all(d["command"] == "map" and d["block_size"] == b for b, d in docs.items())
    # Attention buffers hold B steps of Q/K/V: more buffer for the larger block.
    assert docs[4]["totals"]["buffer_bytes"] > docs[1]["totals"]["buffer_bytes"]
    import csv

    with open(tmp_path / "block_sizes.csv", newline="") as f:  # the side-by-side table, as a file too
        table = {int(r["B"]): r for r in csv.DictReader(f)}
    assert sorted(table) == [1, 4]
    for b, doc in docs.items():
        t = doc["totals"]
        assert int(table[b]["cores"]) == t["cores"] and int(table[b]["buffer_bytes"]) == t["buffer_bytes"]
        assert int(table[b]["total_memory_bytes"]) == t["synapse_bytes"] + t["state_bytes"] + t["buffer_bytes"]
        assert int(table[b]["latency_steps"]) == doc["mapping"]["schedule"]["latency_steps"]
        assert 0.5 < float(table[b]["float_accuracy"]) <= 1
    import argparse

    with torch.serialization.safe_globals([argparse.Namespace]):
        stored = torch.load(seq_checkpoint(1), weights_only=True)["metric"]
    stored = stored if stored <= 1 else stored / 100
    assert f"{100 * stored:.2f} %" in out  # the B = 1 checkpoint's accuracy as its training run measured it


def test_map_with_new_timesteps_takes_block_sizes_the_checkpoint_does_not_have(tmp_path, capsys):
    """-T 3 -B 1,3 on the embedded model (own B = 2, which does not divide 3): one report per B of T = 3."""
    import json

    assert main(["map", "-T", "3", "-B", "1,3", "-o", str(tmp_path)]) == 0
    docs = {b: json.loads((tmp_path / f"B{b}" / "report.json").read_text()) for b in (1, 3)}
    assert [d["block_size"] for d in docs.values()] == [1, 3]
    assert [d["mapping"]["schedule"]["timesteps"] for d in docs.values()] == [3, 3]
    assert [d["mapping"]["schedule"]["latency_steps"] for d in docs.values()] == [3, 3 + 2]  # T + A·(B − 1), A = 1


def test_map_of_one_block_size_named_twice_writes_one_report_in_place(tmp_path):
    """-B 2,2 was two block sizes: the report went to OUT/B2 beside a block_sizes.csv of two equal rows."""
    assert main(["map", "-B", "2,2", "-o", str(tmp_path)]) == 0
    assert (tmp_path / "report.json").is_file() and not (tmp_path / "B2").exists()
    assert not (tmp_path / "block_sizes.csv").exists()


@pytest.mark.parametrize("target", ["loihi2", "layerwise"])
def test_map_bits_charges_the_width_the_quantized_network_is_stored_at(target, tmp_path, capsys):
    """map --bits gives the synapse memory that quantizing to those bits and mapping gives (`prepare`)."""
    from statten_hw.pipeline import prepare

    assert main(["map", "--bits", "4", "--target", target, "-o", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    quantized = prepare(None, target, bits=4).mapping
    assert doc["totals"]["synapse_bytes"] == quantized.totals.synapse_bytes
    assert doc["mapping"]["weight_bits"] == quantized.weight_bits == (4 if target == "loihi2" else 8)
    assert main(["map", "--bits", "0", "-o", str(tmp_path / "bad")]) == 2
    assert "--bits 0:" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_map_into_a_folder_of_an_earlier_map_run_leaves_only_its_own_reports(tmp_path, capsys):
    """Single-B and multi-B runs into one folder used to leave each other's reports side by side; a
    folder of the user's own (no map report.json in it) stays."""
    import json

    (tmp_path / "B9").mkdir()
    (tmp_path / "B9" / "notes.txt").write_text("mine")
    (tmp_path / "B9" / "report.json").write_text("[" * 100_000 + "]" * 100_000)  # a RecursionError (review)
    assert main(["map", "-B", "all", "-o", str(tmp_path)]) == 0
    assert main(["map", "-B", "2", "--target", "layerwise", "-o", str(tmp_path)]) == 0
    assert "removed an earlier map run's B1, B2, B4, block_sizes.csv" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B9", "cores.csv", "layers.csv", "report.html",
                                                          "report.json", "report.md"]
    assert json.loads((tmp_path / "report.json").read_text())["target"] == "layerwise"
    assert main(["map", "-B", "1,4", "-o", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B1", "B4", "B9", "block_sizes.csv"]
    assert (tmp_path / "B9" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("value", ["", " ", ","])
def test_map_refuses_an_empty_block_size_list(value, tmp_path, capsys):
    """-B '' mapped B = 1 (an empty list read as 'not given', after the model was loaded for a new B)."""
    assert main(["map", "-B", value, "-o", str(tmp_path / "m")]) == 2
    assert f"block sizes must be positive integers, got {value!r}" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_map_rejects_block_size_not_dividing_T(tmp_path, capsys):
    assert main(["map", "-B", "3", "-o", str(tmp_path / "m")]) == 2
    assert "not divisible" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_sweep_is_wired_and_rejects_an_unknown_target_in_one_line(capsys):
    from statten_hw.cli import main

    assert main(["sweep", "--targets", "loihi9", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "loihi9" in err[0]


def test_event_and_lava_reports_agree_where_both_measured(tmp_path, capsys):
    """`statten-hw diff --values-only` of an event and a Lava run of the same samples: no difference
    (spikes per layer and core equal), exit 0; a doctored copy differs, exit 1. The Lava run says
    itself that it equals the integer reference, layer by layer."""
    import json

    from statten_hw.cli import main
    from statten_hw.pipeline import prepare

    assert main(["simulate", "--samples", "2", "-o", str(tmp_path / "event")]) == 0
    assert main(["simulate", "--backend", "lava", "--samples", "2", "-o", str(tmp_path / "lava")]) == 0
    layers = len(prepare(None, "loihi2").qgraph.lif_nodes)
    printed = capsys.readouterr()
    assert f"spikes equal to the integer reference in {layers}/{layers} layers, logits equal" in printed.out
    warnings = [line for line in printed.err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "need more axons" in warnings[0]  # the placement's, said once by the event run
    event, lava = tmp_path / "event" / "report.json", tmp_path / "lava" / "report.json"
    assert main(["diff", "--values-only", str(event), str(lava)]) == 0
    doc = json.loads(lava.read_text())
    assert doc["precision"] == json.loads(event.read_text())["precision"]  # formats, saturation, input clipping
    doc["layers"][0]["spikes"] += 1
    (tmp_path / "doctored.json").write_text(json.dumps(doc))
    assert main(["diff", "--values-only", str(event), str(tmp_path / "doctored.json")]) == 1


def test_export_for_a_targets_formats_writes_the_graph_simulate_runs(tmp_path, capsys):
    """``export --for-target`` quantizes as ``simulate --precision target`` does: the same integer graph,
    checked through the written ONNX file's logits."""
    from statten_hw.data import load_dataset
    from statten_hw.export import onnx_integer as OI
    from statten_hw.pipeline import prepare
    from statten_hw.quant import run_integer

    assert main(["export", "--for-target", "layerwise", "--format", "onnx", "-o", str(tmp_path)]) == 0
    assert "for layerwise's formats, 16-bit state" in capsys.readouterr().out
    qg = prepare(None, "layerwise", precision="target").qgraph
    x = load_dataset("digits", split="test")[0][:1]
    outs = OI.run_integer_onnx(tmp_path / "digits_statten.int.onnx", OI.quantize_input(qg, x))
    assert np.array_equal(outs[OI.output_name(qg)], run_integer(qg, x).logits_int.numpy())


def test_export_refuses_two_sources_of_fraction_bits(tmp_path, capsys):
    assert main(["export", "--for-target", "layerwise", "--fraction-bits", "2", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--fraction-bits and quantizing for the target's formats" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("differing, logits, named", [([], False, "the logits"), (["q_lif"], True, "q_lif"),
                                                      (["q_lif", "k_lif"], False, "q_lif, k_lif, the logits")])
def test_a_lava_disagreement_is_named_in_one_warning_line(differing, logits, named):
    from statten_hw.cli import _reference_check

    check = {"layers_compared": 3, "layers_equal": 3 - len(differing), "layers_differing": differing,
             "logits_equal": logits}
    clause, warning = _reference_check({"backend": "lava", "lava": {"integer_reference": check}})
    assert f"in {3 - len(differing)}/3 layers, logits {'equal' if logits else 'DIFFERENT'}" in clause
    assert warning == (f"warning: Lava disagrees with the integer reference in {named}: a backend defect, "
                       "please report it")
    agreeing = {**check, "layers_differing": [], "logits_equal": True}
    assert _reference_check({"backend": "lava", "lava": {"integer_reference": agreeing}})[1] is None


def test_a_sanafe_disagreement_is_named_in_one_warning_line():
    """SANA-FE's report counts mismatches per layer (None: the layer was not on the chip)."""
    from statten_hw.cli import _reference_check

    rows = [{"name": "lif1", "reference_mismatches": 0}, {"name": "lif2", "reference_mismatches": 7},
            {"name": "attn", "reference_mismatches": None}]
    clause, warning = _reference_check({"backend": "sanafe", "layers": rows})
    assert clause == ", spikes equal to the integer reference in 1/2 layers"
    assert warning == "warning: SANA-FE disagrees with the integer reference in lif2: a backend defect, please report it"
    rows[1]["reference_mismatches"] = 0
    assert _reference_check({"backend": "sanafe", "layers": rows}) == (
        ", spikes equal to the integer reference in 2/2 layers", None)
    assert _reference_check({"backend": "event", "layers": [{"name": "x"}]}) == ("", None)


def test_a_lava_disagreement_where_the_reference_saturated_names_that_limit():
    from statten_hw.cli import _reference_check

    for saturated, wrapped in ((4, 0), (0, 3)):  # a sum wrapped before its bias saturates nothing
        check = {"layers_compared": 2, "layers_equal": 1, "layers_differing": ["lif"], "logits_equal": True,
                 "reference_saturated": saturated, "lava_wrapped_sums": wrapped}
        warning = _reference_check({"backend": "lava", "lava": {"integer_reference": check}})[1]
        assert warning.startswith(f"warning: Lava disagrees with the integer reference in lif: the integer reference "
                                  f"saturated {saturated} value(s) and {wrapped} synaptic sum(s) left 24 bits before "
                                  "their bias, which Lava's 24-bit synapses wrap")


def test_eval_and_energy_default_to_the_data_a_sequence_model_was_trained_on(tmp_path, capsys):
    """``digits_seq_b*`` read a digit row per step. eval and energy defaulted to single images (eval:
    18 % instead of 92 %; energy measured rates on data the model never saw) and energy refused the
    sequences even when asked for them."""
    import json

    from statten_hw.data import load_dataset
    from statten_hw.defaults import seq_checkpoint
    from statten_hw.evaluate import accuracy

    checkpoint = str(seq_checkpoint(2))
    x, y = load_dataset("digits-seq")
    assert main(["eval", checkpoint]) == 0
    expected = 100 * accuracy(load_checkpoint(checkpoint), x, y)
    assert f"digits-seq: {len(y)} samples, top-1 accuracy {expected:.2f} %" in capsys.readouterr().out
    reports = {}
    for name, extra in (("default", []), ("explicit", ["--dataset", "digits-seq"])):
        assert main(["energy", checkpoint, "--samples", "8", *extra, "-o", str(tmp_path / name)]) == 0
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
    assert reports["default"] == reports["explicit"]
    assert reports["default"]["energy_model"]["rate_source"] == "measured on digits-seq (8 samples)"
    first = reports["default"]["layers"][0]
    assert first["op"] == "MAC" and first["formula"] == "E_MAC·F·8"  # a new row of pixels at each of T = 8 steps


def test_map_and_simulate_warn_when_the_target_costs_nothing(tmp_path, capsys):
    """SANA-FE's truenorth.yaml sets every latency and energy to 0: the figures are 0 by construction."""
    assert main(["map", "--target", "sanafe:truenorth", "-o", str(tmp_path / "map")]) == 0
    err = capsys.readouterr().err
    assert ("warning: sanafe:truenorth gives every timing and every energy cost as 0, so the report's cycles and "
            "latency and energy are 0 by construction") in err
    assert main(["simulate", "--target", "sanafe:truenorth", "--samples", "2", "-o", str(tmp_path / "sim")]) == 0
    assert "warning: sanafe:truenorth gives every timing and every energy cost as 0" in capsys.readouterr().err
    assert main(["map", "--target", "loihi2", "-o", str(tmp_path / "loihi2")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_sanafe_backend_says_which_layers_it_feeds_currents(tmp_path, capsys):
    import json

    assert main(["simulate", "--backend", "sanafe", "--target", "sanafe:loihi", "--samples", "1",
                 "-o", str(tmp_path)]) == 0
    approximations = json.loads((tmp_path / "report.json").read_text())["sanafe"]["approximations"]
    assert approximations and (f"note: SANA-FE runs {len(approximations)} layer(s) on input currents the integer "
                               "reference computes") in capsys.readouterr().err


def test_targets_lists_the_builtin_and_sanafe_targets(capsys):
    """Error messages call sanafe:loihi and sanafe:truenorth built-in: the listing names them too."""
    from statten_hw.targets import list_targets, load_target
    from statten_hw.targets.sanafe import SHIPPED

    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    names = [name for name, _ in list_targets()] + [f"sanafe:{name}" for name in SHIPPED]
    for name in names:
        assert f"{name}: {load_target(name).description.split()[0]}" in out


@pytest.mark.parametrize("target, alike", [("loihi2", True), ("layerwise", False)])
def test_map_says_when_every_block_size_maps_alike(tmp_path, capsys, target, alike):
    """SDT v1's SDSA works step by step: on a step-by-step target the B rows are equal (checked here from
    the reports), on a layer-by-layer one B still sets the blocks the layers run in."""
    import json

    ckpt = official_checkpoint("sdt_cifar_t4")
    assert main(["map", str(ckpt), "-B", "all", "--target", target, "-o", str(tmp_path)]) == 0
    totals = [json.loads((tmp_path / f"B{b}" / "report.json").read_text())["totals"] for b in (1, 2, 4)]
    assert (totals[0] == totals[1] == totals[2]) == alike
    note = "note: every block size maps alike here: SDSA attention works step by step"
    assert (note in capsys.readouterr().out) == alike
