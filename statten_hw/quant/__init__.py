"""Integer contract: quantize a deployment graph, run it with integers only, compare with float.

``quantize(g, calibration_x) -> QuantizedGraph``, ``run_integer(qg, x) -> IntegerRun`` (the golden
reference of every backend), ``compare_float_integer(model, qg, x, y) -> dict``.
"""
from .compare import compare_float_integer
from .execute import IntegerRun, run_integer
from .fixed_point import DECAY_BITS, STATE_BITS, WEIGHT_BITS, saturate
from .quantize import QuantizedGraph, quantize

__all__ = ["DECAY_BITS", "STATE_BITS", "WEIGHT_BITS", "IntegerRun", "QuantizedGraph", "compare_float_integer",
           "quantize", "run_integer", "saturate"]
