"""Synapses on Loihi 2: the 8-bit weight check, and Lava's Conv process with a faster model.

Lava's fixed-point Conv model (``lava.proc.conv.models.PyConvModelFixed``) convolves through
``lava.proc.conv.utils.conv``, whose torch branch is switched off in lava-nc 0.10
(``TORCH_IS_AVAILABLE = False``), so every step runs one ``scipy.signal.convolve2d`` per (output,
input) channel pair: about 90 ms per step for a 32x32-channel 3x3 layer, most of a run's time.
`PyConvFastModel` is that model with the convolution done as one integer tensor contraction over
sliding windows and the process's ``weight_exp`` applied (``sums << weight_exp``, Loihi's
``weight = mantissa << exponent``; the stock model declares the variable but never reads it) (numpy, int64: exact, and free of the OpenMP thread pools that deadlock torch in
forked Lava actors, see `graded`). Everything else is Lava's model: the one-step delay (``a_out``
sends the previous step's sums), binary inputs as booleans when ``num_message_bits == 0``, and the
24-bit wrap-around of ``clamp_precision``. ``tests/simulator/lava/test_synapses.py`` checks it
against ``lava.proc.conv.utils.conv``.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from statten_hw.errors import UnsupportedLayer
from statten_hw.quant.fixed_point import limit

from . import _compat

lava = _compat.import_lava()

#: Loihi 2 synaptic weights: 8-bit signed mantissas.
LOIHI_WEIGHT_BITS = 8


def check_weights(name: str, kind: str, weight: np.ndarray) -> np.ndarray:
    """``weight`` if it fits Loihi 2's 8-bit signed synapses, else `UnsupportedLayer` naming the layer."""
    peak = int(np.abs(weight).max(initial=0))
    if peak > limit(LOIHI_WEIGHT_BITS):
        raise UnsupportedLayer(name, kind, f"weights reach {peak}; Loihi 2 synapses hold {LOIHI_WEIGHT_BITS}-bit "
                                           f"signed weights (|w| <= {limit(LOIHI_WEIGHT_BITS)})")
    return weight


def conv_xyz(s_in: np.ndarray, weight: np.ndarray, stride, padding, dilation, groups: int) -> np.ndarray:
    """Lava's convolution (``lava.proc.conv.utils.conv``): ``(X, Y, C_in)`` input, ``(C_out, kX, kY,
    C_in/groups)`` weight, true convolution (the kernel is flipped), -> ``(X', Y', C_out)`` int64."""
    (sx, sy), (px, py), (dx, dy) = (tuple(int(v) for v in a) for a in (stride, padding, dilation))
    groups = int(groups)  # Lava keeps it in a narrow integer Var: C_out // groups could overflow it (NumPy 2)
    c_out, kx, ky, c_group = weight.shape
    kernel = np.zeros((c_out, dx * (kx - 1) + 1, dy * (ky - 1) + 1, c_group), np.int64)
    kernel[:, ::dx, ::dy, :] = weight[:, ::-1, ::-1, :]  # dilated, flipped: convolution as correlation
    x = np.pad(np.asarray(s_in, np.int64), ((px, px), (py, py), (0, 0)))
    windows = sliding_window_view(x, kernel.shape[1:3], axis=(0, 1))[::sx, ::sy]  # [X', Y', C_in, kX, kY]
    per_group = c_out // groups
    return np.concatenate([
        np.einsum("xycij,kijc->xyk", windows[:, :, g * c_group:(g + 1) * c_group],
                  kernel[g * per_group:(g + 1) * per_group], optimize=True)
        for g in range(groups)], axis=-1)


class PyConvFastModel(lava.PyConvModelFixed):
    """``PyConvModelFixed`` with one integer contraction per step instead of scipy loops."""

    def run_spk(self) -> None:
        self.a_out.send(self.a_buf)
        s_in = self.s_in.recv()
        if self.num_message_bits.item() == 0:
            s_in = s_in.astype(bool)
        sums = conv_xyz(s_in, self.weight, self.stride, self.padding, self.dilation, self.groups[0])
        sums <<= int(self.weight_exp.item())  # Loihi's weight = mantissa << exponent; never negative here
        self.a_buf = self.clamp_precision(sums).astype(np.int32)


CONV_MODELS = {lava.Conv: PyConvFastModel}
