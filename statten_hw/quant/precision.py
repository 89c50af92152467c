"""Whether an integer graph's numbers fit a target's formats (``[precision]`` of its file).

By default the graph is quantized with the command's ``--bits`` mantissas, per-layer weight
exponents and 24-bit state whatever the target (`quantize`); its figures are exact for a target whose
formats hold those numbers, and describe another one only approximately. So every simulation report
names where they do not fit, layer by layer. `target_quantizer` gives the `quantize` settings whose
graph a target's formats hold instead (``--precision target``), its decays included:

* weights: a synapse stores ``mantissa`` in ``weight_bits`` (two's complement; one bit holds the
  quantizer's ``±1`` sign code) and the layer's
  exponent in a signed ``weight_exponent_bits`` field (``-2^(e-1) .. 2^(e-1) - 1``; 0 bits: no
  exponent). A layer whose exponent is beyond the field's largest ``E`` stores ``mantissa << (exp - E)``
  instead (exact: its low bits are 0), which then needs ``exp - E`` more bits;
* state: membranes and sums saturate at ``state_bits`` in the graph, so a narrower target state would
  clip where the graph does not;
* decay: a LIF's ``dv`` has 12 fractional bits (Lava's resolution); with ``decay_bits`` d the target
  holds the multiples of ``2^(12 - d)`` below 4096 only (`quantize.decay_field`; quantized for the
  target, each ``dv`` is the nearest of them: `quantize.decay_on_grid`). The graph's ``decay_bits``
  is that resolution, 12, whatever values its decays take.
"""
from __future__ import annotations

import copy
import weakref
from dataclasses import asdict, dataclass

import numpy as np

from statten_hw.errors import InputError

from .execute import execution_plan
from .fixed_point import DECAY_BITS
from .quantize import FRACTION_BITS, MAX_STATE_BITS, MIN_STATE_BITS, QAttention, QConv2d, QLIF, QLinear, decay_field


@dataclass(frozen=True)
class GraphPrecision:
    """The widest numbers an integer graph uses: mantissa bits (signed), largest weight exponent,
    state bits and the decay resolution (bits)."""

    weight_bits: int
    weight_exponent: int
    state_bits: int
    decay_bits: int


def signed_bits(peak: int) -> int:
    """Two's-complement bits that hold ``-peak .. peak``."""
    return int(peak).bit_length() + 1


def mantissa_bits(mantissa: np.ndarray) -> int:
    """Bits that store these mantissas: two's complement, or 1 for the quantizer's ``±1`` sign code
    (`fixed_point.quantize_symmetric` with one bit: no 0 level)."""
    magnitude = np.abs(mantissa)
    if magnitude.size and np.all(magnitude == 1):
        return 1
    return signed_bits(magnitude.max(initial=0))


def largest_exponent(exponent_bits: int) -> int:
    """The largest value of a signed ``exponent_bits`` field (0 without one)."""
    return (1 << (exponent_bits - 1)) - 1 if exponent_bits > 0 else 0


def _synapses(qgraph):
    """``(node, op)`` of every conv and linear, in the run's order."""
    return [(step.name, step.op) for step in execution_plan(qgraph) if isinstance(step.op, (QConv2d, QLinear))]


def _lifs(qgraph):
    """``(name, op)`` of every LIF, SDSA's K⊙V neurons included (named as their traces are)."""
    for step in execution_plan(qgraph):
        if isinstance(step.op, QLIF):
            yield step.name, step.op
        elif isinstance(step.op, QAttention) and step.op.kv_lif is not None:
            yield f"{step.name}.kv_lif", step.op.kv_lif


def graph_precision(qgraph) -> GraphPrecision:
    synapses = _synapses(qgraph)
    return GraphPrecision(max((mantissa_bits(op.mantissa) for _, op in synapses), default=1),
                          max((op.weight_exp for _, op in synapses), default=0), qgraph.state_bits, DECAY_BITS)


def precision_problems(qgraph, precision) -> list[str]:
    """One line per number of ``qgraph`` that the target's ``precision`` (`targets.schema.Precision`)
    cannot hold exactly (module docstring); empty when everything fits."""
    problems = []
    top_exponent = largest_exponent(precision.weight_exponent_bits)
    for name, op in _synapses(qgraph):
        need = mantissa_bits(op.mantissa) + max(0, op.weight_exp - top_exponent)
        if need > precision.weight_bits:
            problems.append(f"{name}: weights need {need} bits (mantissa << exponent {op.weight_exp}); the target "
                            f"stores {precision.weight_bits}-bit weights with exponents up to {top_exponent}")
    if qgraph.state_bits > precision.state_bits:
        problems.append(f"state: the graph keeps {qgraph.state_bits}-bit membranes and sums; the target's are "
                        f"{precision.state_bits} bits")
    step, largest = decay_field(precision.decay_bits)
    for name, op in _lifs(qgraph):
        if op.dv % step or op.dv > largest:
            problems.append(f"{name}: decay dv = {op.dv}/{1 << DECAY_BITS}; the target's {precision.decay_bits}-bit "
                            f"decay field holds the multiples of {step} up to {largest}")
    return problems


def target_quantizer(precision, bits: int, target: str = "the target") -> dict:
    """`quantize` keyword arguments whose graph fits ``precision`` (a target's formats): ``bits``-bit
    mantissas (refused beyond the target's weight width), sums keeping no more bits below the weight
    LSB than the exponent field reaches (none without one, so no layer needs ``mantissa << exp``),
    the target's state width (the widest the quantizer takes, where the target's is wider) and its
    decay field (decays rounded to what it holds). A one-line `InputError` names the target and the
    format it cannot give."""
    state_bits = min(precision.state_bits, MAX_STATE_BITS)
    if state_bits < MIN_STATE_BITS:
        raise InputError(f"{target}: {precision.state_bits}-bit state is narrower than the {MIN_STATE_BITS} bits an "
                         "integer graph needs; quantize for the graph instead (--precision graph)")
    if bits > precision.weight_bits:
        raise InputError(f"--bits {bits}: {target} stores {precision.weight_bits}-bit weights; quantizing for its "
                         f"formats takes --bits {precision.weight_bits} or fewer")
    return {"weight_bits": bits, "state_bits": state_bits, "decay_bits": min(precision.decay_bits, DECAY_BITS),
            "fraction_bits": min(FRACTION_BITS, largest_exponent(precision.weight_exponent_bits))}


#: Per integer graph (frozen) and target precision: its `precision_section`, made once.
_SECTIONS: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def precision_section(qgraph, precision) -> dict:
    """The report's ``precision``: the graph's widest numbers, the target's formats, and the problems
    (a fresh copy: a report may be edited)."""
    per_target = _SECTIONS.setdefault(qgraph, {})
    if precision not in per_target:
        per_target[precision] = {"graph": asdict(graph_precision(qgraph)), "target": asdict(precision),
                                 "problems": precision_problems(qgraph, precision)}
    return copy.deepcopy(per_target[precision])


def run_clipping(qgraph, run) -> dict:
    """What one integer run (`IntegerRun`) clipped: per node the values saturated at the state width,
    and the input values outside the input quantizer's range (data unlike the data the network was
    quantized on), with that range in the data's units."""
    op = qgraph.qop(qgraph.input_node)
    low, high = op.levels
    return {"saturated": {node: n for node, n in run.overflows.items() if n},
            "inputs_clipped": run.clipped_inputs, "input_range": [low * op.scale, high * op.scale]}


def precision_report(deployment, clipping: dict) -> dict:
    """A simulation report's ``precision``, whichever backend ran: what the integer graph was quantized
    for, where it does not fit the target's formats (`precision_section`), and what the integer run
    of the simulated samples clipped (`run_clipping`)."""
    return {"quantized_for": deployment.precision,
            **precision_section(deployment.qgraph, deployment.target.precision), **clipping}


__all__ = ["GraphPrecision", "graph_precision", "mantissa_bits", "precision_problems", "precision_report",
           "precision_section", "run_clipping", "target_quantizer"]
