"""The host's side of a Lava run: samples in through Lava's ``Injector``, layer outputs out through
one `Recorder`, both over external pipes (one message per step and direction).

Reading a ``Var`` from the host (how Lava's ``RingBuffer`` sink and ``Monitor`` hand back what they
recorded) costs one runtime message per *element*: about 1 s per 10 000 values here, most of a run.
An external pipe (``OutPort.flag_external_pipe``, as ``lava.proc.io.extractor.Extractor`` uses)
carries a whole step's vector in one message.
"""
from __future__ import annotations

import numpy as np

from . import _compat
from .graded import MESSAGE_BITS, graded_in, model_for

lava = _compat.import_lava()


class PyIntegerInjectorModel(lava.PyLoihiInjectorModel):
    """Lava's injector model with integer ports (its own are float, which Lava's Dense cannot shift)."""

    in_port = lava.LavaPyType(lava.PyInPort.VEC_DENSE, np.int32, precision=MESSAGE_BITS)
    out_port = lava.LavaPyType(lava.PyOutPort.VEC_DENSE, np.int32, precision=MESSAGE_BITS)


class Recorder(lava.AbstractProcess):
    """The host's view of the run: ``in_<i>`` receives node ``i``'s messages (plus ``bias[i]``, a
    readout synapse's bias) and every step the concatenation of all of them, flattened, goes to the
    host through ``host``, an external pipe of ``buffer`` messages (what ``lava.proc.io.extractor``
    does for one port). One process records every node, where Lava's ``RingBuffer`` sink and
    ``Monitor`` take one process per port (``ConcatPort`` is not implemented in Lava 0.10)."""

    def __init__(self, *, shapes: list, bias: list, buffer: int, name: str | None = None):
        super().__init__(shapes=shapes, bias=bias, buffer=buffer, name=name)
        for i, shape in enumerate(shapes):
            setattr(self, f"in_{i}", lava.InPort(shape=shape))
        self.host = lava.OutPort(shape=(sum(int(np.prod(s)) for s in shapes),))
        self.host.flag_external_pipe(buffer_size=buffer)

    def receive(self) -> list[np.ndarray]:
        """The next step's values, one array per recorded node (Lava layout)."""
        flat = self.host.external_pipe_csp_recv_port.recv()
        ends = np.cumsum([int(np.prod(s)) for s in self.proc_params["shapes"]])
        return [part.reshape(s) for part, s in zip(np.split(flat, ends[:-1]), self.proc_params["shapes"])]


class _PyRecorderModel(lava.PyLoihiProcessModel):
    host = lava.LavaPyType(lava.PyOutPort.VEC_DENSE, np.int32, precision=MESSAGE_BITS)

    def run_spk(self):
        parts = []
        for i, bias in enumerate(self.proc_params["bias"]):
            value = getattr(self, f"in_{i}").recv()
            parts.append((value if bias is None else value + bias).reshape(-1))
        self.host.csp_ports[-1].send(np.concatenate(parts).astype(np.int32))


def recorder_model(ports: int) -> type:
    """A model class for a `Recorder` of ``ports`` ports (Lava needs one typed attribute per port)."""
    members = {f"in_{i}": graded_in() for i in range(ports)}
    return model_for(Recorder)(type(f"PyRecorderModel{ports}", (_PyRecorderModel,), members))
