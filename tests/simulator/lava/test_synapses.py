"""The faster Conv model computes what Lava's own fixed-point conv computes, integer for integer."""
from __future__ import annotations

import numpy as np
import pytest

from statten_hw.simulator.lava import _compat

pytestmark = [pytest.mark.lava,
              pytest.mark.skipif(not _compat.HAS_LAVA, reason=f"lava-nc not importable: {_compat.LAVA_IMPORT_ERROR!r}")]


@pytest.mark.parametrize("xyz, c_out, kernel, stride, padding, dilation, groups, graded", [
    ((8, 8, 3), 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),   # the stem: graded 8-bit input
    ((7, 5, 4), 6, (3, 2), (2, 1), (1, 0), (1, 1), 2, False),  # non-square, strided, grouped, binary spikes
    ((4, 4, 8), 8, (1, 1), (1, 1), (0, 0), (1, 1), 1, False),  # the 1x1 convs of attention and MLP
    ((9, 9, 2), 3, (3, 3), (1, 2), (2, 2), (2, 1), 1, True),   # dilated
])
def test_fast_conv_equals_lava_conv(xyz, c_out, kernel, stride, padding, dilation, groups, graded):
    from statten_hw.simulator.lava.synapses import conv_xyz

    lava = _compat.import_lava()
    rng = np.random.default_rng(sum(xyz))
    s_in = rng.integers(0, 256, size=xyz) if graded else rng.integers(0, 2, size=xyz)
    weight = rng.integers(-127, 128, size=(c_out, *kernel, xyz[-1] // groups)).astype(np.int32)
    expected = lava.conv_utils.conv(s_in, weight, kernel, stride, padding, dilation, groups)
    got = conv_xyz(s_in, weight, np.array(stride), np.array(padding), np.array(dilation), groups)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
