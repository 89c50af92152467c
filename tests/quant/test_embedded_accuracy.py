"""The integer network of every embedded model against its float model on the digits test split.

Float accuracy comes from the PyTorch model itself (``evaluate.accuracy``), the integer one from
``run_integer`` of the graph quantized as ``statten-hw export`` does (256 training samples). The
goal of issue 4 is a loss of at most one point at 8-bit weights.

What it took (measured on the float-stage checkpoints, before the quantization-aware stage): the
``digits-seq`` models change 13-26 of 450 predictions under a random weight perturbation of 0.1 %
of the mean weight, so post-training 8-bit quantization changed about 30 predictions each and the
accuracy moved by up to 2.2 points either way (``digits_seq_b8`` lost 1.11). Two causes, each
removed: the state unit (bias rounding and the truncating decay err by half a weight step per step;
with the folded weights already on the 8-bit grid 33 predictions still changed) -> the sums keep up to
6 fraction bits (the weight exponent, ``quantize._fraction_bits``); and the weight rounding itself
-> the shipped models end with 8 epochs of quantization-aware fine-tuning (``quant.aware``,
``examples/train_digits.py``). Both together: 0-9 predictions change.
"""
from __future__ import annotations

import pytest
import torch

from conftest import EMBEDDED, embedded
from statten_hw import load_checkpoint
from statten_hw.data import load_digits_split
from statten_hw.defaults import default_checkpoint
from statten_hw.ir import lower
from statten_hw.quant import quantize, run_integer
from statten_hw.quant.fixed_point import grid_levels
from statten_hw.quant.quantize import FRACTION_BITS

CALIBRATION_SAMPLES = 256  # as ``statten-hw export`` (--calibration-samples)
ONE_POINT = 0.01

def _predictions(name: str, weight_bits: int = 8, fraction_bits: int = FRACTION_BITS):
    """``(labels, float predictions, integer predictions)`` on the test split."""
    model, graph, calib, (x, y) = embedded(name)
    qgraph = quantize(graph, calib[:CALIBRATION_SAMPLES], weight_bits=weight_bits, fraction_bits=fraction_bits)
    run = run_integer(qgraph, x)
    assert sum(run.overflows.values()) == 0
    logits = run.logits_int.sum(0) if run.logits_int.dim() == 3 else run.logits_int
    with torch.no_grad():
        float_pred = model(x).argmax(-1)  # the PyTorch model's own forward
    return y, float_pred, logits.argmax(-1)


def _accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).to(torch.float64).mean())


@pytest.mark.parametrize("name", list(EMBEDDED))
def test_8bit_integer_loses_at_most_one_point(name):
    y, float_pred, int_pred = _predictions(name)
    float_acc, int_acc = _accuracy(float_pred, y), _accuracy(int_pred, y)
    assert int_acc >= float_acc - ONE_POINT, f"{name}: float {float_acc:.4f}, integer {int_acc:.4f}"


def test_fraction_bits_keep_the_integer_decisions_of_the_float_model():
    # b8: its folded weights lie on the 8-bit grid (quantization-aware), so what changes a decision
    # is the state unit alone: one weight step without fraction bits, 1/64 of it with them
    y, float_pred, coarse = _predictions("digits_seq_b8", fraction_bits=0)
    _, _, fine = _predictions("digits_seq_b8")
    changed_coarse, changed_fine = int((coarse != float_pred).sum()), int((fine != float_pred).sum())
    assert changed_fine <= len(y) // 100, f"{changed_fine} of {len(y)} predictions changed with fraction bits"
    assert changed_coarse >= 3 * max(changed_fine, 1), (changed_coarse, changed_fine)


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
