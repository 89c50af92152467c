"""Integer layout <-> Lava port layout: channels-last maps, flat tokens."""
from __future__ import annotations

import numpy as np

from statten_hw.simulator.lava.layout import from_lava, lava_shape, to_lava


def test_maps_are_channels_last_and_tokens_are_their_reshape():
    c, h, w = 3, 2, 4
    fmap = np.arange(c * h * w).reshape(c, h, w)
    lava = to_lava(fmap, (c, h, w))
    assert lava.shape == lava_shape((c, h, w)) == (h, w, c)
    assert lava[1, 3, 2] == fmap[2, 1, 3]
    # Flatten(channels_last): token n = h·W + w holds channel c at [n, c]; in Lava a plain reshape.
    tokens = np.stack([fmap[:, i // w, i % w] for i in range(h * w)])
    np.testing.assert_array_equal(lava.reshape(-1), to_lava(tokens, (h * w, c)))
    assert lava_shape((h * w, c)) == (h * w * c,) and lava_shape((5,)) == (5,)


def test_round_trip_with_leading_axes():
    rng = np.random.default_rng(0)
    for shape in [(3, 2, 4), (6, 5), (7,)]:
        a = rng.integers(-9, 9, size=(4, 2, *shape))
        b = to_lava(a, shape)
        assert b.shape == (4, 2, *lava_shape(shape))
        np.testing.assert_array_equal(from_lava(b, shape), a)
