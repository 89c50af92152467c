"""Integer contract: quantizer, integer executor, float/integer comparison."""
from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from statten_hw.errors import QuantizationOverflow, UnsupportedLayer
from statten_hw.ir import lower, nodes as ir
from statten_hw.ir.graph import add_op, new_graph
from statten_hw.ir.passes import run_pipeline
from statten_hw.quant import WEIGHT_BITS, STATE_BITS, DECAY_BITS, compare_float_integer, quantize, run_integer, saturate
from statten_hw.quant.fixed_point import decay, requant, requant_params
from statten_hw.ir.execute_float import peak_live_elements, run_float
from statten_hw.quant.quantize import QConv2d, QLIF, QLinear, calibration_peaks

sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
from ir_nets import small_input, small_model  # noqa: E402

F32 = np.float32


def _linear_lif_graph(lif: ir.LIF | None = None, bn: bool = False):
    g = new_graph()
    x = add_op(g, "input", ir.Input(shape=(3,), timesteps=4), "")
    w = np.array([[1.984375, 0.5, -0.359375]], dtype=F32)  # 127/64, 32/64, -23/64: exact binary
    x = add_op(g, "fc", ir.Linear(weight=w, bias=np.array([0.25], dtype=F32)), "", x=x)
    if bn:
        x = add_op(g, "relu", ir.ReLU(), "", x=x)
        one = np.ones(1, F32)
        x = add_op(g, "bn", ir.BatchNorm(gamma=one, beta=one, mean=one, var=one, channel_axis=0), "", x=x)
    x = add_op(g, "lif", lif or ir.LIF(threshold=1.0), "", x=x)
    add_op(g, "output", ir.Output(per_step=True), "", x=x)
    return run_pipeline(g)


def test_constants():
    assert (WEIGHT_BITS, STATE_BITS, DECAY_BITS) == (8, 24, 12)


def test_hand_derived_linear_lif():
    # max|w| = 127/64 -> s_w = 1/64 exactly; W_int = [127, 32, -23]; b_int = round(0.25*64) = 16.
    # Spike inputs are exact (scale 1). LIF tau 2, theta 1: state in units s_w/2 = 1/128,
    # theta_int = ceil(2*1/(1/64)) = 128, H = decay(V, 2048) + X = sign(V)(|V|>>1) + X.
    #   [0,1,0]: X = 32+16 = 48:    H = 48, 72, 84, 90          -> never fires      0 0 0 0
    #   [1,0,0]: X = 127+16 = 143:  H = 143 (fire, V=0) ...     -> fires every step 1 1 1 1
    #   [1,0,1]: X = 127-23+16 = 120: H = 120, 60+120=180 fire, 120, 180 fire ->   0 1 0 1
    #   [0,0,1]: X = -23+16 = -7:   H = -7, -3-7=-10, -5-7=-12, -6-7=-13 (toward zero) 0 0 0 0
    g = _linear_lif_graph()
    x = torch.tensor([[0, 1, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]], dtype=torch.float32)
    qg = quantize(g, x, fraction_bits=0)
    fc, lif = qg.qop("fc"), qg.qop("lif")
    assert isinstance(fc, QLinear) and fc.weight.tolist() == [[127, 32, -23]] and fc.bias.tolist() == [16]
    assert isinstance(lif, QLIF) and (lif.threshold, lif.dv) == (128, 2048) and qg.scale("fc") == 1 / 64
    r = run_integer(qg, x)
    assert r.values["fc"][:, :, 0].T.tolist() == [[48] * 4, [143] * 4, [120] * 4, [-7] * 4]
    assert r.values["lif"][:, :, 0].T.tolist() == [[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]]
    assert decay(torch.tensor([-7, 7, -1, 1]), 2048).tolist() == [-3, 3, 0, 0]  # Lava sign-magnitude


def test_saturate_and_requant():
    v = torch.tensor([-200, -127, 0, 127, 128], dtype=torch.int64)
    clipped, mask = saturate(v, 8, strict=False)
    assert clipped.tolist() == [-127, -127, 0, 127, 127] and mask.tolist() == [True, False, False, False, True]
    with pytest.raises(QuantizationOverflow) as e:
        saturate(v, 8, strict=True, layer="l", quantity="membrane")
    assert (e.value.layer, e.value.value, e.value.bits) == ("l", -200, 8)
    m, s = requant_params(0.3)
    assert requant(torch.tensor([1000], dtype=torch.int64), m, s).item() == 300


def test_hand_derived_fraction_bits():
    # The same network with the sums 6 bits finer (Loihi's weight exponent): calibration peak 143
    # weight steps takes 8 bits, 24 - sign - 2 headroom - 1 (LIF) - 8 = 12 >= 6, so weight_exp = 6.
    # W = [127, 32, -23] << 6, b_int = round(0.25 * 4096) = 1024, theta_int = ceil(2 / (1/4096)) = 8192:
    # every value is 64x the coarse one, except where the coarse decay truncated an odd state:
    #   [0,0,1]: X = -448: H = -448, -224-448 = -672, -336-448 = -784, -392-448 = -840 (coarse: -13·64 = -832)
    g = _linear_lif_graph()
    x = torch.tensor([[0, 1, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]], dtype=torch.float32)
    qg = quantize(g, x)
    fc, lif = qg.qop("fc"), qg.qop("lif")
    assert fc.weight_exp == 6 and fc.mantissa.tolist() == [[127, 32, -23]] and fc.bias.tolist() == [1024]
    assert fc.weight.tolist() == [[127 * 64, 32 * 64, -23 * 64]] and lif.threshold == 8192
    r = run_integer(qg, x)
    assert r.values["fc"][:, :, 0].T.tolist() == [[3072] * 4, [9152] * 4, [7680] * 4, [-448] * 4]
    assert r.values["lif"][:, :, 0].T.tolist() == [[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]]
    assert decay(torch.tensor([-448, -672, -784]), 2048).tolist() == [-224, -336, -392]


def test_fraction_bits_shrink_to_fit_the_state(statten):
    # fewer state bits leave fewer bits below the weight LSB; never a negative exponent
    _, g, x = statten
    exps = {bits: [qg.qop(n).weight_exp for n in qg.graph if isinstance(qg.qop(n), (QConv2d, QLinear))]
            for bits in (24, 14, 8) for qg in [quantize(g, x, state_bits=bits)]}
    assert max(exps[24]) == 6 and all(a >= b >= c >= 0 for a, b, c in zip(exps[24], exps[14], exps[8]))
    assert min(exps[8]) == 0 and exps[14] != exps[24]
    with pytest.raises(ValueError, match="fraction_bits"):
        quantize(g, x, fraction_bits=-1)


@pytest.fixture(scope="module")
def statten():
    model = small_model("statten")
    x = small_input(model, batch=8)
    return model, lower(model), x


def test_integer_only_and_deterministic(statten):
    _, g, x = statten
    qg = quantize(g, x)
    a, b = run_integer(qg, x), run_integer(qg, x)
    assert all(v.dtype == torch.int64 for v in a.values.values())
    assert all(torch.equal(a.values[n], b.values[n]) for n in a.values)
    assert a.logits_int.dtype == torch.int64 and a.logits_int.shape == (8, 5)
    for n in qg.lif_nodes:
        assert set(a.values[n].unique().tolist()) <= {-1, 0, 1}
    for n in qg.graph:
        op = qg.qop(n)
        if isinstance(op, (QConv2d, QLinear)):
            assert op.weight.dtype == np.int64 and np.abs(op.mantissa).max() <= 127 and op.bias.dtype == np.int64
            assert np.array_equal(op.mantissa << op.weight_exp, op.weight) and 0 <= op.weight_exp <= 6
    assert all(c == 0 for c in a.overflows.values())
    assert all(isinstance(s, float) for s in qg.edge_scales.values())


def test_overflow_flagged_and_strict(statten):
    _, g, x = statten
    qg = quantize(g, x, state_bits=8)
    r = run_integer(qg, x)
    assert sum(r.overflows.values()) > 0
    with pytest.raises(QuantizationOverflow) as e:
        run_integer(qg, x, strict=True)
    assert e.value.bits == 8 and e.value.layer in qg.graph


@pytest.mark.parametrize("bits", [1, 2, 16])
def test_weight_bits_configurable(statten, bits):
    _, g, x = statten
    qg = quantize(g, x, weight_bits=bits)
    conv = qg.qop("patch_embed.proj_conv")
    assert np.abs(conv.mantissa).max() == max(1, 2 ** (bits - 1) - 1)
    assert run_integer(qg, x).logits_int.shape == (8, 5)


@pytest.mark.parametrize("bits", [0, 17])
def test_weight_bits_out_of_range(statten, bits):
    with pytest.raises(ValueError, match="weight_bits"):
        quantize(statten[1], statten[2], weight_bits=bits)


@pytest.mark.parametrize("key", ["statten", "sdsa", "statten_mlp_res", "a2os2a", "sdsa_dvs", "ssa"])
def test_spike_agreement_grows_with_bits(key):
    model = small_model(key)
    x = small_input(model, batch=8)
    g = lower(model)
    y = torch.zeros(8, dtype=torch.long)
    agree = [compare_float_integer(model, quantize(g, x, weight_bits=b), x, y)["mean_spike_agreement"]
             for b in (4, 8, 12)]
    assert agree[1] > 0.95
    assert agree[0] <= agree[1] <= agree[2]


def test_unsupported_kinds_raise():
    with pytest.raises(UnsupportedLayer, match="hard reset"):
        quantize(_linear_lif_graph(ir.LIF(threshold=1.0, reset="soft")), torch.ones(2, 3))
    with pytest.raises(UnsupportedLayer, match="folding"):
        quantize(_linear_lif_graph(bn=True), torch.ones(2, 3))


def test_embedded_digits_model_within_one_point():
    from statten_hw import load_checkpoint
    from statten_hw.data import load_digits_split
    from statten_hw.defaults import default_checkpoint
    model = load_checkpoint(default_checkpoint()).eval()
    x_train, _ = load_digits_split("digits", "train")
    x, y = load_digits_split("digits", "test")
    qg = quantize(lower(model), x_train[:256])
    report = compare_float_integer(model, qg, x, y)
    print(f"digits: float {report['float_accuracy']:.4f} int8 {report['integer_accuracy']:.4f} "
          f"spike agreement {report['mean_spike_agreement']:.4f}")
    assert abs(report["float_accuracy"] - report["integer_accuracy"]) <= 0.01


def test_a_state_width_whose_rescaling_leaves_int64_is_refused():
    """The embedded model's patch-embedding residual add rescales its branch by a multiplier of about
    2^24 (its scale is that much coarser than the sum's): with 44-bit state, a value at the bound times
    it passes 2^63, so the int64 executors would wrap. Refused at quantize time, naming the node; every
    multiplier quantize kept at 40 bits is checked here against the int64 range independently."""
    from statten_hw.defaults import default_checkpoint
    from statten_hw.data import load_dataset
    from statten_hw.models import load_checkpoint
    from statten_hw.quant.fixed_point import limit
    from statten_hw.quant.quantize import QAdd, QMean

    graph = lower(load_checkpoint(default_checkpoint()))
    x = load_dataset("digits", split="train")[0][:64]
    with pytest.raises(QuantizationOverflow, match="'patch_embed.rpe_add': requantization product") as info:
        quantize(graph, x, state_bits=44)
    assert info.value.value >= 2 ** 63
    qg = quantize(graph, x, state_bits=40)
    rescales = [(limit(40), rq) for n in qg.graph for op in [qg.qop(n)] if isinstance(op, QAdd)
                for rq in (op.lhs_rq, op.rhs_rq)]
    rescales += [(op.count * limit(40), (op.mult, op.shift)) for n in qg.graph for op in [qg.qop(n)]
                 if isinstance(op, QMean) and op.mult is not None]
    assert rescales and all(bound * m + 2 ** max(s - 1, 0) < 2 ** 63 for bound, (m, s) in rescales)


def _one_linear(weight, calib, **options):
    g = new_graph()
    x = add_op(g, "input", ir.Input(shape=(1, 1, len(weight[0])), timesteps=1, encoding="direct"), "")
    y = add_op(g, "fc", ir.Linear(weight=np.asarray(weight, np.float32), bias=None), "", x=x)
    add_op(g, "output", ir.Output(per_step=True), "", x=y)
    return quantize(run_pipeline(g), torch.tensor([[[calib]]], dtype=torch.float32), **options)


def test_inputs_given_as_integer_levels_meet_the_same_sensor_clamp():
    """[300, -7] as floats and as int64 levels: both clipped to the unsigned 8-bit sensor range."""
    qg = _one_linear([[1.0, 0.5]], [3.0, 0.0])
    op = qg.qop("fc")
    expected = int(op.weight[0, 0]) * 255 + int(op.bias[0])  # [255, 0] after the clamp
    for x in (torch.tensor([[[[300.0, -7.0]]]]), torch.tensor([[[[300, -7]]]])):
        assert run_integer(qg, x).logits_int.flatten().tolist() == [expected]


def test_a_sum_shifted_by_the_weight_exponent_saturates_instead_of_wrapping():
    """A 16-bit weight row [32767, 1] with exponent 2^16 on graded inputs near 2^37: the exact sum passes
    2^63 (int64 would wrap, even flip the sign); it must saturate at the 48-bit state, counted, and strict
    mode must refuse. The inputs are a graded layer's values, handed to the executor's linear kernel."""
    from statten_hw.quant.execute import _Ctx, _linear

    qg = _one_linear([[32767.0, 1.0]], [1.0, 1.0], weight_bits=16, state_bits=48, fraction_bits=16)
    op = qg.qop("fc")
    assert op.weight_exp == 16
    cap = (1 << 47) - 1
    for a, b in [(1 << 33, (1 << 33) + 5), (1 << 37, 0), (-(1 << 37), 3)]:
        exact = (int(op.mantissa[0, 0]) * a + int(op.mantissa[0, 1]) * b) * (1 << 16) + int(op.bias[0])
        assert abs(exact) >= 1 << 63
        ctx = _Ctx(48, strict=False)
        got = _linear(op, {"x": torch.tensor([[[[a, b]]]])}, None, ctx, "fc")
        assert got.flatten().tolist() == [max(-cap, min(cap, exact))] and ctx.overflows["fc"] == 1
        with pytest.raises(QuantizationOverflow):
            _linear(op, {"x": torch.tensor([[[[a, b]]]])}, None, _Ctx(48, strict=True), "fc")


def test_a_product_of_two_wide_states_saturates_instead_of_wrapping():
    from statten_hw.quant.execute import _Ctx, _mul

    cap = (1 << 47) - 1
    a = torch.tensor([127 << 32, -(1 << 40), 1 << 20, 0, cap])
    b = torch.tensor([127 << 32, 1 << 40, 3, cap, 1])
    ctx = _Ctx(48, strict=False)
    got = _mul(None, {"lhs": a, "rhs": b}, None, ctx, "mul").tolist()
    assert got == [max(-cap, min(cap, int(x) * int(y))) for x, y in zip(a, b)]
    assert ctx.overflows["mul"] == 2


def test_a_nan_input_is_refused_alike_by_the_reference_and_the_onnx_boundary():
    """Review finding: run_integer made NaN the level -2^63 and failed later on a sum past 2^53 (a
    GraphError naming a conv); the ONNX boundary clipped it to a level and ran."""
    import sys
    from pathlib import Path

    from statten_hw.errors import InputError
    from statten_hw.export.onnx_integer import quantize_input
    from statten_hw.ir import lower
    from statten_hw.quant import quantize, run_integer

    sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
    from ir_nets import small_input, small_model

    model = small_model("statten")
    x = small_input(model)
    qg = quantize(lower(model), x)
    x = x.clone()
    x.view(-1)[:3] = float("nan")
    for run in (lambda: run_integer(qg, x), lambda: quantize_input(qg, x)):
        with pytest.raises(InputError, match=r"input: 3 NaN value\(s\)"):
            run()
    x.view(-1)[:3] = float("inf")  # clips to the top level, in both
    assert torch.equal(run_integer(qg, x).values[qg.input_node][0], quantize_input(qg, x))


def _linear_lif_with(weight: float = 1.0, beta: float = 1.0):
    """`_linear_lif_graph` with a BN folded into fc, its weights set to ``weight`` and its shift to ``beta``."""
    g = _linear_lif_graph(bn=False)
    fc = g.nodes["fc"]["op"]
    g.nodes["fc"]["op"] = ir.Linear(weight=np.full_like(fc.weight, weight), bias=np.full_like(fc.bias, beta))
    return g


@pytest.mark.parametrize("weight, beta, x, quantity", [
    (1.0, 3e38, 1.0, "integer bias"),  # was cast to int64 as -2^63: a bias of the wrong sign, exported
    (1e-44, 1.0, 1.0, "integer bias"),  # denormal weights: the bias in weight steps leaves int64
    (1.0, 1.0, 3e38, "calibration sum in weight steps"),  # finite data whose sums are not
])
def test_values_beyond_int64_are_refused_naming_the_layer(weight, beta, x, quantity):
    g = _linear_lif_with(weight, beta)
    with pytest.raises(QuantizationOverflow, match=f"layer 'fc': {quantity} = ") as info:
        quantize(g, torch.full((4, 3), x))
    assert not abs(info.value.value) < 2.0 ** 63  # inf, nan or past int64 (no wrapped value)


def _peaks_of_every_output(g, x) -> dict[str, float]:
    """Calibration peaks the way they were taken before slicing: every node's output of the whole
    batch kept, then ``max |value|`` (1.0 for a zero peak)."""
    values = run_float(g, x, keep=True)
    return {n: (float(v.abs().max()) if v.numel() else 0.0) or 1.0 for n, v in values.items()}


@pytest.mark.parametrize("key", ["statten", "sdsa", "ssa"])
def test_calibration_peaks_do_not_depend_on_slicing(key, monkeypatch):
    model = small_model(key)
    g, x = lower(model), small_input(model, batch=5)
    slices = []

    def recording_run(graph, batch, **kwargs):
        slices.append(len(batch))
        return run_float(graph, batch, **kwargs)

    monkeypatch.setattr(sys.modules["statten_hw.quant.quantize"], "run_float", recording_run)
    whole = calibration_peaks(g, x)
    per_sample = 4 * model.config.timesteps * peak_live_elements(g)
    sliced = calibration_peaks(g, x, batch_bytes=2 * per_sample)
    assert slices == [len(x)] + [2] * (len(x) // 2) + [1] * (len(x) % 2)
    assert whole == _peaks_of_every_output(g, x)
    # another batch size may sum in another order (seen in the full suite): float rounding, no more
    assert sliced.keys() == whole.keys()
    assert all(sliced[n] == pytest.approx(whole[n], rel=1e-5) for n in whole)


def test_a_default_calibration_gives_the_integer_graph_of_keeping_every_output(statten, monkeypatch):
    """The batch fits one slice, so the integer graph is the one the keep-everything peaks gave."""
    _, g, x = statten
    one = quantize(g, x)
    monkeypatch.setattr(sys.modules["statten_hw.quant.quantize"], "calibration_peaks", _peaks_of_every_output)
    before = quantize(g, x)
    assert list(one.graph) == list(before.graph)
    for n in one.graph:
        a, b = one.qop(n), before.qop(n)
        assert one.scale(n) == before.scale(n) and type(a) is type(b)
        for f in dataclasses.fields(a):
            u, v = getattr(a, f.name), getattr(b, f.name)
            assert np.array_equal(u, v) if isinstance(u, np.ndarray) else u == v, (n, f.name)


def test_comparison_batches_by_memory_and_counts_the_same(statten, monkeypatch):
    model, g, x = statten
    qgraph = quantize(g, x)
    y = torch.arange(len(x)) % model.config.num_classes
    whole = compare_float_integer(model, qgraph, x, y)
    calls = []
    monkeypatch.setattr("statten_hw.quant.compare.run_integer",
                        lambda q, batch: calls.append(len(batch)) or run_integer(q, batch))
    numel = sum(math.prod(s) for _, s in qgraph.float_graph.nodes(data="shape"))
    monkeypatch.setattr("statten_hw.resources.BATCH_BYTES", 3 * 12 * model.config.timesteps * numel)
    assert compare_float_integer(model, qgraph, x, y) == whole
    assert calls == [3] * (len(x) // 3) + ([len(x) % 3] if len(x) % 3 else [])
