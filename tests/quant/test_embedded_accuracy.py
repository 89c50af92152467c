"""The integer network of every embedded model against its float model on the digits test split.

Float accuracy comes from the PyTorch model itself (``evaluate.accuracy``), the integer one from
``run_integer`` of the graph quantized as ``statten-hw export`` does (256 training samples). The
goal of issue 4 is a loss of at most one point at 8-bit weights.

Why ``digits_seq_b8`` misses it (measured, see the report of this change): no layer drifts. With
the float spikes fed into each integer layer, every LIF flips 0.1-0.4 % of its outputs, all from
8-bit per-layer weight rounding (16-bit weights: under 0.01 %); the spiking dynamics amplify these
flips (a changed K or V spike changes ``KᵀV`` for the whole block, all 8 steps at B = 8), so about
30 of the 450 test predictions change and the net accuracy moves by a few samples either way.
16-bit weights change almost none: the last test shows that on the failing model.

Clipped per-layer scales do not close the gap either (measured, not adopted): picking each layer's
``s_w`` among ``r · max|W|/127``, ``r = 0.20 .. 1.00``, to minimise the calibration pre-activation
error ``Σ ((Ŵ-W)·x + b̂-b)²`` picks ``r = 0.92 .. 1.00``, cuts that error by 5-11 % and the layer-local
LIF flips on held-out training samples by about 6 %, yet still about 30 test predictions change:
b8 then loses 0.67 points but b4 1.56 and the default model 0.44 (weight MSE alike: b4 1.33).
"""
from __future__ import annotations

import pytest
import torch

from statten_hw import load_checkpoint
from statten_hw.data import load_digits_split
from statten_hw.defaults import default_checkpoint, seq_checkpoint
from statten_hw.evaluate import accuracy
from statten_hw.ir import lower
from statten_hw.quant import quantize, run_integer
from statten_hw.quant.fixed_point import grid_levels

CALIBRATION_SAMPLES = 256  # as ``statten-hw export`` (--calibration-samples)
ONE_POINT = 0.01
B8_GAP = ("8-bit per-layer weight rounding, amplified by the B = 8 block attention, costs 5 of 450 "
          "samples (1.11 points); not a drifting layer (module docstring)")

MODELS = {
    "digits_statten": (default_checkpoint, "digits"),
    "digits_seq_b1": (lambda: seq_checkpoint(1), "digits-seq"),
    "digits_seq_b2": (lambda: seq_checkpoint(2), "digits-seq"),
    "digits_seq_b4": (lambda: seq_checkpoint(4), "digits-seq"),
    "digits_seq_b8": (lambda: seq_checkpoint(8), "digits-seq"),
}


def _float_and_integer(name: str, weight_bits: int, state_bits: int = 24) -> tuple[float, float]:
    path, dataset = MODELS[name]
    model = load_checkpoint(path()).eval()
    calib, _ = load_digits_split(dataset, "train")
    x, y = load_digits_split(dataset, "test")
    graph = lower(model, encoding="events" if x.dim() == 5 else None)
    qgraph = quantize(graph, calib[:CALIBRATION_SAMPLES], weight_bits=weight_bits, state_bits=state_bits)
    run = run_integer(qgraph, x)
    assert sum(run.overflows.values()) == 0
    logits = run.logits_int.sum(0) if run.logits_int.dim() == 3 else run.logits_int
    return accuracy(model, x, y), float((logits.argmax(-1) == y).to(torch.float64).mean())


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=B8_GAP))
                                  if n == "digits_seq_b8" else n for n in MODELS])
def test_8bit_integer_loses_at_most_one_point(name):
    float_acc, int_acc = _float_and_integer(name, weight_bits=8)
    assert int_acc >= float_acc - ONE_POINT, f"{name}: float {float_acc:.4f}, integer {int_acc:.4f}"


def test_weight_precision_is_what_b8_lacks():
    # 16-bit weights make the state unit 256x finer: give the membrane the bits that takes
    float_acc, int_acc = _float_and_integer("digits_seq_b8", weight_bits=16, state_bits=32)
    assert abs(int_acc - float_acc) <= ONE_POINT / 2, f"float {float_acc:.4f}, integer {int_acc:.4f}"


def test_digits_input_is_quantized_without_loss():
    # pixels are k/16 (k = 0..16): 240 is the largest L <= 255 that 16 divides, q = 15k exactly
    x, _ = load_digits_split("digits", "train")
    assert grid_levels(x, 255) == 240
    assert grid_levels(torch.tensor([0.3, 1.0]), 255) == 250  # 0.3·L is whole for L a multiple of 10
    noise = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    assert grid_levels(noise, 255) == 255  # no grid: the plain max/255
    model = load_checkpoint(default_checkpoint()).eval()
    qgraph = quantize(lower(model), x[:CALIBRATION_SAMPLES])
    run = run_integer(qgraph, x[:8])
    assert torch.equal(run.values["input"][0], (x[:8].to(torch.float64) * 240).to(torch.int64))
