"""The cycle and energy model: counts of one run -> busy cycles per core, latency, energy, buffer use.

Busy cycles of a core in one time slot = ``sop_cycles·(sops + macs) + neuron_update_cycles·updates +
spike_packet_cycles·(packets in + packets out)``. A slot lasts as long as its busiest core, plus the
longest route taken in it (``hop_cycles`` per hop), plus the barrier (``step`` targets).

* ``step`` targets: slot = global step. Layer i's logical step t runs at global step
  ``t + start_step_i`` (its neurons update and fire then); its incoming events arrive ``delay_i``
  steps earlier (an attention layer collects its block's q, k, v before it can fire).
* ``layer`` targets: slot = stage (block b, layer i): the layer's B steps of block b, one layer at a
  time, no barrier.

Energy = ``sop_pj·sops + mac_pj·macs + neuron_update_pj·updates + noc_hop_pj·hops`` + SRAM traffic of
the attention block buffers (each q/k/v event written once, one bit, and read once at the block's end;
``layer`` targets also write and read every layer's output block as a bitmap) + static power × time.
Buffer occupancy (bits) at a global step: q/k/v events received in the current block so far.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from statten_hw.targets.schema import ExecutionStyle

from .counts import Counts
from .network import EventNetwork

PJ = 1e-12
ARRIVAL_FIELDS = ("sops", "macs", "packets_in", "packets_out", "hops_out", "buffer_events", "events")


@dataclass(frozen=True)
class Timeline:
    """Per-sample slot cycles and per-core busy cycles ``[S, slots, K]``; buffer bits ``[S, slots, K]``."""

    slot_cycles: np.ndarray  # [S, slots]
    busy: np.ndarray  # [S, slots, K]
    buffer_bits: np.ndarray  # [S, slots, K]
    slot_names: tuple[str, ...]

    @property
    def cycles(self) -> np.ndarray:
        return self.slot_cycles.sum(1)


def _busy(c: dict, timing) -> np.ndarray:
    return (timing.sop_cycles * (c["sops"] + c["macs"]) + timing.neuron_update_cycles * c["updates"]
            + timing.spike_packet_cycles * (c["packets_in"] + c["packets_out"]))


def _step_slots(counts: Counts, net: EventNetwork, latency_steps: int) -> dict[str, np.ndarray]:
    """Counts moved onto global steps: ``[S, G, K]`` per field, ``max_hops [S, G]``."""
    L, S, T, K = counts["sops"].shape
    out = {f: np.zeros((S, latency_steps, K), np.int64) for f in (*ARRIVAL_FIELDS, "updates", "spikes_out")}
    hops = np.zeros((S, latency_steps), np.int64)
    for i, layer in enumerate(net.layers):
        fire = np.arange(T) + layer.start_step
        arrive = fire - layer.delay_steps
        for f in ARRIVAL_FIELDS:
            out[f][:, arrive] += counts[f][i]
        for f in ("updates", "spikes_out"):
            out[f][:, fire] += counts[f][i]
        hops[:, arrive] = np.maximum(hops[:, arrive], counts["max_hops"][i])
    out["max_hops"] = hops
    return out


def _layer_slots(counts: Counts, net: EventNetwork, block: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """Counts per stage (block, layer): ``[S, blocks·L, K]``."""
    L, S, T, K = counts["sops"].shape
    blocks = T // block
    out, names = {}, []
    for f in (*ARRIVAL_FIELDS, "updates", "spikes_out"):
        per = counts[f].reshape(L, S, blocks, block, K).sum(3)  # [L, S, blocks, K]
        out[f] = per.transpose(1, 2, 0, 3).reshape(S, blocks * L, K)
    out["max_hops"] = counts["max_hops"].reshape(L, S, blocks, block).max(3).transpose(1, 2, 0).reshape(S, blocks * L)
    names = [f"block {b} / {layer.name}" for b in range(blocks) for layer in net.layers]
    return out, names


def _buffer_bits(slots: dict, block_of_slot: np.ndarray) -> np.ndarray:
    """Attention buffer occupancy: events received since the current block began."""
    ev = slots["buffer_events"]
    occ = np.zeros_like(ev)
    for b in np.unique(block_of_slot):
        idx = np.flatnonzero(block_of_slot == b)
        occ[:, idx] = np.cumsum(ev[:, idx], axis=1)
    return occ


def timeline(counts: Counts, net: EventNetwork, mapping) -> tuple[Timeline, dict[str, np.ndarray]]:
    """Slot cycles, busy cycles and buffer occupancy, plus the per-slot counts they came from."""
    target, sched = mapping.target, mapping.schedule
    t = target.timing
    if target.execution == ExecutionStyle.STEP:
        slots = _step_slots(counts, net, sched.latency_steps)
        names = tuple(f"step {g}" for g in range(sched.latency_steps))
        block_of_slot = np.minimum(np.arange(sched.latency_steps), sched.timesteps - 1) // sched.block_size
        barrier = t.barrier_cycles
    else:
        slots, names = _layer_slots(counts, net, sched.block_size)
        block_of_slot = np.arange(len(names))  # a stage holds its whole block
        barrier = 0.0
    busy = _busy(slots, t)
    slot_cycles = busy.max(2) + t.hop_cycles * slots["max_hops"] + barrier
    return Timeline(slot_cycles, busy, _buffer_bits(slots, block_of_slot), tuple(names)), slots


def energy_pj(c: dict, target, block_bitmap_bits: np.ndarray | float = 0.0) -> np.ndarray:
    """Dynamic energy (pJ) of counts ``c`` (any common shape), SRAM traffic of the buffers included."""
    e = target.energy
    buffer_bytes = (c["buffer_events"] + block_bitmap_bits) / 8
    return (e.sop_pj * c["sops"] + e.mac_pj * c["macs"] + e.neuron_update_pj * c["updates"]
            + e.noc_hop_pj * c["hops_out"] + (e.sram_write_byte_pj + e.sram_read_byte_pj) * buffer_bytes)
