"""Fixtures of the sweep tests: a tiny checkpoint with its data set, and a guard against stray processes."""
from __future__ import annotations

import pytest
from sweep_nets import save_tiny_checkpoint, save_tiny_dataset
from sweep_processes import descendants, survivors


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """``(checkpoint, dataset)``: the tiny STAtten network (T 4, own B 2) and 24 labelled samples."""
    folder = tmp_path_factory.mktemp("tiny")
    return save_tiny_checkpoint(folder / "tiny.pth"), save_tiny_dataset(folder / "tiny.npz")


@pytest.fixture
def no_stray_processes():
    """Fails the test if it leaves a process behind (a worker, a nanny, a scheduler)."""
    before = set(descendants())
    yield
    left = survivors(before)
    assert not left, f"{len(left)} process(es) left running: {left}"
