"""Fixed-point primitives of the integer contract (DESIGN.md, "The integer contract").

Every integer tensor of the quantized graph is ``int64`` in the executor; its *declared* width is
one of the constants below, and :func:`saturate` is the one place a value is brought back into a
declared width (clipped, or ``QuantizationOverflow`` in strict mode), reporting what overflowed.

The LIF leak is Lava's fixed-point form (``lava.proc.lif.models.PyLifModelBitAcc``)::

    decayed = v * (2**DECAY_BITS - dv)                  # int64 product
    decayed = sign(decayed) * (|decayed| >> DECAY_BITS)  # sign-magnitude shift: truncation toward 0

and Lava clips the membrane to the symmetric range ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``
(``neg_voltage_limit = -max_uv_val + 1``), which :func:`saturate` uses for every signed width.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from statten_hw.errors import QuantizationOverflow

WEIGHT_BITS = 8   # signed weights, symmetric per layer: levels -(2**7-1) .. 2**7-1
STATE_BITS = 24   # membrane state, accumulators and requantized streams (Lava's 24-bit u/v)
DECAY_BITS = 12   # Lava's decay resolution: dv in 0..4096, decay factor (4096 - dv) / 4096
INPUT_BITS = 8    # real-valued (analog) network inputs
REQUANT_BITS = 16  # width of the requantization multiplier M in ``(q * M) >> S``


def limit(bits: int) -> int:
    """Largest magnitude of a ``bits``-wide signed value in Lava's symmetric convention."""
    return (1 << (bits - 1)) - 1


def saturate(values: torch.Tensor, bits: int, strict: bool, layer: str = "?", quantity: str = "value"
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip int64 ``values`` into ``bits`` signed bits; return ``(clipped, overflow_mask)``.

    ``strict``: the first value out of range raises :class:`QuantizationOverflow` (naming
    ``layer`` and ``quantity``) instead of being clipped. Clipping, not wrapping, because a
    saturated membrane still fires where a wrapped one would flip sign.
    """
    if values.dtype != torch.int64:
        raise TypeError(f"saturate takes int64, got {values.dtype}")
    cap = limit(bits)
    mask = values.abs() > cap
    if bool(mask.any()):
        if strict:
            bad = int(values[mask].flatten()[0])
            raise QuantizationOverflow(layer, quantity, bad, bits)
        values = values.clamp(-cap, cap)
    return values, mask


def decay(v: torch.Tensor, dv: int) -> torch.Tensor:
    """Lava's leak ``sign(v·(4096-dv)) · (|v·(4096-dv)| >> 12)`` on int64 ``v``."""
    prod = v * ((1 << DECAY_BITS) - dv)
    return torch.sign(prod) * torch.bitwise_right_shift(prod.abs(), DECAY_BITS)


def dv_for_tau(tau: float) -> int:
    """``dv = round(4096 / tau)``: tau 2 gives 2048, i.e. ``v >> 1`` toward zero (exact halving)."""
    return int(round((1 << DECAY_BITS) / float(tau)))


def requant_params(ratio: float) -> tuple[int, int]:
    """``(M, S)`` with ``M / 2**S ≈ ratio``, M of ``REQUANT_BITS - 1`` significant bits (S >= 0).

    ``(q * M + 2**(S-1)) >> S`` then rescales an integer of scale ``s_in`` to scale ``s_out`` when
    ``ratio = s_in / s_out``, rounding half up (arithmetic shift is floor).
    """
    if not ratio > 0 or not math.isfinite(ratio):
        raise ValueError(f"requantization ratio must be a positive finite number, got {ratio!r}")
    top = 1 << (REQUANT_BITS - 1)
    shift = 0
    while ratio * (1 << shift) < top / 2 and shift < 62:
        shift += 1
    return int(round(ratio * (1 << shift))), shift


def requant(q: torch.Tensor, mult: int, shift: int) -> torch.Tensor:
    """Integer rescale ``(q * M + 2**(S-1)) >> S`` (round half up); int64 only."""
    prod = q * mult
    if shift == 0:
        return prod
    return torch.bitwise_right_shift(prod + (1 << (shift - 1)), shift)


def ceil_ratio(num: float, den: float) -> int:
    """``ceil(num / den)`` in exact rational arithmetic (the floats as the binary values they are)."""
    return math.ceil(Fraction(num) / Fraction(den))


GRID_TOLERANCE = 1e-4  # in levels: float32 data on a grid of n/255 and the like sits within 2e-5 of it


def grid_levels(x: torch.Tensor, top: int) -> int:
    """The largest ``L <= top`` for which every ``|x| · L / max|x|`` is an integer: the step
    ``max|x| / L`` is then a grid the data already lives on, and quantizing to it loses nothing
    (the digits data, ``k/16``, gives ``L = 240``: 8-bit input on ``max/255`` rounds every pixel).
    ``top`` (the plain ``max/top`` scale) when no such ``L`` exists."""
    values = torch.unique(x.detach().abs().to(torch.float64))
    peak = float(values.max()) if values.numel() else 0.0
    if peak == 0:
        return top
    probe = values[torch.linspace(0, len(values) - 1, min(len(values), 64)).long()]  # rejects most L cheaply

    def on_grid(v: torch.Tensor, levels: int) -> bool:
        v = v * (levels / peak)
        return float((v - v.round()).abs().max()) <= GRID_TOLERANCE
    return next((L for L in range(top, 0, -1) if on_grid(probe, L) and on_grid(values, L)), top)


def quantize_symmetric(w: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """Per-layer symmetric weights: ``(w_int int64, scale)`` with ``w ≈ w_int · scale``.

    ``bits >= 2``: ``scale = max|w| / (2**(bits-1) - 1)``, ``w_int = round(w / scale)``.
    ``bits == 1``: binary ``w_int = ±1`` (sign, zero maps to +1) with ``scale = mean|w|``, the
    least-squares scale for a sign code (there is no zero level in one bit).
    """
    if not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"weight_bits must be an int in 1..16, got {bits!r}")
    w = w.astype(np.float64)
    if bits == 1:
        scale = float(np.abs(w).mean()) or 1.0
        return np.where(w >= 0, 1, -1).astype(np.int64), scale
    peak = float(np.abs(w).max()) if w.size else 0.0
    scale = peak / limit(bits) if peak > 0 else 1.0
    return np.clip(np.round(w / scale), -limit(bits), limit(bits)).astype(np.int64), scale
