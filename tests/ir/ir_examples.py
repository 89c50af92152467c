"""One example instance of every registered node kind (the round-trip and node tests use them)."""
from __future__ import annotations

import numpy as np

from statten_hw.ir import nodes as ir

_rng = np.random.default_rng(0)


def _f32(*shape):
    return _rng.standard_normal(shape).astype(np.float32)


EXAMPLES = {
    "input": lambda: ir.Input(shape=(2, 8, 8), timesteps=4, encoding="events"),
    "conv2d": lambda: ir.Conv2d(weight=_f32(4, 2, 3, 3), bias=_f32(4), stride=(2, 1), padding=(1, 0), groups=1),
    "linear": lambda: ir.Linear(weight=_f32(5, 3), bias=None),
    "batchnorm": lambda: ir.BatchNorm(gamma=_f32(4), beta=_f32(4), mean=_f32(4),
                                      var=np.abs(_f32(4)) + 0.1, eps=1e-5, channel_axis=1),
    "lif": lambda: ir.LIF(threshold=0.5, tau=2.0, reset="hard", v_reset=0.0, ternary=True),
    "relu": lambda: ir.ReLU(),
    "maxpool2d": lambda: ir.MaxPool2d(kernel=(3, 3), stride=(1, 1), padding=(1, 1)),
    "mean": lambda: ir.Mean(axes=(1, 2), time=True),
    "flatten": lambda: ir.Flatten(channels_last=False),
    "add": lambda: ir.Add(kind="spike"),
    "mul": lambda: ir.Mul(),
    "attention": lambda: ir.SpikingAttention(mode="N_STAtten", heads=4, block_size=2, scale=0.125, dvs=True,
                                             kv_threshold=0.5),
    "output": lambda: ir.Output(per_step=True),
}
