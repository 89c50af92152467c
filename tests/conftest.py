"""Shared fixtures: the official-format checkpoints and their expected outputs; the embedded models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# In CI every property test draws the same examples each run, so a failure there means a change broke
# something, not that a new draw found an old bug; the bounded loader fuzz
# (tests/robustness/test_fuzz_loader.py) still draws new seeds. Locally, hypothesis explores freely.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

FIXTURES = Path(__file__).parent / "fixtures" / "official"
OFFICIAL = ["statten_cifar_t4_b2", "statten_dvs_t8_b4_tet", "sdt_cifar_t4", "spikformer_cifar_t4"]


def official_checkpoint(name: str) -> Path:
    return FIXTURES / f"{name}.pth"


def official_expected(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.expected.pt", weights_only=True)


@pytest.fixture(params=OFFICIAL)
def official_name(request) -> str:
    return request.param


#: The embedded models and the data set each was trained on.
EMBEDDED = {"digits_statten": "digits", **{f"digits_seq_b{b}": "digits-seq" for b in (1, 2, 4, 8)}}


def embedded(name: str):
    """``(model in eval mode, lowered graph, calibration split, test split (x, y))`` of an embedded model."""
    from statten_hw import load_checkpoint
    from statten_hw.data import load_digits_split
    from statten_hw.ir import lower

    model = load_checkpoint(Path(__file__).parents[1] / "statten_hw" / "default_models" / f"{name}.pth").eval()
    calib, _ = load_digits_split(EMBEDDED[name], "train")
    test = load_digits_split(EMBEDDED[name], "test")
    return model, lower(model, encoding="events" if calib.dim() == 5 else None), calib, test
