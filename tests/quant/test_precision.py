"""The integer graph against a target's number formats: what the reports flag, and the graph quantized
for a target's formats (``--precision target``); each case derived here by brute force over the stored
integers (which widths and exponents hold them), not by the formula."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from statten_hw.cli import main
from statten_hw.quant.fixed_point import DECAY_BITS
from statten_hw.quant.precision import graph_precision, precision_problems
from statten_hw.quant.quantize import QAttention, QConv2d, QLIF, QLinear
from statten_hw.simulator.lava import _compat
from statten_hw.targets import load_target


@pytest.fixture(scope="module")
def qgraph():
    from statten_hw.pipeline import prepare

    return prepare(None, "loihi2").qgraph


def _synapses(qg):
    return {n: qg.qop(n) for n in qg.graph if isinstance(qg.qop(n), (QConv2d, QLinear))}


def _lifs(qg):
    found = {n: qg.qop(n) for n in qg.graph if isinstance(qg.qop(n), QLIF)}
    found |= {f"{n}.kv_lif": qg.qop(n).kv_lif for n in qg.graph
              if isinstance(qg.qop(n), QAttention) and qg.qop(n).kv_lif is not None}
    return found


def _holds(values: np.ndarray, bits: int) -> bool:
    """Every value lies in the two's-complement range of ``bits``."""
    return bool(np.all((values >= -(2 ** (bits - 1))) & (values <= 2 ** (bits - 1) - 1)))


def _stores(weight: np.ndarray, bits: int, exponents: range) -> bool:
    """Some exponent of the field stores these integer weights exactly as ``bits``-bit mantissas."""
    return any(np.all(weight % (1 << e) == 0) and _holds(weight >> e, bits) for e in exponents)


def _named(problems: list[str]) -> set[str]:
    return {p.split(":")[0] for p in problems}


def test_graph_precision_is_the_widest_number_in_use(qgraph):
    ops = _synapses(qgraph)
    got = graph_precision(qgraph)
    assert got.weight_bits == min(b for b in range(1, 33) if all(_holds(op.mantissa, b) for op in ops.values()))
    assert got.weight_exponent == max(op.weight_exp for op in ops.values()) > 0
    assert (got.state_bits, got.decay_bits) == (qgraph.state_bits, DECAY_BITS)


def test_loihi2_holds_the_embedded_graph(qgraph):
    """8-bit mantissas, exponents 1..6 in Loihi's signed 4-bit field (up to 7), 24-bit state."""
    assert precision_problems(qgraph, load_target("loihi2").precision) == []


def test_layerwise_names_each_layer_its_weights_do_not_fit_and_its_state(qgraph):
    precision = load_target("layerwise").precision  # 8-bit weights, no exponent, 16-bit state, 8-bit decay
    problems = precision_problems(qgraph, precision)
    too_wide = {n for n, op in _synapses(qgraph).items() if not _stores(op.weight, 8, range(1))}
    assert too_wide and _named(problems) == too_wide | {"state"}


@pytest.mark.parametrize("exponent_bits", [2, 3])
def test_an_exponent_field_stores_what_its_range_allows(qgraph, exponent_bits):
    top = (1 << (exponent_bits - 1)) - 1  # signed field
    precision = replace(load_target("loihi2").precision, weight_exponent_bits=exponent_bits)
    want = {n for n, op in _synapses(qgraph).items() if not _stores(op.weight, 8, range(top + 1))}
    assert want and _named(precision_problems(qgraph, precision)) == want


@pytest.mark.parametrize("decay_bits", [0, 1, 2])
def test_a_narrow_decay_names_the_lifs_it_cannot_hold(qgraph, decay_bits):
    precision = replace(load_target("loihi2").precision, decay_bits=decay_bits)
    grid = {k * (1 << DECAY_BITS) // (1 << decay_bits) for k in range(1 << decay_bits)}  # a d-bit field
    want = {n for n, op in _lifs(qgraph).items() if op.dv not in grid}
    assert _named(precision_problems(qgraph, precision)) == want
    assert (want == set(_lifs(qgraph))) == (decay_bits == 0)  # tau = 2 (dv 2048) needs one bit


def test_simulate_warns_and_reports_where_the_target_formats_fall_short(tmp_path, capsys):
    assert main(["simulate", "--target", "layerwise", "--samples", "2", "-o", str(tmp_path / "lw")]) == 0
    err = capsys.readouterr().err
    doc = json.loads((tmp_path / "lw" / "report.json").read_text())
    assert doc["precision"]["problems"] and "warning: the integer graph does not fit layerwise" in err
    assert doc["precision"]["target"]["state_bits"] == 16 and doc["precision"]["graph"]["state_bits"] == 24
    assert "number formats" in (tmp_path / "lw" / "report.md").read_text()
    assert main(["simulate", "--samples", "2", "-o", str(tmp_path / "l2")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "need more axons" in warnings[0]  # loihi2's formats fit, its axon limits do not
    assert json.loads((tmp_path / "l2" / "report.json").read_text())["precision"]["problems"] == []


def test_simulate_counts_and_warns_about_inputs_beyond_the_quantizers_range(tmp_path, capsys):
    """Digits scaled by 40, simulated with the network quantized on plain digits: each pixel above the
    input quantizer's top level plus half a step is clipped there, counted here on the data itself."""
    import torch

    from statten_hw.data import load_dataset

    x, y = load_dataset("digits", split="test")
    x, y = 40 * x[:8], y[:8]
    np.savez(tmp_path / "bright.npz", x=x.numpy(), y=y.numpy())
    assert main(["simulate", "--input", str(tmp_path / "bright.npz"), "-o", str(tmp_path / "sim")]) == 0
    err = capsys.readouterr().err
    precision = json.loads((tmp_path / "sim" / "report.json").read_text())["precision"]
    low, high = precision["input_range"]
    step = high / 255  # the embedded model's input: 8-bit unsigned levels
    expected = int((x > high + step / 2).sum())
    assert low == 0 and expected > 0 and precision["inputs_clipped"] == expected
    assert f"warning: input: {expected:,} value(s) outside the input quantizer's range [0, {high:g}]" in err
    assert f"input: {expected:,} value(s)" in (tmp_path / "sim" / "report.md").read_text()
    # quantized on the bright data itself, nothing is clipped and nothing is said
    assert main(["simulate", "--input", str(tmp_path / "bright.npz"), "--calibration", str(tmp_path / "bright.npz"),
                 "-o", str(tmp_path / "own")]) == 0
    assert "input:" not in capsys.readouterr().err
    assert json.loads((tmp_path / "own" / "report.json").read_text())["precision"]["inputs_clipped"] == 0
    assert torch.equal(load_dataset(str(tmp_path / "bright.npz"), split="test")[0], x)


# --precision target: the graph quantized to the target's formats ------------------------------------

@pytest.fixture(scope="module")
def layerwise_deployment():
    from statten_hw.pipeline import prepare

    return prepare(None, "layerwise", precision="target")


def test_quantized_for_layerwise_every_weight_fits_its_format(layerwise_deployment):
    """8-bit two's-complement weights with no exponent field, 16-bit state: checked weight by weight."""
    qg = layerwise_deployment.qgraph
    assert all(_stores(op.weight, 8, range(1)) for op in _synapses(qg).values())
    assert qg.state_bits == 16
    assert precision_problems(qg, load_target("layerwise").precision) == []


def test_a_narrow_exponent_field_bounds_every_layers_exponent():
    from statten_hw.pipeline import prepare

    loihi2 = load_target("loihi2")
    narrow = replace(loihi2, precision=replace(loihi2.precision, weight_exponent_bits=2))  # exponents up to 1
    qg = prepare(None, narrow, precision="target").qgraph
    assert all(_stores(op.weight, 8, range(2)) and op.weight_exp <= 1 for op in _synapses(qg).values())
    assert max(op.weight_exp for op in _synapses(qg).values()) == 1  # the field is used, not avoided


def test_quantized_for_loihi2_the_graph_is_the_default_one(qgraph):
    """Loihi 2's formats hold the default graph (above), so quantizing for them changes no integer."""
    from statten_hw.pipeline import prepare

    for_target = prepare(None, "loihi2", precision="target").qgraph
    assert for_target.state_bits == qgraph.state_bits
    for name, op in _synapses(qgraph).items():
        other = for_target.qop(name)
        assert np.array_equal(op.weight, other.weight) and np.array_equal(op.bias, other.bias), name


def test_the_report_counts_the_values_a_narrow_state_clips(layerwise_deployment):
    """The first conv's accumulators, summed here in float64 from its stored input and integer weights,
    against the report's count of values clipped to the 16-bit state."""
    import torch

    from statten_hw.data import load_dataset
    from statten_hw.quant import run_integer
    from statten_hw.simulator import simulate

    d = layerwise_deployment
    x = load_dataset(d.dataset, split="test")[0][:64]
    sim = simulate(d, x)
    values = run_integer(d.qgraph, x).values
    conv = "patch_embed.proj_conv"
    op, (source,) = d.qgraph.qop(conv), list(d.qgraph.graph.predecessors(conv))
    z = values[source].flatten(0, 1).to(torch.float64)
    acc = torch.nn.functional.conv2d(z, torch.tensor(op.weight, dtype=torch.float64), stride=op.stride,
                                     padding=op.padding, groups=op.groups)
    acc = acc + torch.tensor(op.bias, dtype=torch.float64).reshape(-1, 1, 1)
    clipped = int((acc.abs() > (1 << 15) - 1).sum())
    assert clipped > 0 and sim.report["precision"]["saturated"][conv] == clipped
    assert sim.report["precision"]["quantized_for"] == "target"


def test_simulate_for_the_targets_formats_reports_no_misfit(tmp_path, capsys):
    out = tmp_path / "lw"
    assert main(["simulate", "--target", "layerwise", "--precision", "target", "--samples", "2", "-o", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    doc = json.loads((out / "report.json").read_text())
    assert doc["precision"]["problems"] == [] and doc["precision"]["graph"]["state_bits"] == 16
    md = (out / "report.md").read_text()
    assert "quantized for the target's (8-bit weights, exponents up to 0, 16-bit state)" in md
    assert "saturated at the 16-bit state" in md and "every weight, state and decay of the integer graph fits" in md


def test_precision_input_errors_are_one_line(tmp_path):
    from statten_hw.errors import InputError
    from statten_hw.pipeline import prepare

    loihi2 = load_target("loihi2")
    tiny_state = replace(loihi2, precision=replace(loihi2.precision, state_bits=3))
    with pytest.raises(InputError, match=r"loihi2: 3-bit state is narrower than the 4 bits"):
        prepare(None, tiny_state, precision="target")
    with pytest.raises(InputError, match="--fraction-bits and quantizing for the target's formats"):
        prepare(None, "loihi2", precision="target", fraction_bits=2)
    with pytest.raises(InputError, match="--precision must be one of graph, target, got 'chip'"):
        prepare(None, "loihi2", precision="chip")
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--precision", "chip", "-o", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and not (tmp_path / "x").exists()


@pytest.mark.lava
@pytest.mark.skipif(not _compat.HAS_LAVA, reason=f"lava-nc not importable: {_compat.LAVA_IMPORT_ERROR!r}")
def test_lava_refuses_a_graph_whose_state_is_not_its_neurons_width(layerwise_deployment):
    """Lava's LIF wraps and clips at 24 bits: a 16-bit graph would clip elsewhere, so it is refused."""
    from statten_hw.data import load_dataset
    from statten_hw.errors import InputError
    from statten_hw.simulator.lava.run import run_lava

    x = load_dataset(layerwise_deployment.dataset, split="test")[0][:1]
    with pytest.raises(InputError, match="Lava backend runs Loihi's 24-bit neurons; this integer graph keeps 16-bit"):
        run_lava(layerwise_deployment.qgraph, x)


def test_a_one_bit_target_takes_the_sign_code():
    """One-bit weights are the quantizer's ±1 sign code (no 0 level): the graph quantized for such a
    target holds only -1 and +1 mantissas, and nothing is reported."""
    from statten_hw.pipeline import prepare

    loihi2 = load_target("loihi2")
    binary = replace(loihi2, precision=replace(loihi2.precision, weight_bits=1))
    qg = prepare(None, binary, bits=1, precision="target").qgraph
    assert all(set(np.unique(op.mantissa)) <= {-1, 1} for op in _synapses(qg).values())
    assert precision_problems(qg, binary.precision) == []


def test_simulate_refuses_bits_wider_than_the_target_stores_in_one_line(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["simulate", "--target", "layerwise", "--precision", "target", "--bits", "12", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--bits 12: layerwise stores 8-bit weights" in err
    assert not out.exists()


def _leaky_mlp():
    """linear -> LIF tau 3 -> linear -> LIF tau 5 -> LIF tau 1.5: decays (1365, 819, 2731 of 4096) that
    no narrow field holds."""
    from statten_hw.ir import nodes as ir, run_pipeline
    from statten_hw.ir.graph import add_op, new_graph

    rng = np.random.default_rng(4)
    g = new_graph()
    x = add_op(g, "input", ir.Input(shape=(6,), timesteps=4, encoding="events"), "")
    x = add_op(g, "fc1", ir.Linear(weight=rng.normal(0, 0.5, (8, 6)).astype(np.float32)), "", x=x)
    x = add_op(g, "lif1", ir.LIF(threshold=0.5, tau=3.0), "", x=x)
    x = add_op(g, "fc2", ir.Linear(weight=rng.normal(0, 0.5, (8, 8)).astype(np.float32)), "", x=x)
    x = add_op(g, "lif2", ir.LIF(threshold=0.5, tau=5.0), "", x=x)
    x = add_op(g, "lif3", ir.LIF(threshold=0.3, tau=1.5), "", x=x)
    add_op(g, "output", ir.Output(per_step=True), "", x=x)
    return run_pipeline(g)


@pytest.mark.parametrize("decay_bits", [0, 2, 5, 8, 9, 11, 12, 32])
def test_quantized_for_a_narrow_decay_field_every_decay_is_the_nearest_it_holds(decay_bits):
    """Each LIF's dv is the value of the field nearest the model's exact 4096 / tau (brute force over
    the field's values, ties up), and nothing about the decay is reported then."""
    import torch
    from fractions import Fraction

    from statten_hw.quant import quantize, run_integer
    from statten_hw.quant.precision import target_quantizer

    precision = replace(load_target("loihi2").precision, decay_bits=decay_bits)
    x = (torch.rand(4, 16, 6, generator=torch.Generator().manual_seed(0)) < 0.4).to(torch.float32)
    qg = quantize(_leaky_mlp(), x, **target_quantizer(precision, 8))
    width = min(decay_bits, DECAY_BITS)
    field = [k << (DECAY_BITS - width) for k in range(1 << width)]  # what a field of that width holds
    for name, tau in (("lif1", 3.0), ("lif2", 5.0), ("lif3", 1.5)):
        exact = Fraction(2 ** DECAY_BITS) / Fraction(tau)
        assert qg.qop(name).dv == min(field, key=lambda dv: (abs(dv - exact), -dv)), name
    assert precision_problems(qg, precision) == []
    run_integer(qg, x)  # the decays on the grid run


def test_without_a_decay_field_the_lifs_do_not_leak():
    """A 0-bit decay field holds dv = 0 only: quantized for it, the embedded model's LIFs (tau 2) and
    an SDSA model's K⊙V neurons keep their membrane, and nothing is reported."""
    from statten_hw.ir import lower
    from statten_hw.pipeline import prepare
    from statten_hw.quant import quantize
    from statten_hw.quant.precision import target_quantizer

    loihi2 = load_target("loihi2")
    no_field = replace(loihi2, precision=replace(loihi2.precision, decay_bits=0))
    qg = prepare(None, no_field, precision="target").qgraph
    assert {op.dv for op in _lifs(qg).values()} == {0}
    assert precision_problems(qg, no_field.precision) == []

    sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
    from ir_nets import small_input, small_model

    model = small_model("sdsa")
    sdsa = quantize(lower(model), small_input(model), **target_quantizer(no_field.precision, 8))
    kv = {n: op for n, op in _lifs(sdsa).items() if n.endswith(".kv_lif")}
    assert kv and all(op.dv == 0 for op in kv.values())


def test_a_12_bit_decay_register_holds_all_but_a_full_reset():
    """A 12-bit register holds dv 0..4095: the default graph's tau = 1 (dv 4096) is reported, and
    quantized for the target it becomes 4095."""
    import torch

    from statten_hw.ir import nodes as ir, run_pipeline
    from statten_hw.ir.graph import add_op, new_graph
    from statten_hw.quant import quantize
    from statten_hw.quant.precision import target_quantizer

    g = new_graph()
    x = add_op(g, "input", ir.Input(shape=(4,), timesteps=2, encoding="events"), "")
    x = add_op(g, "fc", ir.Linear(weight=np.eye(4, dtype=np.float32)), "", x=x)
    x = add_op(g, "lif", ir.LIF(threshold=0.5, tau=1.0), "", x=x)
    add_op(g, "output", ir.Output(per_step=True), "", x=x)
    g, calib = run_pipeline(g), torch.ones(2, 2, 4)
    precision = load_target("loihi2").precision
    default = quantize(g, calib)
    assert default.qop("lif").dv == 4096 and _named(precision_problems(default, precision)) == {"lif"}
    for_target = quantize(g, calib, **target_quantizer(precision, 8))
    assert for_target.qop("lif").dv == 4095 and precision_problems(for_target, precision) == []
