"""The cycle and energy model: counts of one run -> busy cycles per core, latency, energy, buffer use.

Busy cycles of a core in one time slot = ``sop_cycles·(sops + macs) + neuron_update_cycles·updates +
spike_packet_cycles·(packets in + packets out)``, plus the costs a target may split out SANA-FE's way
(each 0 unless stated): ``neuron_access_cycles`` per neuron visited, ``spike_cycles`` per output spike,
``packet_receive_cycles`` per packet received (then ``spike_packet_cycles`` is the sending side only).
A slot lasts as long as its busiest core, plus the longest route taken in it (``hop_cycles`` per hop),
plus the barrier (``step`` targets).

* ``step`` targets: slot = global step. Layer i's logical step t runs at global step
  ``t + start_step_i`` (its neurons update and fire then); its incoming events arrive ``delay_i``
  steps earlier (an attention layer collects its block's q, k, v before it can fire). Every neuron is
  visited in every slot.
* ``layer`` targets: slot = stage (block b, layer i): the layer's B steps of block b, one layer at a
  time, no barrier. A stage visits its layer's neurons once per step.
* SANA-FE targets (`sanafe_timeline`): SANA-FE's own step composition, its ``simple`` timing model.

Energy = ``sop_pj·sops + mac_pj·macs + neuron_update_pj·updates + noc_hop_pj·hops`` + SRAM traffic of
the attention block buffers (each q/k/v event written once, one bit, and read once at the block's end;
``layer`` targets also write and read every layer's output block as a bitmap) + ``spike_pj`` per output
spike + ``packet_pj`` per packet (charged where it is received, host-injected packets included) +
``neuron_access_pj`` per neuron visit + static power × time. A target with a per-visit cost (SANA-FE's
split) charges ``neuron_update`` only for the neurons whose state can change (``active_updates``).
Buffer occupancy (bits) at a global step: q/k/v events received in the current block so far.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from statten_hw.targets.sanafe import FORMAT as SANAFE_FORMAT, read_architecture
from statten_hw.targets.schema import ExecutionStyle

from .counts import Counts
from .network import EventNetwork

PJ = 1e-12
ARRIVAL_FIELDS = ("sops", "macs", "packets_in", "packets_out", "hops_out", "buffer_bits", "events")
FIRE_FIELDS = ("updates", "active_updates", "spikes_out")


@dataclass(frozen=True)
class Timeline:
    """Per-sample slot cycles and per-core busy cycles ``[S, slots, K]``; buffer bits ``[S, slots, K]``;
    ``visits [L, slots, K]``: neurons of each layer visited per slot and core (every sample alike)."""

    slot_cycles: np.ndarray  # [S, slots]
    busy: np.ndarray  # [S, slots, K]
    buffer_bits: np.ndarray  # [S, slots, K]
    slot_names: tuple[str, ...]
    visits: np.ndarray  # [L, slots, K]

    @property
    def cycles(self) -> np.ndarray:
        return self.slot_cycles.sum(1)


def charged_updates(c: dict, per_visit_cost: float) -> np.ndarray:
    """The neuron updates a cost model charges: with a per-visit cost (every neuron visited each step, as
    SANA-FE splits it) only the neurons whose state can change, else every neuron every step."""
    return c["active_updates"] if per_visit_cost else c["updates"]


def _busy(c: dict, timing, visits: np.ndarray) -> np.ndarray:
    if timing.packet_receive_cycles:  # the target splits a packet into its sending and receiving ends
        packets = timing.spike_packet_cycles * c["packets_out"] + timing.packet_receive_cycles * c["packets_in"]
    else:
        packets = timing.spike_packet_cycles * (c["packets_in"] + c["packets_out"])
    return (timing.sop_cycles * (c["sops"] + c["macs"])
            + timing.neuron_update_cycles * charged_updates(c, timing.neuron_access_cycles) + packets
            + timing.neuron_access_cycles * visits + timing.spike_cycles * c["spikes_out"])


def _step_slots(counts: Counts, net: EventNetwork, slots: int, first_fire: list[int],
                gap: int) -> dict[str, np.ndarray]:
    """Counts moved onto global steps: layer i fires its step t at ``first_fire[i] + t`` and its events
    arrive ``gap + delay_i`` steps before. ``[S, G, K]`` per field, ``max_hops``/``host_packets [S, G]``."""
    L, S, T, K = counts["sops"].shape
    arriving = np.stack([counts[f] for f in ARRIVAL_FIELDS])  # [F, L, S, T, K]: one slice add per layer
    firing = np.stack([counts[f] for f in FIRE_FIELDS])
    arrived = np.zeros((len(ARRIVAL_FIELDS), S, slots, K), np.int64)
    fired = np.zeros((len(FIRE_FIELDS), S, slots, K), np.int64)
    hops, host = np.zeros((S, slots), np.int64), np.zeros((S, slots), np.int64)
    for i, layer in enumerate(net.layers):
        fire = slice(first_fire[i], first_fire[i] + T)
        arrive = _arrivals(first_fire[i], gap, layer, T)
        arrived[:, :, arrive] += arriving[:, i]
        fired[:, :, fire] += firing[:, i]
        np.maximum(hops[:, arrive], counts["max_hops"][i], out=hops[:, arrive])
        host[:, arrive] += counts["host_packets"][i]
    out = {**dict(zip(ARRIVAL_FIELDS, arrived)), **dict(zip(FIRE_FIELDS, fired))}
    out["max_hops"], out["host_packets"] = hops, host
    return out


def _arrivals(first_fire: int, gap: int, layer, T: int) -> slice:
    """The slots where a layer's inputs of steps 0..T-1 arrive: ``gap + delay`` before it fires them."""
    start = first_fire - gap - layer.delay_steps
    return slice(start, start + T)


def _step_buffer_bits(counts: Counts, net: EventNetwork, slots: int, first_fire: list[int], gap: int) -> np.ndarray:
    """Attention buffer occupancy ``[S, slots, K]`` on a step-by-step chip: each layer's q/k/v events
    received since its own block began, on the slots where they arrive. A layer's block is its delay + 1
    steps (B for block attention, 1 for attention that works step by step), counted from its own first
    step: a block grid common to all layers would empty a later layer's buffer in mid-block."""
    ev = counts["buffer_bits"]  # [L, S, T, K]
    L, S, T, K = ev.shape
    occ = np.zeros((S, slots, K), ev.dtype)
    for i, layer in enumerate(net.layers):
        if ev[i].any():
            b = layer.delay_steps + 1
            occ[:, _arrivals(first_fire[i], gap, layer, T)] += ev[i].reshape(S, T // b, b, K).cumsum(2).reshape(S, T, K)
    return occ


def _layer_slots(counts: Counts, net: EventNetwork, block: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """Counts per stage (block, layer): ``[S, blocks·L, K]``."""
    L, S, T, K = counts["sops"].shape
    blocks = T // block
    out, names = {}, []
    for f in (*ARRIVAL_FIELDS, *FIRE_FIELDS):
        per = counts[f].reshape(L, S, blocks, block, K).sum(3)  # [L, S, blocks, K]
        out[f] = per.transpose(1, 2, 0, 3).reshape(S, blocks * L, K)
    out["max_hops"] = counts["max_hops"].reshape(L, S, blocks, block).max(3).transpose(1, 2, 0).reshape(S, blocks * L)
    names = [f"block {b} / {layer.name}" for b in range(blocks) for layer in net.layers]
    return out, names


def _neurons(net: EventNetwork) -> np.ndarray:
    """``[L, K]``: neurons of each layer on each core."""
    return np.stack([layer.neurons_per_core for layer in net.layers])


def timeline(counts: Counts, net: EventNetwork, mapping) -> tuple[Timeline, dict[str, np.ndarray]]:
    """Slot cycles, busy cycles and buffer occupancy, plus the per-slot counts they came from."""
    target, sched = mapping.target, mapping.schedule
    if is_sanafe(target):
        return sanafe_timeline(counts, net, mapping)
    t = target.timing
    neurons = _neurons(net)
    if target.execution == ExecutionStyle.STEP:
        first_fire = [layer.start_step for layer in net.layers]
        slots = _step_slots(counts, net, sched.latency_steps, first_fire, 0)
        names = tuple(f"step {g}" for g in range(sched.latency_steps))
        buffer_bits = _step_buffer_bits(counts, net, sched.latency_steps, first_fire, 0)
        barrier = t.barrier_cycles
        visits = np.repeat(neurons[:, None], sched.latency_steps, 1)
    else:
        slots, names = _layer_slots(counts, net, sched.block_size)
        buffer_bits = slots["buffer_bits"]  # a stage holds its layer's whole block
        barrier = 0.0
        L = len(net.layers)
        visits = np.zeros((L, len(names), net.n_cores), np.int64)
        for i in range(L):
            visits[i, i::L] = neurons[i] * sched.block_size
    busy = _busy(slots, t, visits.sum(0))
    slot_cycles = busy.max(2) + t.hop_cycles * slots["max_hops"] + barrier
    return Timeline(slot_cycles, busy, buffer_bits, tuple(names), visits), slots


def is_sanafe(target) -> bool:
    """A target read from a SANA-FE architecture file (`statten_hw.targets.sanafe`)."""
    return target.provenance is not None and target.provenance.format == SANAFE_FORMAT


def pipeline_lags(counts: Counts, net: EventNetwork) -> dict[str, int]:
    """SANA-FE's step lag of every layer: a spike reaches the next layer's somas one step after it is
    sent, so a layer computes its step t at (1-based) step ``t + lag``, ``lag`` = 1 + its attention block
    delay + the largest lag among the layers it receives from (`Counts.sources`); the input is sent at 1."""
    layers = {layer.name: layer for layer in net.layers}
    lags: dict[str, int] = {}

    def lag(name: str) -> int:
        if name not in layers:
            return 1  # the network input
        if name not in lags:
            lags[name] = 1 + layers[name].delay_steps + max(map(lag, counts.sources[name]), default=1)
        return lags[name]
    return {name: lag(name) for name in layers}


def sanafe_timeline(counts: Counts, net: EventNetwork, mapping) -> tuple[Timeline, dict[str, np.ndarray]]:
    """SANA-FE's step composition and its ``simple`` timing model (``schedule_messages_timestep_simple``).

    Layer i computes step t at slot ``t + lag_i - 1`` (`pipeline_lags`); the packets it receives for that
    step are sent and processed one slot earlier, with the sender's spikes. A core's time in a slot is
    ``max(send, receive)``: ``send`` = a visit of each of its neurons + an update of each active one + each
    spike + each packet sent; ``receive`` = each packet received + each synaptic event. The input's
    packets are sent by one more sender (SANA-FE's input neurons, on a core of their own). A slot lasts
    its busiest sender or receiver, plus the synchronization SANA-FE looks up for the tiles in use; the
    NoC adds no time in this model."""
    t = mapping.target.timing
    lags = pipeline_lags(counts, net)
    T = counts.timesteps
    n_slots = max(T, *(lags[layer.name] + T - 1 for layer in net.layers))
    first_fire = [lags[layer.name] - 1 for layer in net.layers]
    slots = _step_slots(counts, net, n_slots, first_fire, 1)
    visits = np.repeat(_neurons(net)[:, None], n_slots, 1)
    send = (t.neuron_access_cycles * visits.sum(0) + t.neuron_update_cycles * slots["active_updates"]
            + t.spike_cycles * slots["spikes_out"] + t.spike_packet_cycles * slots["packets_out"])
    receive = t.packet_receive_cycles * slots["packets_in"] + t.sop_cycles * (slots["sops"] + slots["macs"])
    busy = np.maximum(send, receive)
    slot_cycles = np.maximum(busy.max(2), t.spike_packet_cycles * slots["host_packets"]) + _sync_cycles(mapping)
    names = tuple(f"SANA-FE step {g + 1}" for g in range(n_slots))
    buffer_bits = _step_buffer_bits(counts, net, n_slots, first_fire, 1)
    return Timeline(slot_cycles, busy, buffer_bits, names, visits), slots


def _sync_cycles(mapping) -> float:
    """SANA-FE's end-of-step synchronization, looked up with the number of tiles the mapping uses."""
    arch = read_architecture(mapping.target.provenance.source)
    tiles = len({(c.chip, c.x, c.y) for c in mapping.cores})
    return arch.sync_seconds(tiles) * mapping.target.timing.clock_hz


def energy_parts_pj(c: dict, target, block_bits: np.ndarray | float = 0.0) -> dict[str, np.ndarray]:
    """Dynamic energy (pJ) of counts ``c`` (any common shape) by part, SRAM traffic of the buffers
    included; neuron visits are charged from the timeline (`visit_energy_pj`)."""
    e = target.energy
    buffer_bytes = (c["buffer_bits"] + block_bits) / 8
    return {"sop": e.sop_pj * c["sops"], "mac": e.mac_pj * c["macs"],
            "neuron_update": e.neuron_update_pj * charged_updates(c, e.neuron_access_pj),
            "noc": e.noc_hop_pj * c["hops_out"],
            "sram_buffers": (e.sram_write_byte_pj + e.sram_read_byte_pj) * buffer_bytes,
            "spike_out": e.spike_pj * c["spikes_out"], "packets": e.packet_pj * c["packets_in"]}


def energy_pj(c: dict, target, block_bits: np.ndarray | float = 0.0) -> np.ndarray:
    """Dynamic energy (pJ) of counts ``c`` (any common shape): the sum of `energy_parts_pj`."""
    return sum(energy_parts_pj(c, target, block_bits).values())


def visit_energy_pj(tl: Timeline, target) -> np.ndarray:
    """Energy (pJ) of the neuron visits, ``[L, slots, K]`` per sample (``neuron_access_pj`` each)."""
    return target.energy.neuron_access_pj * tl.visits
