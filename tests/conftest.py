"""Shared fixtures: the official-format checkpoints and their expected outputs; the embedded models."""
from __future__ import annotations

import os
from pathlib import Path

# The official fixtures' logits were computed on a CPU whose oneDNN kernels were AVX2 ones. On an AVX-512
# CPU oneDNN sums float32 convolutions in another order, and a few official spikes sit close enough to
# the threshold to flip (sdt_cifar_t4's MS_SPS_lif2): the official model itself would compute other
# logits there. Bit-exact comparison means the same kernels, so the suite runs oneDNN's AVX2 ones
# (read when oneDNN first runs; a CPU without AVX2 is unaffected). Child processes inherit it.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

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
