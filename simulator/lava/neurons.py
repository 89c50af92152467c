"""Lava's LIF processes with an integer membrane: the ProcessModels our LIF layers run with.

Lava's bit-accurate LIF (``PyLifModelBitAcc``, ``AbstractPyLifModelFixed``) MSB-aligns its input,
bias and threshold by 6 bits (``act_shift = vth_shift = 6``), so its 24-bit ``u``/``v`` carry 6
fractional bits below the integer current. Its leak then truncates at 1/64 resolution:
``v = sgn(v·(4096-dv))·(|v·(4096-dv)| >> 12)`` on ``64·V``. The integer contract
(`statten_hw.quant.execute.lif_integer`) applies the same formula to the integer ``V`` itself, so with
``dv = 2048`` (tau 2) the two disagree as soon as a membrane is odd (``V = 3`` decays to 1 here, to
1.5 in Lava), and Lava's 17-bit threshold cannot hold thresholds past 131071 that our 24-bit membrane
streams need. The models below are Lava's own LIF models with the alignment removed (``act_shift =
vth_shift = 0``): every other rule (12-bit ``du``/``dv`` with ``ds_offset = 1``, 24-bit wrap of ``u``,
symmetric 24-bit clip of ``v``, ``v > vth`` fires, hard reset to 0) is Lava's, unchanged.

Parameters keep Lava's conventions, so a netx file means the same here as in Lava: the bias is
``bias_mant << bias_exp`` in the 6-bit aligned unit (netx writes ``bias_exp = 6``), i.e.
``(bias_mant << bias_exp) >> 6`` on the integer membrane; ``bias_mant`` and the thresholds are widened
to 24 bits (the contract's state width) from Lava's 13-bit mantissa and 17-bit threshold.

`LIF_MODELS` maps each Lava LIF process to its model, for ``Loihi2SimCfg(exception_proc_model_map=...)``.
Ternary neurons have no reset variant in Lava, so `TernaryLIF` processes take ``reset_interval`` and
``reset_offset`` in their ``proc_params`` (as ``LIFReset`` stores them) and our model honours them.
"""
from __future__ import annotations

import numpy as np

from statten_hw.errors import InputError, UnsupportedLayer
from statten_hw.quant.fixed_point import STATE_BITS

from . import _compat

lava = _compat.import_lava()

#: Bits by which Lava MSB-aligns activations, biases and thresholds (AbstractPyLifModelFixed).
LAVA_ALIGN_BITS = 6
#: The bias exponent that makes ``bias_mant`` the plain integer bias on the integer membrane.
UNIT_BIAS_EXP = LAVA_ALIGN_BITS
#: ``du`` of a neuron without current memory: decay constant ``du + ds_offset = 4096`` clears ``u``.
NO_CURRENT_MEMORY_DU = 4095
#: Largest ``dv`` a 12-bit register holds (``dm_offset = 0`` in Lava's fixed-point LIF).
MAX_DV = 4095


def check_dv(name: str, dv: int) -> int:
    """``dv`` if Loihi's 12-bit decay register holds it, else `UnsupportedLayer` naming the layer."""
    if not 0 <= dv <= MAX_DV:
        raise UnsupportedLayer(name, "lif", f"dv {dv} does not fit Loihi's 12-bit dv register (0..{MAX_DV})")
    return dv


def check_state_width(state_bits: int, user: str, instead: str) -> None:
    """Lava's LIF wraps and clips at Loihi's 24 bits, whatever the integer graph's width: a graph of
    another width would fire otherwise there (`InputError` saying what to do ``instead``)."""
    if state_bits != STATE_BITS:
        raise InputError(f"{user} runs Loihi's {STATE_BITS}-bit neurons; this integer graph keeps "
                         f"{state_bits}-bit state ({instead})")


class _IntegerMembrane:
    """Mixin over Lava's fixed-point LIF models: no 6-bit alignment, widened bias and threshold."""

    bias_mant: np.ndarray = lava.LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.act_shift = 0
        self.vth_shift = 0

    def scale_bias(self):
        # Lava's (bias_mant << bias_exp) is in the 6-bit aligned unit; our membrane has no alignment.
        bias = np.left_shift(self.bias_mant.astype(np.int64), self.bias_exp.astype(np.int64))
        self.effective_bias = np.right_shift(bias, LAVA_ALIGN_BITS)
        self.isbiasscaled = True


class PyLifIntegerModel(_IntegerMembrane, lava.PyLifModelBitAcc):
    """``LIF`` on an integer membrane (see the module docstring)."""

    vth: int = lava.LavaPyType(int, np.int32, precision=24)


class PyLifResetIntegerModel(_IntegerMembrane, lava.PyLifResetModelBitAcc):
    """``LIFReset`` on an integer membrane: ``u = v = 0`` when ``time_step % interval == offset``."""

    vth: int = lava.LavaPyType(int, np.int32, precision=24)


class PyTernaryLifIntegerModel(_IntegerMembrane, lava.PyTernLifModelFixed):
    """``TernaryLIF`` on an integer membrane, fires +1 at ``v > vth_hi`` and -1 at ``v < vth_lo``;
    with ``reset_interval`` in its proc_params it clears ``u``, ``v`` like ``LIFReset``."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.reset_interval = proc_params.get("reset_interval", None)
        self.reset_offset = proc_params.get("reset_offset", 0)

    def run_spk(self):
        if self.reset_interval and self.time_step % self.reset_interval == self.reset_offset % self.reset_interval:
            self.u[:] = 0
            self.v[:] = 0
        super().run_spk()


LIF_MODELS = {lava.LIF: PyLifIntegerModel, lava.LIFReset: PyLifResetIntegerModel,
              lava.TernaryLIF: PyTernaryLifIntegerModel}

__all__ = ["LIF_MODELS", "check_dv", "PyLifIntegerModel", "PyLifResetIntegerModel", "PyTernaryLifIntegerModel",
           "LAVA_ALIGN_BITS", "UNIT_BIAS_EXP", "NO_CURRENT_MEMORY_DU", "MAX_DV"]
