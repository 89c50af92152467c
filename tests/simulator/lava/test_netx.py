"""lava-dl netx: export the netx-expressible chain, load it with netx.hdf5.Network, same spikes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lava_nets import active_qgraph, tiny_qgraph
from statten_hw.errors import UnsupportedLayer
from statten_hw.ir import nodes as ir
from statten_hw.ir.graph import add_op, new_graph
from statten_hw.ir.passes.infer_shapes import infer_shapes
from statten_hw.quant import quantize, run_integer
from statten_hw.simulator.lava import _compat

pytestmark = [pytest.mark.lava,
              pytest.mark.skipif(not _compat.HAS_LAVA, reason=f"lava-nc not importable: {_compat.LAVA_IMPORT_ERROR!r}")]

_rng = np.random.default_rng(21)


def _f32(*shape, scale=1.0):
    return (_rng.standard_normal(shape) * scale).astype(np.float32)


def _graph(input_shape, body):
    """input -> body (a list of (name, node)) -> time mean -> output, shapes inferred."""
    g = new_graph()
    prev = add_op(g, "input", ir.Input(shape=input_shape, timesteps=4), "")
    for name, node in body:
        prev = add_op(g, name, node, "", x=prev)
    add_op(g, "time_mean", ir.Mean(time=True), "", x=prev)
    add_op(g, "output", ir.Output(), "", x="time_mean")
    return infer_shapes(g)


def conv_snn():
    """A plain conv SNN: 3x3 conv, LIF, strided grouped conv, LIF, then a mean readout netx cannot load."""
    g = _graph((2, 8, 8), [
        ("conv1", ir.Conv2d(weight=_f32(6, 2, 3, 3), bias=_f32(6, scale=0.1), padding=(1, 1))),
        ("lif1", ir.LIF(threshold=0.5)),
        ("conv2", ir.Conv2d(weight=_f32(4, 3, 3, 3), bias=_f32(4, scale=0.1), stride=(2, 2), padding=(1, 1), groups=2)),
        ("lif2", ir.LIF(threshold=0.5)),
        ("pool", ir.Mean(axes=(1, 2))),
        ("head", ir.Linear(weight=_f32(3, 4))),
    ])
    return g, torch.rand(6, 2, 8, 8)


def dense_snn():
    """A plain dense SNN on vectors: two dense+LIF layers and a linear readout."""
    g = _graph((16,), [
        ("fc1", ir.Linear(weight=_f32(12, 16), bias=_f32(12, scale=0.1))),
        ("lif1", ir.LIF(threshold=0.5)),
        ("fc2", ir.Linear(weight=_f32(8, 12), bias=_f32(8, scale=0.1))),
        ("lif2", ir.LIF(threshold=0.5)),
        ("head", ir.Linear(weight=_f32(3, 8))),
    ])
    return g, torch.rand(6, 16)


@pytest.mark.parametrize("net, stop, reason", [
    (conv_snn, "pool", "create_average raises NotImplementedError"),
    (dense_snn, "time_mean", "create_average raises NotImplementedError"),  # the readout's mean
])
def test_plain_snn_round_trip(net, stop, reason, tmp_path):
    from statten_hw.simulator.lava.netx import export_netx, run_netx

    g, calib = net()
    qgraph = quantize(g, calib, weight_bits=8, fraction_bits=0)
    export = export_netx(qgraph, tmp_path / "snn.net")
    assert [lif for _, lif in export.blocks] == ["lif1", "lif2"]
    reasons = dict(export.not_carried)
    assert reason in reasons[stop]
    assert set(reasons) == {"pool", "head", "time_mean", "output"} - ({"pool"} if net is dense_snn else set())
    x = calib[:2]
    spikes = run_netx(export, qgraph, x)
    ref = run_integer(qgraph, x)
    for lif in ("lif1", "lif2"):
        assert ref.values[lif].any(), f"{lif} never fires: the comparison would be vacuous"
        np.testing.assert_array_equal(spikes[lif], ref.values[lif].numpy(), err_msg=lif)


def test_embedded_stem_round_trip_and_what_netx_cannot_carry(tmp_path):
    from statten_hw.data import load_dataset
    from statten_hw.pipeline import prepare
    from statten_hw.simulator.lava.netx import export_netx, run_netx

    d = prepare(None, "loihi2", fraction_bits=0)
    export = export_netx(d.qgraph, tmp_path / "stem.net")
    assert export.blocks == (("patch_embed.proj_conv", "patch_embed.proj_lif"),
                             ("patch_embed.proj_conv1", "patch_embed.proj_lif1"),
                             ("patch_embed.proj_conv2", "patch_embed.proj_lif2"))
    reasons = dict(export.not_carried)
    assert "create_pool raises NotImplementedError" in reasons["patch_embed.maxpool3"]
    assert reasons["block.0.attn.attention"] == "spiking attention has no netx layer type"
    assert "residual sum" in reasons["block.0.attn.residual"]
    carried = {"input", *(n for block in export.blocks for n in block)}
    assert set(reasons) | carried == set(d.qgraph.graph)  # every node is either written or explained
    x = load_dataset(d.dataset, split="test")[0][:2]
    spikes = run_netx(export, d.qgraph, x)
    ref = run_integer(d.qgraph, x)
    for _, lif in export.blocks:
        np.testing.assert_array_equal(spikes[lif], ref.values[lif].numpy(), err_msg=lif)


def test_attention_networks_list_what_netx_cannot_carry(tmp_path):
    from statten_hw.simulator.lava.netx import export_netx

    for key in ("statten", "ssa"):
        export = export_netx(active_qgraph(key, fraction_bits=0), tmp_path / f"{key}.net")
        reasons = dict(export.not_carried)
        assert reasons["block.0.attn.attention"] == "spiking attention has no netx layer type"
        assert all(reason for reason in reasons.values())


def test_nothing_to_carry_is_an_error_naming_the_node(tmp_path):
    from statten_hw.simulator.lava.netx import export_netx

    g = _graph((2, 8, 8), [("pool", ir.MaxPool2d()), ("conv", ir.Conv2d(weight=_f32(2, 2, 3, 3))),
                           ("lif", ir.LIF())])
    qgraph = quantize(g, torch.rand(4, 2, 8, 8), weight_bits=8, fraction_bits=0)
    with pytest.raises(UnsupportedLayer, match="'pool'.*create_pool raises NotImplementedError"):
        export_netx(qgraph, tmp_path / "none.net")
    assert not (tmp_path / "none.net").exists()


def test_wide_weights_are_refused_not_clipped(tmp_path):
    """netx's own loader would clip them with a printed warning; the exporter refuses."""
    from statten_hw.simulator.lava.netx import export_netx

    qgraph, _ = tiny_qgraph(weight_bits=10, fraction_bits=0)
    with pytest.raises(UnsupportedLayer, match="'fc1'.*Loihi 2 synapses hold 8-bit"):
        export_netx(qgraph, tmp_path / "wide.net")
    assert not (tmp_path / "wide.net").exists()


def test_export_command_writes_netx_and_says_what_it_cannot_carry(tmp_path, capsys):
    """`statten-hw export --format netx`: the .net file runs in netx with the same spikes as the
    integer reference, and the sidecar JSON names every node netx cannot carry, with its reason."""
    import json

    from statten_hw.cli import main
    from statten_hw.data import load_dataset
    from statten_hw.pipeline import prepare
    from statten_hw.simulator.lava.netx import NetxExport, run_netx

    assert main(["export", "-o", str(tmp_path), "--format", "netx", "--fraction-bits", "0"]) == 0
    assert "the chain stops at patch_embed.maxpool3" in capsys.readouterr().out
    side = json.loads((tmp_path / "digits_statten.netx.json").read_text())
    reasons = {row["node"]: row["reason"] for row in side["not_carried"]}
    assert reasons["block.0.attn.attention"] == "spiking attention has no netx layer type"
    export = NetxExport(tmp_path / side["file"], tuple(tuple(b) for b in side["blocks"]),
                        tuple(reasons.items()), tuple(side["input_shape"]), side["input_bits"])
    d = prepare(None, "loihi2", fraction_bits=0)  # the same quantization as the command's (default calibration)
    x = load_dataset(d.dataset, split="test")[0][:2]
    spikes, ref = run_netx(export, d.qgraph, x), run_integer(d.qgraph, x)
    for _, lif in export.blocks:
        np.testing.assert_array_equal(spikes[lif], ref.values[lif].numpy(), err_msg=lif)


def test_weight_exponents_are_refused_with_the_way_out(tmp_path, capsys):
    """netx files have no weight exponent: the default quantization (fraction bits) cannot be carried,
    and the command says so in one line, naming the layer and the option, and writes nothing."""
    from statten_hw.cli import main

    assert main(["export", "-o", str(tmp_path), "--format", "netx"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'patch_embed.proj_conv'" in err and "--fraction-bits 0" in err
    assert not any(tmp_path.iterdir())


def test_a_graph_of_another_state_width_is_refused(tmp_path):
    """netx's neurons are Loihi's 24-bit LIFs: a 10-bit-state graph would fire otherwise in netx than in
    the integer reference (a review found 837 extra spikes in one layer); refused, nothing written."""
    from statten_hw.errors import InputError
    from statten_hw.simulator.lava.netx import export_netx

    g, calib = conv_snn()
    qgraph = quantize(g, calib, weight_bits=8, fraction_bits=0, state_bits=10)
    with pytest.raises(InputError, match="24-bit neurons; this integer graph keeps 10-bit state"):
        export_netx(qgraph, tmp_path / "snn.net")
    assert not any(tmp_path.iterdir())
