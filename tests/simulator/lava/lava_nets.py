"""Networks for the Lava tests: the small random nets of every attention mode, made to fire, and a
tiny dense net.

With ``tests/ir/ir_nets.small_model`` as it is, the stem's third LIF never fires on random input and
every attention output is zero, so a backend that got attention wrong would still agree with the
integer reference. Multiplying every BatchNorm gain by `GAIN` (before lowering, so the integer
graph is quantized as usual) makes every layer fire; the tests assert that activity.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parents[2] / "ir"))
from ir_nets import small_input, small_model  # noqa: E402

from statten_hw.ir import lower  # noqa: E402
from statten_hw.ir import nodes as ir  # noqa: E402
from statten_hw.ir.graph import add_op, new_graph  # noqa: E402
from statten_hw.ir.passes.infer_shapes import infer_shapes  # noqa: E402
from statten_hw.quant import quantize  # noqa: E402
from statten_hw.quant.quantize import FRACTION_BITS  # noqa: E402

MODES = ("statten", "t_statten", "n_statten", "a2os2a", "sdsa", "ssa")
#: The DVS nets: event-count input (2 polarity channels), STAtten with TET (per-step logits) and SDSA.
DVS = ("statten_dvs_tet", "sdsa_dvs")
GAIN = 4.0


@lru_cache(maxsize=None)
def active_model(key: str) -> torch.nn.Module:
    model = small_model(key)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.weight.mul_(GAIN)
    return model


@lru_cache(maxsize=None)
def active_qgraph(key: str, fraction_bits: int = FRACTION_BITS):
    model = active_model(key)
    return quantize(lower(model), small_input(model, 8), weight_bits=8, fraction_bits=fraction_bits)


def sample(key: str, batch: int) -> torch.Tensor:
    return small_input(active_model(key), batch, seed=3)


def tiny_qgraph(weight_bits: int = 8, fraction_bits: int = FRACTION_BITS):
    """input [6] -> linear -> LIF -> linear -> time mean -> output (six Lava processes), and 2 samples."""
    rng = np.random.default_rng(5)
    g = new_graph()
    add_op(g, "input", ir.Input(shape=(6,), timesteps=4), "")
    add_op(g, "fc1", ir.Linear(weight=rng.normal(size=(8, 6)).astype(np.float32),
                               bias=rng.normal(size=8).astype(np.float32)), "", x="input")
    add_op(g, "lif", ir.LIF(threshold=0.5), "", x="fc1")
    add_op(g, "head", ir.Linear(weight=rng.normal(size=(3, 8)).astype(np.float32)), "", x="lif")
    add_op(g, "time_mean", ir.Mean(time=True), "", x="head")
    add_op(g, "output", ir.Output(), "", x="time_mean")
    infer_shapes(g)
    x = torch.from_numpy(rng.normal(size=(8, 6)).astype(np.float32))
    return quantize(g, x, weight_bits=weight_bits, fraction_bits=fraction_bits), x[:2]
