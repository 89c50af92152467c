"""How an integer tensor of the quantized graph is laid out on Lava ports.

The integer graph holds per-step values in three shapes; a Lava process holds each one as:

* feature map ``[C, H, W]`` -> ``(H, W, C)``: channels last, the ``(X, Y, Z)`` order of
  ``lava.proc.conv.process.Conv`` with ``X = H`` and ``Y = W`` (the conv is symmetric in X and Y, so
  we choose the axes that make tokens a plain reshape);
* tokens ``[N, C]`` -> ``(N·C,)``: flat, token-major, the 1-D vector ``lava.proc.dense.process.Dense``
  reads; with maps channels last, the token ``n = h·W + w`` is a reshape of ``(H, W, C)``;
* vector ``[K]`` -> ``(K,)``.

`to_lava` and `from_lava` convert arrays with any leading axes (time, batch) between the two.
"""
from __future__ import annotations

import math

import numpy as np


def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Per-step Lava port shape of a per-step integer shape."""
    if len(shape) == 3:
        c, h, w = shape
        return (h, w, c)
    if len(shape) in (1, 2):
        return (math.prod(shape),)
    raise ValueError(f"no Lava layout for per-step shape {shape}")


def to_lava(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a[..., *shape]`` (integer layout) as ``[..., *lava_shape(shape)]``."""
    lead = a.shape[: a.ndim - len(shape)]
    if len(shape) == 3:
        a = np.moveaxis(a, -3, -1)
    return np.ascontiguousarray(a.reshape(*lead, *lava_shape(shape)))


def from_lava(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a[..., *lava_shape(shape)]`` back to ``[..., *shape]`` (integer layout)."""
    lead = a.shape[: a.ndim - len(lava_shape(shape))]
    if len(shape) == 3:
        c, h, w = shape
        return np.ascontiguousarray(np.moveaxis(a.reshape(*lead, h, w, c), -1, -3))
    return np.ascontiguousarray(a.reshape(*lead, *shape))
