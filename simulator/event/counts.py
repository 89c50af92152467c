"""What an engine measures: event counts per layer, sample, logical step and core.

Both engines fill the same `Counts`; the timing model (`timing`) turns them into cycles, latency and
energy, so two engines with equal counts give equal reports. Arrays are int64 ``[L, S, T, K]`` (layer,
sample, logical timestep, core) unless noted; a projection's counts belong to the layer it feeds.

``sops``/``macs``   synaptic operations on the target's core: spike events (accumulate) or graded ones
                    (multiply-accumulate: the encoded input, membrane shortcuts, means);
``packets_in``      packets received per core (one per event and destination core);
``packets_out``     packets sent per core (host-injected input packets are in ``host_packets [L,S,T]``);
``hops_out``        NoC hops of the packets each core sent;
``max_hops [L,S,T]`` the longest route taken at that step (the NoC part of the step's latency);
``events``          events sent (nonzero source values) per sending core, for the conservation checks;
``buffer_events``   q/k/v events written into attention block buffers, per receiving core;
``updates``         neuron updates (every neuron of the layer, every step);
``spikes_out``      output spikes (nonzero outputs) of the layer's neurons, per core.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CORE_FIELDS = ("sops", "macs", "packets_in", "packets_out", "hops_out", "events", "buffer_events", "updates",
               "spikes_out")
STEP_FIELDS = ("host_packets", "max_hops")


@dataclass
class Counts:
    layers: tuple[str, ...]
    samples: int
    timesteps: int
    cores: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        shape = (len(self.layers), self.samples, self.timesteps)
        for name in CORE_FIELDS:
            self.arrays.setdefault(name, np.zeros((*shape, self.cores), np.int64))
        for name in STEP_FIELDS:
            self.arrays.setdefault(name, np.zeros(shape, np.int64))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def equal(self, other: "Counts") -> list[str]:
        """Names of the fields where two runs disagree (empty: identical)."""
        return [k for k in (*CORE_FIELDS, *STEP_FIELDS) if not np.array_equal(self[k], other[k])]


def count_layer_outputs(counts: Counts, net, values: dict, first_sample: int) -> None:
    """Neuron updates and output spikes per core, from each layer's output ``[T, S', ...]`` of samples
    ``first_sample ...``: every neuron updates once per step; a readout emits no spikes."""
    for i, layer in enumerate(net.layers):
        v = values[layer.name]
        T, n = v.shape[0], v.shape[1]
        rows = slice(first_sample, first_sample + n)
        counts["updates"][i, rows] += np.bincount(layer.owner, minlength=net.n_cores)
        if layer.kind == "readout":
            continue
        fired = (v != 0).reshape(T, n, -1).cpu().numpy()
        for core in np.unique(layer.owner):
            counts["spikes_out"][i, rows, :, core] += fired[:, :, layer.owner == core].sum(-1).T
