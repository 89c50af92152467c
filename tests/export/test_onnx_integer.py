"""Integer ONNX export: onnxruntime reproduces ``run_integer`` bit-exactly (logits and every LIF's spikes)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from conftest import EMBEDDED, embedded, official_checkpoint, official_expected
from statten_hw import load_checkpoint
from statten_hw.errors import QuantizationOverflow
from statten_hw.export import export_integer_onnx
from statten_hw.export import onnx_integer as OI
from statten_hw.export.onnx_float import ort_session
from statten_hw.ir import lower
from statten_hw.quant import quantize, run_integer
from statten_hw.quant.fixed_point import decay, requant

sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
from ir_nets import SMALL, small_input, small_model  # noqa: E402


def _compare(qg, x, tmp_path, name="model", arithmetic="int64"):
    """Export with spike outputs, run in onnxruntime, assert bit-exact equality with run_integer."""
    ref = run_integer(qg, x)
    x_int = OI.quantize_input(qg, x)
    path = export_integer_onnx(qg, tmp_path / f"{name}.onnx", batch_size=x.shape[0], with_spikes=True,
                               arithmetic=arithmetic)
    assert path == tmp_path / f"{name}.onnx" and path.is_file()
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Loop", "Scan", "If", "Conv"}, ops
    assert {"GreaterOrEqual", "Where", "Clip", "Div", "MatMul"} <= ops
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.INT64
    outs = OI.run_integer_onnx(path, x_int)
    logits = outs[OI.output_name(qg)]
    assert logits.dtype == np.int64
    assert np.array_equal(logits, ref.logits_int.numpy())
    lifs = qg.lif_nodes
    assert set(outs) == {OI.output_name(qg)} | {OI.SPIKES_PREFIX + n for n in lifs}
    for n in lifs:
        assert np.array_equal(outs[OI.SPIKES_PREFIX + n], ref.values[n].numpy()), n
    return ref, outs


# Every attention mode, DVS (events input, DVS pools), TET (per-step output), ternary V (A2OS2A).
@pytest.mark.parametrize("key", list(SMALL))
def test_small_networks_bit_exact(key, tmp_path):
    model = small_model(key)
    x = small_input(model)
    qg = quantize(lower(model), x)
    ref, _ = _compare(qg, x, tmp_path, key)
    assert any(int(ref.values[n].abs().sum()) > 0 for n in qg.lif_nodes)  # spikes are not all zero


@pytest.mark.parametrize("key", ["statten", "sdsa_dvs", "ssa", "n_statten"])
def test_double_arithmetic_bit_exact(key, tmp_path):
    model = small_model(key)
    x = small_input(model)
    _compare(quantize(lower(model), x), x, tmp_path, key, arithmetic="double")


@pytest.mark.parametrize("key", ["statten", "a2os2a", "sdsa"])
def test_saturation_bit_exact(key, tmp_path):
    """state_bits 10: many accumulators/membranes saturate; the Clip must match the executor's."""
    model = small_model(key)
    x = small_input(model)
    qg = quantize(lower(model), x, state_bits=10)
    ref, _ = _compare(qg, x, tmp_path, key)
    assert sum(ref.overflows.values()) > 0


def test_official_fixture_bit_exact(official_name, tmp_path):
    model = load_checkpoint(official_checkpoint(official_name)).eval()
    x = official_expected(official_name)["inputs"]
    qg = quantize(lower(model, encoding="events" if x.dim() == 5 else None), x)  # calibrated on its own inputs
    ref, _ = _compare(qg, x, tmp_path, official_name)
    assert any(int(ref.values[n].abs().sum()) > 0 for n in qg.lif_nodes)


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_embedded_model_bit_exact(name, tmp_path):
    _, graph, calib, (x, _) = embedded(name)
    qg = quantize(graph, calib[:256])  # as statten-hw export
    ref, _ = _compare(qg, x[:16], tmp_path, name)
    assert any(int(ref.values[n].abs().sum()) > 0 for n in qg.lif_nodes)


def test_quantize_input_is_run_integers_boundary():
    model = small_model("statten")
    x = small_input(model)
    qg = quantize(lower(model), x)
    x_int = OI.quantize_input(qg, x)
    assert x_int.dtype == torch.int64 and tuple(x_int.shape) == OI.input_shape(qg, x.shape[0])
    a, b = run_integer(qg, x), run_integer(qg, x_int)
    assert all(torch.equal(a.values[n], b.values[n]) for n in a.values)
    assert torch.equal(a.values["input"][0], x_int)  # direct encoding: the same frame every step
    assert torch.equal(OI.quantize_input(qg, x_int), x_int)  # integer input is taken as quantized


def test_integer_levels_beyond_the_input_bits_are_clipped_by_the_file_as_by_the_reference():
    """DVS event counts given as int64 (some above 255, some negative) straight into the ONNX file: the
    file clips them at its input as `run_integer` does, so every layer's spikes agree (before, 2 of 12
    LIF layers differed)."""
    model = small_model("statten_dvs_tet")
    qg = quantize(lower(model), small_input(model))
    x = (small_input(model, seed=5) * 120).to(torch.int64)
    x[0, 0, 0, 0, :3] = -7
    assert int(x.max()) > 255
    ref = run_integer(qg, x)
    outs = OI.run_integer_onnx(OI.build_integer_onnx(qg, x.shape[0], with_spikes=True).SerializeToString(), x)
    assert all(np.array_equal(outs["spikes:" + n], ref.values[n].numpy()) for n in qg.lif_nodes)
    assert torch.equal(OI.quantize_input(qg, x), x.clamp(0, 255))


def _run_tiny(build, x: np.ndarray) -> np.ndarray:
    """Run a one-input graph built by ``build(builder, 'inp') -> out name`` on int64 ``x``."""
    b = OI._Builder("int64")
    out = build(b, "inp")
    b.op("Identity", [out], out="y")
    g = helper.make_graph(b.nodes, "t", [helper.make_tensor_value_info("inp", TensorProto.INT64, list(x.shape))],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, list(x.shape))], initializer=b.inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OI.OPSET)])
    onnx.checker.check_model(m, full_check=True)
    return ort_session(m.SerializeToString()).run(None, {"inp": x})[0]


def test_integer_div_truncates_and_shift_floors_on_negatives():
    v = np.array([-8193, -7, -4097, -4096, -4095, -1, 0, 1, 4095, 4096, 8193, -(1 << 22) + 1], dtype=np.int64)
    # Lava's decay (sign-magnitude shift, toward zero) for several dv
    for dv in (0, 1, 2048, 3000, 4096):
        got = _run_tiny(lambda b, x: b.op("Div", [b.op("Mul", [x, b.const(4096 - dv)]), b.const(4096)]), v)
        assert np.array_equal(got, decay(torch.from_numpy(v), dv).numpy()), dv
    # requant: arithmetic shift (floor), round half up
    for mult, shift in ((1, 0), (3, 1), (12345, 14), (32767, 20)):
        got = _run_tiny(lambda b, x: b.requant(x, mult, shift, 1 << 23), v)
        assert np.array_equal(got, requant(torch.from_numpy(v), mult, shift).numpy()), (mult, shift)


def test_exactness_bounds_refused_and_nothing_written(tmp_path):
    # float64 products: refused once terms · max|a| · max|b| reaches 2**53 (int64: 2**63)
    with pytest.raises(ValueError, match="2\\*\\*53"):
        OI._Builder("double").matmul("a", "b", 64, 1 << 23, 1 << 24, "attn")
    OI._Builder("int64").matmul("a", "b", 64, 1 << 23, 1 << 24, "attn")  # fine in int64
    with pytest.raises(ValueError, match="2\\*\\*63"):
        OI._Builder("int64").matmul("a", "b", 1 << 20, 1 << 23, 1 << 24, "attn")
    # end to end: 48-bit streams times a requant multiplier cannot be bounded inside int64; quantize
    # refuses that graph already (the reference executor computes in int64 too)
    model = small_model("statten")
    x = small_input(model)
    with pytest.raises(QuantizationOverflow, match="requantization product"):
        quantize(lower(model), x, weight_bits=16, state_bits=48)
    qg = quantize(lower(model), x, weight_bits=16)
    path = tmp_path / "big.onnx"
    with pytest.raises(ValueError, match="batch_size"):
        export_integer_onnx(qg, path, batch_size=0)
    with pytest.raises(ValueError, match="arithmetic"):
        export_integer_onnx(qg, path, arithmetic="float32")
    assert not path.exists()


def test_plain_export_and_batch_size(tmp_path):
    model = small_model("sdsa")
    x = small_input(model, batch=3)
    qg = quantize(lower(model), x)
    path = export_integer_onnx(qg, tmp_path / "plain.onnx", batch_size=3)
    outs = OI.run_integer_onnx(path, OI.quantize_input(qg, x))
    assert list(outs) == [OI.output_name(qg)]
    assert np.array_equal(outs[OI.output_name(qg)], run_integer(qg, x).logits_int.numpy())
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["statten_hw.kind"] == "integer" and float(meta["statten_hw.logits_scale"]) == qg.scale("output")


@pytest.mark.parametrize("ternary", [False, True])
def test_lif_matches_executor_on_signed_currents(ternary):
    """Negative membranes (decay toward zero), saturation and ternary -1 spikes, against lif_integer."""
    from statten_hw.quant.execute import _Ctx, lif_integer
    from statten_hw.quant.quantize import QLIF

    gen = torch.Generator().manual_seed(0)
    X = torch.randint(-900, 900, (6, 3, 40), generator=gen, dtype=torch.int64)
    op = QLIF(threshold=700, dv=1500, ternary=ternary, state_scale=1.0)
    ref = lif_integer(X, op, _Ctx(11, False), "lif")  # 11 bits: cap 1023, saturates
    got = _run_tiny(lambda b, x: b.lif(x, 6, op, 1023, "lif"), X.numpy())
    assert np.array_equal(got, ref.numpy())
    assert (ref == -1).any() == ternary and (ref == 1).any()


def test_graph_quantized_for_a_16_bit_target_bit_exact(tmp_path):
    """The embedded model quantized for layerwise's formats clips thousands of values at its 16-bit
    state; onnxruntime clips the same ones."""
    from statten_hw.data import load_dataset
    from statten_hw.pipeline import prepare

    qg = prepare(None, "layerwise", precision="target").qgraph
    x = load_dataset("digits", split="test")[0][:32]
    ref, _ = _compare(qg, x, tmp_path, "layerwise")
    assert qg.state_bits == 16 and sum(ref.overflows.values()) > 0
