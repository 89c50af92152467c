"""Run a deployment on SANA-FE: ``run_sanafe(deployment, x) -> SanafeRun``.

Per sample, a fresh ``SpikingChip`` of the target's architecture file loads the network of
`build.build_network` and runs one step at a time. Before each step the runner sets what SANA-FE
cannot compute itself (plan.py): the injected currents of `INJECTED` layers and the spike trains of
`REPLAYED` ones, each layer within its window ``t + lag`` (``t < T``); outside its window a layer
has no bias and no replayed spike, and at its end its membrane is cleared, so nothing fills or
drains into another sample's time steps. Every LIF's spikes, every readout's per-step value (its
accumulated potential, differenced) and SANA-FE's per-step counters are read back.
"""
from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from statten_hw.errors import ConfigError
from statten_hw.quant import run_integer
from statten_hw.quant.precision import run_clipping
from statten_hw.targets.sanafe import FORMAT, SanafeArchitecture, read_architecture

from ._sdk import quiet, sanafe
from .build import BuiltNetwork, build_network, load_hardware
from .plan import (GRID, INJECTED, INPUT, READOUT, REPLAYED, SYNAPSES, GroupPlan, LayerPlan, place_groups,
                   plan_layers, sanafe_cores)

TIMING_MODELS = ("simple", "detailed")


@dataclass(frozen=True)
class StepCounts:
    """SANA-FE's counters of one simulated step (`/tmp` notes / SANA-FE ``chip.cpp`` give the definitions).

    ``spikes``: neurons that fired (input neurons included); ``synaptic_events``: synapses looked up
    (SANA-FE's own "spikes"); ``packets``: one per firing neuron per destination core; ``hops``: tile
    hops of those packets; ``neuron_updates``: somas that updated or fired; energies in J, time in s;
    ``input_packets``/``input_hops``: the part of ``packets``/``hops`` sent by the replayed network input.
    """

    step: int
    spikes: int
    packets: int
    hops: int
    synaptic_events: int
    neuron_updates: int
    energy_j: dict
    sim_time_s: float
    input_packets: int
    input_hops: int


@dataclass(frozen=True)
class CoreCounts:
    """Totals of one SANA-FE core over a run: packets it sent and their hops, packets it received and
    the synaptic events they caused there, spikes of its neurons."""

    packets_out: int = 0
    hops_out: int = 0
    packets_in: int = 0
    synaptic_events: int = 0
    spikes: int = 0

    def __add__(self, other: "CoreCounts") -> "CoreCounts":
        return CoreCounts(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[int, ...]:
        return self.packets_out, self.hops_out, self.packets_in, self.synaptic_events, self.spikes


@dataclass(frozen=True)
class SanafeRun:
    """What SANA-FE produced for a batch.

    ``spikes``: per on-chip LIF layer (and replayed layer), int64 ``[T, batch, *shape]`` 0/1 as SANA-FE
    emitted them, aligned to our time steps; ``readouts``: per readout layer its per-step integer value;
    ``reference_mismatches``: per layer, elements differing from the integer reference (for a ternary
    LIF, against its +1 spikes); ``steps[b]``: per-step counters of sample ``b``; ``cores``: per SANA-FE
    core index, totals over the batch; ``core_of``: our core id -> SANA-FE core index.
    """

    architecture: SanafeArchitecture
    timing_model: str
    plans: tuple[LayerPlan, ...]
    groups: tuple[GroupPlan, ...]
    synapses: dict[str, int]
    spikes: dict[str, torch.Tensor]
    readouts: dict[str, torch.Tensor]
    reference_mismatches: dict[str, int]
    clipping: dict  # what the integer reference clipped: `statten_hw.quant.precision.run_clipping`
    steps: tuple[tuple[StepCounts, ...], ...]
    cores: dict[int, CoreCounts]
    core_of: dict[int, int]
    wall_s: float


def run_sanafe(deployment, x: torch.Tensor, *, timing_model: str = "detailed") -> SanafeRun:
    """Simulate ``deployment`` (from ``statten_hw.pipeline.prepare`` on a SANA-FE target) on the batch
    ``x`` (model input layout). ``timing_model``: SANA-FE's ``simple`` (max over cores of send and
    receive work) or ``detailed`` (its default: message scheduling with NoC congestion)."""
    if timing_model not in TIMING_MODELS:
        raise ConfigError(f"timing model must be one of {', '.join(TIMING_MODELS)}, got {timing_model!r}")
    arch = _architecture(deployment.target)
    qgraph, mapping = deployment.qgraph, deployment.mapping
    ref = run_integer(qgraph, x)
    plans = plan_layers(qgraph, mapping, ref.values)
    by_name = {p.name: p for p in plans}
    groups = place_groups(plans, mapping, arch)
    sdk = sanafe()
    start = time.perf_counter()
    with quiet(), tempfile.TemporaryDirectory(prefix="statten-sanafe-") as folder:
        hw = load_hardware(sdk, arch, groups, by_name, Path(folder))
        built = build_network(sdk, hw, by_name, groups, qgraph, arch)
        batch = next(iter(ref.values.values())).shape[1]
        samples = [_Sample(sdk, hw, built, by_name, ref.values, b, timing_model).run() for b in range(batch)]
    wall = time.perf_counter() - start
    spikes = {name: torch.stack([s.spikes[name] for s in samples], 1) for name in samples[0].spikes}
    readouts = {name: torch.stack([s.readouts[name] for s in samples], 1) for name in samples[0].readouts}
    cores: dict[int, CoreCounts] = defaultdict(CoreCounts)
    for s in samples:
        for core, counts in s.cores.items():
            cores[core] = cores[core] + counts
    return SanafeRun(arch, timing_model, tuple(plans), tuple(groups), built.synapses, spikes, readouts,
                     _mismatches(qgraph, ref.values, spikes, readouts), run_clipping(qgraph, ref),
                     tuple(s.steps for s in samples), dict(cores), sanafe_cores(mapping, arch), wall)


def _architecture(target) -> SanafeArchitecture:
    if target.provenance is None or target.provenance.format != FORMAT:
        raise ConfigError(f"--backend sanafe needs a SANA-FE target (sanafe:loihi or an architecture .yaml), "
                          f"got {target.name!r}")
    arch = read_architecture(target.provenance.source)
    if arch.soma_model != "leaky_integrate_fire":
        raise ConfigError(f"--backend sanafe needs a 'leaky_integrate_fire' soma: {target.name!r} has soma model "
                          f"{arch.soma_model!r}")
    return arch


class _Sample:
    """One sample's simulation: window bookkeeping, per-step attribute updates, trace decoding."""

    def __init__(self, sdk, hw, built: BuiltNetwork, plans: dict[str, LayerPlan], values: dict, b: int,
                 timing_model: str):
        self.plans, self.built, self.timing_model = plans, built, timing_model
        self.groups = {g.name: g for g in built.groups}
        self.values = {p.name: values[p.current][:, b].reshape(values[p.current].shape[0], -1)
                       for p in plans.values() if p.mode in (INJECTED, REPLAYED)}
        self.chip = sdk.SpikingChip(hw)
        self.chip.load(built.network)
        self.neurons = self.chip.mapped_neuron_groups
        self.bias = {g.name: np.zeros(g.neurons, dtype=np.int64) for g in built.groups}
        # SANA-FE lists logged potentials by group name (its groups sit in a std::map), then neuron offset.
        self.readout_order = sorted(g.name for g in built.groups if plans[g.layer].kind == READOUT)
        self.potential = {name: np.zeros(self.groups[name].neurons, dtype=np.int64) for name in self.readout_order}
        self.spikes = {p.name: torch.zeros(p.steps, *p.shape, dtype=torch.int64) for p in plans.values()
                       if p.on_chip and p.kind != READOUT}
        self.readouts = {p.name: torch.zeros(p.steps, *p.shape, dtype=torch.int64) for p in plans.values()
                         if p.kind == READOUT}
        self.steps: list[StepCounts] = []
        self.cores: dict[int, CoreCounts] = defaultdict(CoreCounts)

    def run(self) -> "_Sample":
        for group in self.built.groups:
            if self.plans[group.layer].mode == REPLAYED:
                self._replay(group)
        last = max(p.lag + p.steps - 1 for p in self.plans.values() if p.on_chip)
        for step in range(1, last + 1):
            self._set_inputs(step)
            result = self.chip.sim(1, timing_model=self.timing_model, spike_trace=True, perf_trace=True,
                                   message_trace=True, potential_trace=bool(self.readout_order))
            self._record(step, result)
        return self

    def _replay(self, group: GroupPlan) -> None:
        plan, v = self.plans[group.layer], self.values[group.layer]
        lead = [False] * (plan.lag - 1)  # entry k of an input train is used at step k + 1
        for i, neuron in enumerate(self.neurons[group.name]):
            train = lead + [bool(s) for s in v[:, group.start + i].tolist()]
            neuron.set_attributes(model_attributes={"spikes": train})

    def _set_inputs(self, step: int) -> None:
        """Biases for this step: the layer's own (`SYNAPSES`) or the injected current (`INJECTED`) inside
        its window, 0 outside; one step past the window the membrane is cleared too."""
        for group in self.built.groups:
            plan = self.plans[group.layer]
            if plan.mode not in (SYNAPSES, INJECTED):
                continue
            t = step - plan.lag
            if 0 <= t < plan.steps:
                full = self.built.bias[plan.name] if plan.mode == SYNAPSES else self.values[plan.name][t].numpy()
                want = full[group.start:group.start + group.neurons]
            else:
                want = np.zeros(group.neurons, dtype=np.int64)
            neurons = self.neurons[group.name]
            if t == plan.steps:
                for neuron in neurons:
                    neuron.set_attributes(model_attributes={"bias": 0.0, "potential": 0.0})
            else:
                for i in np.flatnonzero(want != self.bias[group.name]).tolist():
                    neurons[i].set_attributes(model_attributes={"bias": float(want[i]) / GRID})
            self.bias[group.name] = want

    def _record(self, step: int, result: dict) -> None:
        for address in result["spike_trace"][0]:
            group = self.groups[address.group_name]
            t = step - self.plans[group.layer].lag
            self.cores[group.core] += CoreCounts(spikes=1)
            if 0 <= t < self.plans[group.layer].steps:
                self.spikes[group.layer][t].view(-1)[group.start + address.neuron_offset] = 1
        input_packets = input_hops = 0
        for message in result["message_trace"][0]:
            if not message["placeholder"]:
                self.cores[message["src_core_id"]] += CoreCounts(packets_out=1, hops_out=message["hops"])
                self.cores[message["dest_core_id"]] += CoreCounts(packets_in=1, synaptic_events=message["spikes"])
                if self.plans[self.groups[message["src_neuron_group_id"]].layer].kind == INPUT:
                    input_packets, input_hops = input_packets + 1, input_hops + message["hops"]
        if self.readout_order:
            self._readout(step, result["potential_trace"][0])
        self.steps.append(StepCounts(step, result["neurons_fired"], result["packets_sent"],
                                     int(result["perf_trace"]["hops"][0]), result["spikes"], result["neurons_updated"],
                                     dict(result["energy"]), result["sim_time"], input_packets, input_hops))

    def _readout(self, step: int, potentials: list[float]) -> None:
        """A readout accumulates ``Σ_t (W·s_t + b)``; the difference of consecutive potentials is step t's value."""
        at = 0
        for name in self.readout_order:
            group = self.groups[name]
            now = np.rint(np.asarray(potentials[at:at + group.neurons]) * GRID).astype(np.int64)
            at += group.neurons
            plan = self.plans[group.layer]
            t = step - plan.lag
            if 0 <= t < plan.steps:
                self.readouts[plan.name][t].view(-1)[group.start:group.start + group.neurons] = torch.from_numpy(
                    now - self.potential[name])
            self.potential[name] = now


def _mismatches(qgraph, values: dict, spikes: dict, readouts: dict) -> dict[str, int]:
    """Elements where SANA-FE differs from the integer reference, per layer (ternary: its +1 spikes)."""
    out = {}
    for name, got in {**spikes, **readouts}.items():
        want = values[qgraph.alias.get(name, name)]
        if name in spikes:
            want = (want == 1).to(torch.int64)
        out[name] = int((got != want.reshape(got.shape)).sum())
    return out


__all__ = ["CoreCounts", "SanafeRun", "StepCounts", "TIMING_MODELS", "run_sanafe"]
