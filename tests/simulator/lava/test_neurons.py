"""Lava's LIF processes on the integer-membrane models equal the contract's LIF; Lava's stock model does not."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from statten_hw.quant.execute import _Ctx, lif_integer
from statten_hw.quant.quantize import QLIF
from statten_hw.simulator.lava import _compat

pytestmark = [pytest.mark.lava,
              pytest.mark.skipif(not _compat.HAS_LAVA, reason=f"lava-nc not importable: {_compat.LAVA_IMPORT_ERROR!r}")]

WINDOW, WINDOWS, THRESHOLD, DV = 6, 2, 50, 2048
STEPS = WINDOW * WINDOWS
BIAS = np.array([3, -2, 0, 7, 0])


def _reference(currents: np.ndarray, threshold: int, ternary: bool = False, window: int = WINDOW) -> np.ndarray:
    """The contract's LIF, afresh in every window: currents ``[n, steps]`` -> spikes ``[n, steps]``."""
    op = QLIF(threshold=threshold, dv=DV, ternary=ternary, state_scale=1.0)
    out = []
    for start in range(0, currents.shape[1], window):
        x = torch.from_numpy(currents[:, start:start + window].T.astype(np.int64))
        out.append(lif_integer(x, op, _Ctx(24, strict=False), "lif").numpy().T)
    return np.concatenate(out, axis=1)


def test_integer_membrane_models_match_the_contract_and_the_stock_model_does_not():
    from statten_hw.simulator.lava.neurons import LIF_MODELS, UNIT_BIAS_EXP

    lava = _compat.import_lava()
    rng = np.random.default_rng(7)
    currents = np.concatenate([rng.integers(-70, 70, size=(4, STEPS)), np.ones((1, STEPS), np.int64)]).astype(np.int32)
    source = lava.SourceRingBuffer(data=currents)
    reset = dict(reset_interval=WINDOW, reset_offset=1)  # time steps count from 1: clear at each window start
    common = dict(shape=(5,), du=4095, dv=DV, bias_mant=BIAS, bias_exp=UNIT_BIAS_EXP)
    plain = lava.LIFReset(vth=THRESHOLD - 1, **common, **reset)
    ternary = lava.TernaryLIF(vth_hi=THRESHOLD - 1, vth_lo=1 - THRESHOLD, **common)
    for key, value in reset.items():
        ternary.proc_params[key] = value
    stock = lava.LIF(shape=(5,), du=4095, dv=DV, vth=1)    # Lava's PyLifModelBitAcc, threshold 2
    integer = lava.LIF(shape=(5,), du=4095, dv=DV, vth=1)  # the same process on the integer membrane
    neurons = (plain, ternary, stock, integer)
    sinks = [lava.SinkRingBuffer(shape=(5,), buffer=STEPS) for _ in neurons]
    for neuron, sink in zip(neurons, sinks):
        source.s_out.connect(neuron.a_in)
        neuron.s_out.connect(sink.a_in)
    models = {plain: LIF_MODELS[lava.LIFReset], ternary: LIF_MODELS[lava.TernaryLIF], integer: LIF_MODELS[lava.LIF]}
    try:
        source.run(condition=lava.RunSteps(num_steps=STEPS),
                   run_cfg=lava.Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models))
        got = [np.asarray(s.data.get()).astype(np.int64) for s in sinks]
    finally:
        source.stop()

    biased = currents + BIAS[:, None]
    np.testing.assert_array_equal(got[0], _reference(biased, THRESHOLD))
    np.testing.assert_array_equal(got[1], _reference(biased, THRESHOLD, ternary=True))
    assert (got[0] == 1).any() and (got[1] == 1).any() and (got[1] == -1).any()
    # A constant current of 1 against threshold 2: the contract's membrane is 0 + 1 after every
    # truncating halving and never fires; Lava's keeps 6 fractional bits (64 -> 32 + 64 = 96 > 64)
    # and fires every second step.
    np.testing.assert_array_equal(got[3][4], _reference(currents[4:], 2, window=STEPS)[0])
    assert not got[3][4].any()
    np.testing.assert_array_equal(got[2][4], np.arange(STEPS) % 2)
