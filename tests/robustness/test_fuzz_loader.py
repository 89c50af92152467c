"""Fuzzing the checkpoint loader (hypothesis): a file either loads or gives one CheckpointError line.

Base file: the embedded STAtten checkpoint (``digits_statten.pth``, a torch zip of 140 KB).

* ``test_mutated_bytes`` (150 examples): bytes set anywhere, inside the pickle (``data.pkl``) or
  inside the zip's central directory; the file cut short; a run deleted; random bytes inserted.
* ``test_mutated_structure`` (120 examples): the unpickled checkpoint edited, then saved by
  ``torch.save``: training options set to values of any type, tensors replaced by tensors of any
  shape, dtype and content (NaN, Inf), keys dropped, renamed or invented (``block.<13 digits>``),
  top-level entries replaced; loaded with random ``--ema`` and ``-T``/``-B`` overrides.
* ``test_loader_fuzz_for_a_bounded_time`` (marked ``slow``, for CI): both strategies, batches of
  25 examples with new seeds until ``STATTEN_FUZZ_SECONDS`` (default 30) have passed.
"""
from __future__ import annotations

import math
import os
import time

import pytest
import torch
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from robust_helpers import directory_span, member_span, mutations, official_dict
from statten_hw.defaults import default_checkpoint
from statten_hw.errors import CheckpointError
from statten_hw.models import load_checkpoint
from statten_hw.models.checkpoint import MAX_IMG_SIZE, MAX_TIMESTEPS

BASE = default_checkpoint().read_bytes()
FUZZ_SECONDS = float(os.environ.get("STATTEN_FUZZ_SECONDS", "30"))
REGIONS = {"anywhere": (0, len(BASE)), "pickle": member_span(BASE, "data.pkl"), "zip directory": directory_span(BASE)}


def mutated_bytes():
    return mutations(BASE, REGIONS)


ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=6),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(["STAtten", "SDSA", "SSA", "A2OS2A", "T_STAtten", "0011", "1111", "0000"]))
ARG_KEYS = ("img_size", "time_steps", "time_step", "chunk_size", "num_heads", "mlp_ratio", "pooling_stat",
            "dvs_mode", "TET", "attention_mode", "statten_hw_attention")
DTYPES = (torch.float32, torch.float16, torch.float64, torch.bfloat16, torch.int32, torch.int64, torch.uint8,
          torch.bool, torch.complex64)


def _tensor(shape, dtype, fill):
    filled = torch.full(shape, fill) if dtype.is_floating_point or dtype.is_complex else torch.full(shape, 1)
    return filled.to(dtype)


TENSORS = st.builds(_tensor, shape=st.lists(st.integers(0, 5), max_size=4).map(tuple),
                    dtype=st.sampled_from(DTYPES), fill=st.sampled_from([0.0, 1.0, -1.5, math.nan, math.inf]))
KEYS = st.one_of(st.text(max_size=20), st.from_regex(r"block\.[0-9]{1,13}\.[a-z_.]{1,12}", fullmatch=True),
                 st.sampled_from(sorted(official_dict()["state_dict"])))


@st.composite
def mutated_checkpoint(draw) -> dict:
    """The unpickled checkpoint with 1..4 edits of the kinds listed in the module docstring."""
    ckpt = official_dict()
    state = ckpt["state_dict"]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["arg", "tensor", "drop", "rename", "add", "top"]))
        key = draw(st.sampled_from(sorted(state, key=str))) if state else None
        if kind == "arg" and hasattr(ckpt.get("args"), "__dict__"):
            setattr(ckpt["args"], draw(st.sampled_from(ARG_KEYS)), draw(ANY_VALUE))
        elif kind == "tensor" and key is not None:
            state[key] = draw(TENSORS)
        elif kind == "drop" and key is not None:
            del state[key]
        elif kind == "rename" and key is not None:
            state[draw(KEYS)] = state.pop(key)
        elif kind == "add":
            state[draw(KEYS)] = draw(TENSORS)
        elif kind == "top":
            ckpt[draw(st.sampled_from(["args", "state_dict", "state_dict_ema", "model"]))] = draw(
                st.one_of(ANY_VALUE, TENSORS, st.just({}), st.just(dict(state))))
    return ckpt


OPTIONS = st.fixed_dictionaries({"use_ema": st.booleans(), "timesteps": st.none() | st.integers(-2, 2 * MAX_TIMESTEPS),
                                 "block_size": st.none() | st.integers(-2, 9)})


def check_load(path, options=None) -> None:
    """The property: a loaded, checked model, or one CheckpointError line naming the file."""
    try:
        model = load_checkpoint(path, **(options or {}))
    except CheckpointError as err:
        assert "\n" not in str(err) and str(err).startswith(str(path)), str(err)
        return
    cfg = model.config
    assert not model.training and 1 <= cfg.timesteps <= MAX_TIMESTEPS and 1 <= cfg.img_size <= MAX_IMG_SIZE
    assert all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point())


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_loader") / "fuzzed.pth"


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(FUZZ, max_examples=150)
@given(data=mutated_bytes())
def test_mutated_bytes(scratch, data):
    scratch.write_bytes(data)
    check_load(scratch)


@settings(FUZZ, max_examples=120)
@given(ckpt=mutated_checkpoint(), options=OPTIONS)
def test_mutated_structure(scratch, ckpt, options):
    torch.save(ckpt, scratch)
    check_load(scratch, options)


@pytest.mark.slow
def test_loader_fuzz_for_a_bounded_time(scratch):
    """The CI fuzz run: new seeds in batches of 25 until the time is up; every example must pass."""
    tried, batch, stop = 0, 0, time.monotonic() + FUZZ_SECONDS

    @settings(FUZZ, max_examples=25, database=None, derandomize=False)  # new draws even in CI
    @given(case=st.one_of(mutated_bytes(), st.tuples(mutated_checkpoint(), OPTIONS)))
    def run(case):
        nonlocal tried
        tried += 1
        if isinstance(case, bytes):
            scratch.write_bytes(case)
            check_load(scratch)
        else:
            torch.save(case[0], scratch)
            check_load(scratch, case[1])

    while time.monotonic() < stop:
        seed(batch)(run)()
        batch += 1
    print(f"loader fuzz: {tried} examples in {FUZZ_SECONDS:g} s")
    assert tried >= 25
