"""The axons each core of a placement needs: its distinct inputs and its output routes.

A target's ``fan_in`` and ``fan_out`` count a core's input axons and output axons (Loihi: 4,096 of
each per core, Davies et al. 2018). Spikes travel as the event network sends them (one packet per
source element and destination core, `statten_hw.simulator.event.network`), and each such route is
one axon at both ends:

* a core's *input axons*: the distinct (source element, this core) routes into it, from other cores,
  from itself (a core's own spikes come back through its router) and from the host;
* a core's *output axons*: the routes leaving its elements, summed over them (one per destination
  core, however many synapses the spike reaches there).

The mapper checks each neuron's fan-in and fan-out in synapses (`statten_hw.mapping.partition`):
those are known before placement, but a core's distinct inputs are the union over its neurons, so
only the placed network gives them exactly; this module counts them from the projections' coverage.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .network import EventNetwork
from .owners import HOST


@dataclass(frozen=True)
class CoreAxons:
    """Per core (index = core id): the input and output axons its routes need (module docstring)."""

    inputs: np.ndarray
    outputs: np.ndarray

    def over(self, fan_in: int, fan_out: int) -> list[tuple[int, str, int, int]]:
        """``(core, quantity, used, limit)`` for every core past the target's ``fan_in`` or ``fan_out``."""
        found = [(k, "input axons", int(n), fan_in) for k, n in enumerate(self.inputs) if n > fan_in]
        found += [(k, "output axons", int(n), fan_out) for k, n in enumerate(self.outputs) if n > fan_out]
        return sorted(found)


def _routes(net: EventNetwork) -> dict[tuple[str, int], torch.Tensor]:
    """Per (source node, destination core), which source elements send there: the union over the
    source's projections (q, k and v of one source keep their own coverage; the others share)."""
    routes: dict[tuple[str, int], torch.Tensor] = {}
    for p in net.projections:
        n = len(p.dst_cores)
        coverage = p.counters[:, n:2 * n] > 0
        for j, core in enumerate(p.dst_cores.tolist()):
            before = routes.get((p.source, core))
            routes[(p.source, core)] = coverage[:, j] if before is None else before | coverage[:, j]
    return routes


def core_axons(net: EventNetwork) -> CoreAxons:
    """`CoreAxons` of ``net``'s placement."""
    origin = {p.source: p.origin for p in net.projections}
    inputs = np.zeros(net.n_cores, np.int64)
    outputs = np.zeros(net.n_cores, np.int64)
    for (source, core), sent in _routes(net).items():
        senders = origin[source][sent.numpy()]
        inputs[core] += senders.size
        outputs += np.bincount(senders[senders != HOST], minlength=net.n_cores)
    return CoreAxons(inputs, outputs)


__all__ = ["CoreAxons", "core_axons"]
