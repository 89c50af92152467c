"""Shared fixtures: the official-format checkpoints and their expected outputs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures" / "official"
OFFICIAL = ["statten_cifar_t4_b2", "statten_dvs_t8_b4_tet", "sdt_cifar_t4", "spikformer_cifar_t4"]


def official_checkpoint(name: str) -> Path:
    return FIXTURES / f"{name}.pth"


def official_expected(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.expected.pt", weights_only=True)


@pytest.fixture(params=OFFICIAL)
def official_name(request) -> str:
    return request.param
