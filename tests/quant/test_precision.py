"""The integer graph against a target's number formats: what the reports flag, each case derived here
by brute force over the stored integers (which widths and exponents hold them), not by the formula."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from statten_hw.cli import main
from statten_hw.quant.fixed_point import DECAY_BITS
from statten_hw.quant.precision import graph_precision, precision_problems
from statten_hw.quant.quantize import QAttention, QConv2d, QLIF, QLinear
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
    grid = {k * (1 << DECAY_BITS) // (1 << decay_bits) for k in range((1 << decay_bits) + 1)}
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
    assert "warning" not in capsys.readouterr().err
    assert json.loads((tmp_path / "l2" / "report.json").read_text())["precision"]["problems"] == []
