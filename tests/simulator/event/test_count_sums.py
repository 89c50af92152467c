"""The fast engine's per-core sums: row counts of long boolean rows, float32 totals past 2^24."""
from __future__ import annotations

import torch

from statten_hw.simulator.event.counts import LONG_ROWS, count_rows, per_core
from statten_hw.simulator.event.network import group_by_core
from statten_hw.simulator.event.fast import CHUNK, _by_core, _exact_sum


def test_count_rows_long_and_short_rows_equal_sums():
    gen = torch.Generator().manual_seed(0)
    for width in (7, LONG_ROWS, LONG_ROWS + 3):
        mask = torch.rand(5, width, generator=gen) < 0.3
        assert torch.equal(count_rows(mask), mask.sum(1))
        assert torch.equal(count_rows(mask[:, 1:]), mask[:, 1:].sum(1))  # a view, not contiguous rows


def test_per_core_counts_long_rows_by_core():
    import numpy as np

    gen = torch.Generator().manual_seed(1)
    mask = torch.rand(3, 2, 2 * LONG_ROWS, generator=gen) < 0.5  # [T, S, elements]
    owner = np.repeat([0, 2], LONG_ROWS)
    got = per_core(mask, group_by_core(owner), 3)
    assert got.shape == (2, 3, 3)
    assert (got[:, :, 0] == mask[:, :, :LONG_ROWS].sum(2).T.numpy()).all()
    assert (got[:, :, 1] == 0).all()
    assert (got[:, :, 2] == mask[:, :, LONG_ROWS:].sum(2).T.numpy()).all()


def test_by_core_is_exact_past_float32_integers():
    """A core total of 2^24 + 1 reads 2^24 in a float32 sum: it is summed again in float64."""
    per_element = torch.zeros(2, 6, dtype=torch.float32)
    per_element[0, :3] = torch.tensor([float(1 << 23), float(1 << 23), 1.0])  # 2^24 + 1
    per_element[1, :3] = torch.tensor([3.0, 4.0, 5.0])
    per_element[:, 3:] = 7.0
    out = _by_core(per_element, ((0, slice(0, 3)), (1, slice(3, 6))), 2)
    assert out.dtype == torch.float64
    assert out.tolist() == [[(1 << 24) + 1, 21], [12, 21]]


def test_exact_sum_in_chunks_equals_float64():
    gen = torch.Generator().manual_seed(2)
    for width in (5, CHUNK, 3 * CHUNK + 7):
        counts = torch.randint(0, 900, (3, width), generator=gen).to(torch.float32)
        assert torch.equal(_exact_sum(counts), counts.double().sum(1))
        assert torch.equal(_exact_sum(counts[:, 2:]), counts[:, 2:].double().sum(1))  # a column slice
    big = torch.full((2, 3 * CHUNK), 4099.0)  # one chunk of 4096 sums past 2^24: float64 for the row
    big[1, 5] = float(1 << 24)
    assert torch.equal(_exact_sum(big), big.double().sum(1))
