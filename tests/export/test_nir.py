"""NIR export of the integer network: file -> nir.read -> reimport -> run_integer is bit-exact."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nir
import numpy as np
import pytest

from conftest import EMBEDDED, OFFICIAL, embedded, official_checkpoint, official_expected
from statten_hw import load_checkpoint
from statten_hw.export.nir_export import FORMAT, export_nir, import_nir, run_nir_integer
from statten_hw.ir import lower
from statten_hw.quant import quantize, run_integer

sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
from ir_nets import SMALL, small_input, small_model  # noqa: E402


def _check_typed(g, qg):
    """Every opaque subgraph has one typed Input (per-step shape of its ports) and one typed Output."""
    from statten_hw.ir.graph import SHAPE, inputs_by_port
    for name in qg.graph:
        node = g.nodes[name]
        if not isinstance(node, nir.NIRGraph):
            continue
        assert set(node.inputs) == {"input"} and set(node.outputs) == {"output"}, name
        for src in inputs_by_port(qg.graph, name).values():
            assert np.array_equal(node.input_type["input"], qg.graph.nodes[src][SHAPE]), name
        assert np.array_equal(node.output_type["output"], qg.graph.nodes[name][SHAPE]), name
        assert node.check_types()
    assert g.check_types()


def _roundtrip(qg, x, path):
    ref = run_integer(qg, x)
    assert export_nir(qg, path) == path and path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers
    _check_typed(nir.read(path), qg)  # default type_check=True
    got = run_nir_integer(path, x)
    assert got.logits_int.dtype == ref.logits_int.dtype
    assert np.array_equal(got.logits_int.numpy(), ref.logits_int.numpy())
    assert got.logits_scale == ref.logits_scale
    for n in qg.lif_nodes:
        assert np.array_equal(got.values[n].numpy(), ref.values[n].numpy()), n
    for n in qg.graph:  # every node, not only the spikes
        assert np.array_equal(got.values[n].numpy(), ref.values[n].numpy()), n
    assert any(int(ref.values[n].abs().sum()) > 0 for n in qg.lif_nodes)
    return ref


@pytest.mark.parametrize("key", list(SMALL))  # every attention mode, DVS, TET, ternary V
def test_small_networks_roundtrip(key, tmp_path):
    model = small_model(key)
    x = small_input(model)
    _roundtrip(quantize(lower(model), x), x, tmp_path / f"{key}.nir")


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_embedded_model_roundtrip(name, tmp_path):
    _, graph, calib, (x, _) = embedded(name)
    _roundtrip(quantize(graph, calib[:256]), x[:16], tmp_path / f"{name}.nir")


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_fixture_roundtrip(name, tmp_path):
    model = load_checkpoint(official_checkpoint(name)).eval()
    x = official_expected(name)["inputs"]
    graph = lower(model, encoding="events" if x.dim() == 5 else None)
    _roundtrip(quantize(graph, x), x, tmp_path / f"{name}.nir")


def test_file_is_plain_nir_with_standard_primitives(tmp_path):
    model = small_model("statten")
    x = small_input(model)
    qg = quantize(lower(model), x)
    path = export_nir(qg, tmp_path / "m.nir")
    # Plain nir.read with its default type checking: the opaque subgraphs carry NIR types too.
    g = nir.read(path)
    _check_typed(g, qg)
    assert isinstance(g, nir.NIRGraph) and g.metadata["format"] in (FORMAT, FORMAT.encode())
    kinds = {type(n).__name__ for n in g.nodes.values()}
    assert {"Input", "Output", "Conv2d", "Affine", "LIF", "NIRGraph"} <= kinds
    assert len(g.nodes) == qg.graph.number_of_nodes() and len(g.edges) == qg.graph.number_of_edges()
    for name in qg.lif_nodes:
        node, op = g.nodes[name], qg.qop(name)
        assert isinstance(node, nir.LIF)
        assert int(node.metadata["threshold"]) == op.threshold and int(node.metadata["dv"]) == op.dv
        assert int(node.metadata["state_bits"]) == qg.state_bits
        assert np.all(node.v_threshold == op.threshold - 1) and np.all(node.tau * op.dv == 4096)
    for name in qg.graph:
        op, node = qg.qop(name), g.nodes[name]
        if type(op).__name__ == "QConv2d":
            assert isinstance(node, nir.Conv2d) and np.array_equal(node.weight, op.weight.astype(np.float64))
        if type(op).__name__ == "QAttention":
            assert isinstance(node, nir.NIRGraph)
            meta = node.metadata
            assert meta["statten_hw_op"] in ("QAttention", b"QAttention")
            assert json.loads(meta["qop"])["mode"] == "STAtten"
            assert sorted(json.loads(meta["inputs"])) == ["k", "q", "v"]
    assert type(import_nir(path).qop(qg.output_node)).__name__ == "QOutput"


def test_export_command_refuses_what_nir_cannot_type_before_writing(tmp_path, capsys, monkeypatch):
    """One line naming the layer, exit 2, and no file of any format (the NIR graph is built first).
    Every op of ours has a NIR form, so the refusal is injected where a new op would land."""
    from statten_hw.cli import main
    from statten_hw.export import nir_export

    def untyped(g, name, op, shape, meta):
        raise ValueError(f"{name}: no typed NIR form for {type(op).__name__}")

    monkeypatch.setattr(nir_export, "_opaque", untyped)
    out = tmp_path / "out"
    rc = main(["export", "--format", "ir,onnx,nir", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "patch_embed.maxpool3" in err and "NIR" in err
    assert not out.exists() or not any(out.iterdir())


def test_graph_quantized_for_a_16_bit_target_roundtrip(tmp_path):
    """The 16-bit state and exponent-free weights of a graph quantized for layerwise survive the file:
    its re-import clips the same values at every node."""
    from statten_hw.data import load_dataset
    from statten_hw.pipeline import prepare

    qg = prepare(None, "layerwise", precision="target").qgraph
    ref = _roundtrip(qg, load_dataset("digits", split="test")[0][:32], tmp_path / "layerwise.nir")
    assert sum(ref.overflows.values()) > 0


@pytest.mark.parametrize("edit, problem", [
    (("lif", "dv", 1 << 52), "LIF dv 4503599627370496 or threshold"),
    (("lif", "dv", -4096), "LIF dv -4096 or threshold"),
    (("lif", "threshold", -3), "threshold -3 is outside"),
    (("conv", "weight_exp", 40), "weight_exp 40 is outside 0..16"),
    (("graph", "state_bits", 100), "state_bits 100 is outside 4..48")])
def test_edited_integer_fields_outside_the_contract_are_refused(tmp_path, edit, problem):
    """Values `quantize` never makes (found by review: a dv of 2**52 imported and ran with int64 leak
    products that wrap, state_bits 100 turned saturation off): refused naming the file."""
    from statten_hw.errors import InputError

    model = small_model("statten")
    qg = quantize(lower(model), small_input(model))
    graph = nir.read(export_nir(qg, tmp_path / "base.nir"))
    where, field, value = edit
    if where == "graph":
        graph.metadata[field] = value
    else:
        name = qg.lif_nodes[0] if where == "lif" else next(n for n, node in graph.nodes.items()
                                                           if isinstance(node, nir.Conv2d))
        fields = json.loads(graph.nodes[name].metadata["qop"])
        fields[field] = value
        meta = graph.nodes[name].metadata
        meta["qop"] = json.dumps(fields)
        if field in meta:  # a LIF repeats its integer fields in its metadata: edited alike
            meta[field] = value
    nir.write(tmp_path / "edited.nir", graph)
    with pytest.raises(InputError, match=problem) as info:
        import_nir(tmp_path / "edited.nir")
    assert "edited.nir" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("kind, field", [(nir.LIF, "v_threshold"), (nir.LIF, "tau"), (nir.LIF, "r"),
                                         (nir.LIF, "v_reset"), (nir.LIF, "v_leak"), (nir.Conv2d, "groups")])
def test_standard_field_edited_by_another_tool_is_refused(tmp_path, kind, field):
    """The integer op is rebuilt from the metadata, so a standard field edited alone (a threshold raised
    in another tool) used to be ignored silently: the file now has to agree with itself. (An edited
    stride or padding changes the node's output type, which ``nir.read`` refuses already.)"""
    from statten_hw.errors import InputError

    model = small_model("statten")
    qg = quantize(lower(model), small_input(model))
    graph = nir.read(export_nir(qg, tmp_path / "base.nir"))
    name = next(n for n, node in graph.nodes.items() if isinstance(node, kind))
    node = graph.nodes[name]
    setattr(node, field, np.asarray(getattr(node, field)) + 1)
    nir.write(tmp_path / "edited.nir", graph)
    with pytest.raises(InputError, match=rf"{name}: {field} .* disagrees with the integer op's") as info:
        import_nir(tmp_path / "edited.nir")
    assert "edited.nir" in str(info.value) and "\n" not in str(info.value)


def _without_leak(tmp_path):
    """A small STAtten net quantized for a target with no decay field (every LIF dv = 0), its NIR file
    and the graph read back."""
    model = small_model("statten")
    x = small_input(model)
    qg = quantize(lower(model), x, decay_bits=0)
    assert {qg.qop(n).dv for n in qg.lif_nodes} == {0}
    path = tmp_path / "no_leak.nir"
    return qg, x, path, nir.read(export_nir(qg, path))


def test_a_lif_without_leak_is_a_nir_if(tmp_path):
    """dv = 0 was written as a nir.LIF with tau = r = inf, whose Euler step (dt/tau)·r·I is 0·inf:
    meaningless to any reader. It is NIR's IF with r = 1 (v <- v + I at dt = 1), and runs back exactly."""
    qg, x, path, graph = _without_leak(tmp_path)
    for name in qg.lif_nodes:
        node = graph.nodes[name]
        assert isinstance(node, nir.IF), name
        assert np.all(node.r == 1) and np.all(node.v_threshold == qg.qop(name).threshold - 1)
        assert np.all(node.v_reset == 0) and np.all(np.isfinite(node.r))
    _roundtrip(qg, x, tmp_path / "again.nir")


@pytest.mark.parametrize("edit, problem", [
    ("r", r"r \[2\.0.* disagrees with the integer op's"),
    ("v_threshold", r"v_threshold .* disagrees with the integer op's"),
    ("v_reset", r"v_reset \[1\.0.* disagrees with the integer op's"),
    ("as_lif", r"a nir\.LIF holds the integer LIF of dv 0")])
def test_an_edited_if_neuron_is_refused(tmp_path, edit, problem):
    """An IF's standard fields must agree with its metadata as a LIF's do; a nir.LIF standing for a
    dv-0 neuron (what the export wrote before: tau = inf) is refused, not read with a leak."""
    from statten_hw.errors import InputError

    qg, _, _, graph = _without_leak(tmp_path)
    name = qg.lif_nodes[0]
    node = graph.nodes[name]
    if edit == "as_lif":
        inf = np.full(node.r.shape, np.inf)
        graph.nodes[name] = nir.LIF(tau=inf, r=inf, v_leak=0 * node.r, v_threshold=node.v_threshold,
                                    v_reset=node.v_reset, metadata=node.metadata)
    else:
        setattr(node, edit, np.asarray(getattr(node, edit)) + 1)
    nir.write(tmp_path / "edited.nir", graph)
    with pytest.raises(InputError, match=problem) as info:
        import_nir(tmp_path / "edited.nir")
    assert "edited.nir" in str(info.value) and "\n" not in str(info.value)


def test_a_non_square_kernel_is_refused_in_one_line(tmp_path):
    """The README's limit: nir 1.0.8's Conv2d infers both output sizes from the kernel's first spatial
    size, so a (3, 1) kernel fails NIR's type check; the export refuses it and writes nothing."""
    import torch

    from statten_hw.errors import UnsupportedLayer
    from statten_hw.ir import nodes as ir
    from statten_hw.ir.graph import add_op, new_graph
    from statten_hw.ir.passes.infer_shapes import infer_shapes

    rng = np.random.default_rng(4)
    g = new_graph()
    add_op(g, "input", ir.Input(shape=(2, 6, 4), timesteps=2), "")
    add_op(g, "conv", ir.Conv2d(weight=rng.standard_normal((4, 2, 3, 1)).astype(np.float32),
                                bias=np.zeros(4, np.float32), stride=(2, 1), padding=(1, 0)), "", x="input")
    add_op(g, "lif", ir.LIF(threshold=0.5), "", x="conv")
    add_op(g, "time_mean", ir.Mean(time=True), "", x="lif")
    add_op(g, "output", ir.Output(), "", x="time_mean")
    infer_shapes(g)
    qg = quantize(g, torch.from_numpy(rng.random((4, 2, 6, 4), dtype=np.float32)))
    with pytest.raises(UnsupportedLayer, match="NIR's type check refuses it") as info:
        export_nir(qg, tmp_path / "n.nir")
    assert "\n" not in str(info.value) and not (tmp_path / "n.nir").exists()
