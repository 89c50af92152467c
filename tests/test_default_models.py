"""The embedded models ship inside the package, load through the official-format loader, and reach
their accuracy on the held-out digits split."""
import argparse

import pytest
import torch

from statten_hw import load_checkpoint
from statten_hw.cli import main
from statten_hw.data import load_digits_split
from statten_hw.defaults import SEQ_BLOCK_SIZES, default_checkpoint, seq_checkpoint
from statten_hw.evaluate import accuracy

MAX_BYTES = 2 * 1024 * 1024


def test_default_model_reaches_95_percent():
    model = load_checkpoint(default_checkpoint())
    assert model.config.attention == "STAtten"
    x, y = load_digits_split("digits", "test")
    assert accuracy(model, x, y) >= 0.95


@pytest.mark.parametrize("block", SEQ_BLOCK_SIZES)
def test_temporal_family_one_checkpoint_per_block_size(block):
    path = seq_checkpoint(block)
    assert path.stat().st_size <= MAX_BYTES
    model = load_checkpoint(path)
    assert (model.config.timesteps, model.config.block_size) == (8, block)
    x, y = load_digits_split("digits-seq", "test")
    acc = accuracy(model, x, y)
    with torch.serialization.safe_globals([argparse.Namespace]):
        stored = torch.load(path, weights_only=True)["metric"]
    # The training script stored the accuracy it measured; loading must reproduce it.
    assert acc == pytest.approx(stored / 100 if stored > 1 else stored, abs=1e-6)
    assert acc > 0.5


def test_official_format_and_size():
    assert default_checkpoint().stat().st_size <= MAX_BYTES
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(default_checkpoint(), weights_only=True)
    assert {"state_dict", "args", "arch", "epoch", "metric"} <= set(ckpt)
    assert isinstance(ckpt["args"], argparse.Namespace)


def test_cli_without_checkpoint_uses_default(capsys):
    assert main(["eval"]) == 0
    out = capsys.readouterr().out
    assert "digits: 450 samples" in out
