"""Custom Lava processes for the integer ops Lava lacks (spiking attention lives in `attention`).

Each is a `GradedProcess` with its ``fixed_pt`` model; the equations are the integer contract's
(`statten_hw.quant.quantize`), computed per step on int64:

* `MaxPool`   ``max`` over ``kernel`` windows of each channel (padding never wins);
* `Add`       ``sat(requant(lhs, *lhs_rq) + requant(rhs, *rhs_rq))``: residual sums;
* `Mul`       ``sat(lhs · rhs)``: the DVS attention gate;
* `ReLU`      ``max(x, 0)``: A2OS2A's graded K;
* `Mean`      ``sat(requant(Σ_axes x))``, with ``time`` a running sum over the window (its value at
  the last step is the time sum).

``sat`` clips to ``state_bits`` signed bits (the contract's `saturate`).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .graded import GradedProcess, PyGradedModel, graded_in, model_for, requant, sat

#: Max-pool padding: below every 24-bit value, so it never wins.
POOL_PAD = -(1 << 62)


def max_pool(z: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """Max over ``kernel`` windows of the last two axes, ``stride`` apart, after ``padding``."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    z = np.pad(z, [(0, 0)] * (z.ndim - 2) + [(ph, ph), (pw, pw)], constant_values=POOL_PAD)
    return sliding_window_view(z, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :].max(axis=(-1, -2))


class MaxPool(GradedProcess):
    """``kernel``, ``stride``, ``padding`` (pairs over H, W)."""


@model_for(MaxPool)
class PyMaxPoolModel(PyGradedModel):
    x = graded_in()

    def run_spk(self):
        p = self.proc_params
        self.send(max_pool(self.read("x"), p["kernel"], p["stride"], p["padding"]))


class Add(GradedProcess):
    """``lhs_rq``, ``rhs_rq``: ``(M, S)`` requantization of each operand; ``state_bits``."""

    PORTS = ("lhs", "rhs")


@model_for(Add)
class PyAddModel(PyGradedModel):
    lhs = graded_in()
    rhs = graded_in()

    def run_spk(self):
        p = self.proc_params
        total = requant(self.read("lhs"), *p["lhs_rq"]) + requant(self.read("rhs"), *p["rhs_rq"])
        self.send(sat(total, p["state_bits"]))


class Mul(GradedProcess):
    """``state_bits``."""

    PORTS = ("lhs", "rhs")


@model_for(Mul)
class PyMulModel(PyGradedModel):
    lhs = graded_in()
    rhs = graded_in()

    def run_spk(self):
        self.send(sat(self.read("lhs") * self.read("rhs"), self.proc_params["state_bits"]))


class ReLU(GradedProcess):
    """No parameters."""


@model_for(ReLU)
class PyReLUModel(PyGradedModel):
    x = graded_in()

    def run_spk(self):
        self.send(np.maximum(self.read("x"), 0))


class Mean(GradedProcess):
    """``axes`` (consecutive, of the integer shape), ``time``, ``mult``/``shift`` (or None),
    ``state_bits``."""


@model_for(Mean)
class PyMeanModel(PyGradedModel):
    x = graded_in()

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.total = None

    def run_spk(self):
        p = self.proc_params
        z = self.read("x")
        if p["axes"]:
            z = z.sum(axis=tuple(p["axes"]))
        if p["time"]:
            self.total = z if self.local_step() <= 0 or self.total is None else self.total + z
            z = self.total
        if p["mult"] is not None:
            z = requant(z, p["mult"], p["shift"])
        self.send(sat(z, p["state_bits"]))


PROCESS_MODELS = {MaxPool: PyMaxPoolModel, Add: PyAddModel, Mul: PyMulModel, ReLU: PyReLUModel,
                  Mean: PyMeanModel}
