"""The common ground of our custom Lava processes: graded integer messages, aligned inputs, windows.

Lava has no process for a residual sum, a max pool, a mean or spiking attention, so each is a Lava
``AbstractProcess`` with a ``PyLoihiProcessModel`` (``fixed_pt``) of its own. They share what this
module gives them:

* **graded messages**: inputs and the output ``s_out`` carry 24-bit integers (Loihi 2 graded spikes)
  in the Lava layout of `layout`; a model computes on int64 numpy arrays in the integer layout, with
  `requant` and `sat`, the contract's rules (`statten_hw.quant.fixed_point`) restated for numpy.
  Lava's actors are forked from a process that has used torch: a torch kernel that enters an
  OpenMP parallel region in a forked child waits forever for the parent's thread pool (seen here
  with ``conv2d``), so no torch runs inside a Lava process;
* **input alignment**: an input port whose producer runs ahead is delayed by ``delay[port]`` steps
  (a FIFO, Loihi 2's synaptic delay) so that all ports describe the same integer step (`schedule`);
* **biases**: a conv or dense process carries no bias; the process that receives its output adds it
  (``bias[port]``, in the Lava layout) before anything else, as a Loihi neuron adds its bias;
* **windows**: samples follow each other in windows of ``window`` steps; `local_step` is the integer
  step ``t`` of the values a model reads now (negative before its first valid input), the cue to
  reset state at ``t = 0``.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from statten_hw.quant.fixed_point import limit

from . import _compat
from .layout import from_lava, lava_shape, to_lava

lava = _compat.import_lava()

#: Bits of a graded message (Loihi 2 graded spikes carry up to 24 bits; our state width).
MESSAGE_BITS = 24


def graded_in():
    """The model-side type of a graded input port."""
    return lava.LavaPyType(lava.PyInPort.VEC_DENSE, np.int32, precision=MESSAGE_BITS)


def graded_out():
    """The model-side type of a graded output port."""
    return lava.LavaPyType(lava.PyOutPort.VEC_DENSE, np.int32, precision=MESSAGE_BITS)


class GradedProcess(lava.AbstractProcess):
    """Input ports ``PORTS`` and one output ``s_out``, per-step integer shapes ``shapes[port]`` and
    ``out_shape`` (the integer layout; ports use `layout.lava_shape`). ``delay``/``bias``: per input
    port (see the module docstring). ``window``: steps per sample; ``start``: window step at which
    the inputs (after their delays) describe ``t = 0``. Further keyword parameters belong to the op."""

    PORTS: tuple[str, ...] = ("x",)

    def __init__(self, *, shapes: dict, out_shape: tuple, delay: dict, bias: dict, window: int, start: int,
                 name: str | None = None, **params):
        super().__init__(shapes=shapes, out_shape=out_shape, delay=delay, bias=bias, window=window, start=start,
                         name=name, **params)
        for port in self.PORTS:
            setattr(self, port, lava.InPort(shape=lava_shape(shapes[port])))
        self.s_out = lava.OutPort(shape=lava_shape(out_shape))


class PyGradedModel(lava.PyLoihiProcessModel):
    """Base model: `read` the aligned, biased inputs as integer-layout arrays; `send` the output."""

    s_out = graded_out()

    def __init__(self, proc_params):
        super().__init__(proc_params)
        p = self.proc_params
        self.shapes, self.out_shape = p["shapes"], p["out_shape"]
        self.window, self.first_step = p["window"], p["start"]
        self._fifo = {port: deque(maxlen=d + 1) for port, d in p["delay"].items()}
        self._bias = {port: b for port, b in p["bias"].items() if b is not None}

    def local_step(self) -> int:
        """Integer step of the values read at this Lava step (negative: not yet valid)."""
        return (self.time_step - 1) % self.window - self.first_step

    def read(self, port: str) -> np.ndarray:
        """Receive ``port`` (every step, as Lava requires) and return its aligned value plus its bias,
        as an int64 array of the integer layout (zeros until the delay line has filled)."""
        fifo = self._fifo[port]
        fifo.append(np.asarray(getattr(self, port).recv(), dtype=np.int64))
        value = fifo[0] if len(fifo) == fifo.maxlen else np.zeros_like(fifo[-1])
        if port in self._bias:
            value = value + self._bias[port]
        return from_lava(value, self.shapes[port])

    def send(self, value: np.ndarray) -> None:
        self.s_out.send(to_lava(value, self.out_shape).astype(np.int32))


def requant(q: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """The contract's rescale ``(q · M + 2^(S-1)) >> S`` (`fixed_point.requant`), on int64 numpy."""
    prod = q * mult
    return prod if shift == 0 else np.right_shift(prod + (1 << (shift - 1)), shift)


def sat(values: np.ndarray, bits: int) -> np.ndarray:
    """The contract's saturation into ``bits`` signed bits, ``[-(2^(bits-1) - 1), 2^(bits-1) - 1]``."""
    return np.clip(values, -limit(bits), limit(bits))


def model_for(process_cls):
    """Class decorator: a ``fixed_pt`` CPU model of ``process_cls`` under Lava's Loihi protocol."""
    def decorate(model_cls):
        model_cls = lava.implements(proc=process_cls, protocol=lava.LoihiProtocol)(model_cls)
        return lava.tag("fixed_pt")(lava.requires(lava.CPU)(model_cls))
    return decorate
