"""Evaluation batches: sized by memory for long T, with the same predictions however they are cut."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from statten_hw.evaluate import FORWARD_BYTES_PER_VALUE, batch_for, predict
from statten_hw.ir import lower
from statten_hw.ir.execute_float import peak_live_elements

sys.path.insert(0, str(Path(__file__).parent / "ir"))
from ir_nets import small_input, small_model  # noqa: E402


def test_long_runs_get_smaller_batches_and_the_same_predictions(monkeypatch):
    model = small_model("statten")
    x = small_input(model, batch=7)
    per_sample = FORWARD_BYTES_PER_VALUE * model.config.timesteps * peak_live_elements(lower(model))
    assert batch_for(model, x) == 128  # the default budget holds the default batch
    whole = predict(model, x)
    monkeypatch.setattr("statten_hw.resources.BATCH_BYTES", 3 * per_sample)
    assert batch_for(model, x) == 3
    seen = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda batch: seen.append(len(batch)) or forward(batch))
    assert torch.equal(predict(model, x), whole)
    assert seen == [3, 3, 1]


def test_a_model_that_does_not_lower_still_predicts():
    """Sizing the batch lowers the model; one in training mode does not lower, and predicted before."""
    model = small_model("statten").train()
    x = small_input(model, batch=3)
    assert batch_for(model, x) == 128
    assert predict(model, x).shape == (3,)
