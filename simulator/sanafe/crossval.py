"""Cross-validation of the event simulator against SANA-FE: the same deployment (network, placement,
architecture file) and batch, counted per SANA-FE time step by both tools.

``cross_validate(deployment, x) -> CrossValidation``. The event simulator's counts are moved onto
SANA-FE's steps by its SANA-FE timeline (`statten_hw.simulator.event.timing.sanafe_timeline`): a
layer's spikes and updates of step t at step ``t + lag``, the packets, hops and synaptic events that
feed it one step earlier, when its sources fire. SANA-FE replays the network input with input neurons
on a core of their own, while the event simulator injects it from the host: the input's events are
therefore added to our fired neurons and updated somas (an input neuron counts as updated when it
fires), its packets are our host packets, and the hops they cross on SANA-FE (the host is 0 hops
away) are kept apart in ``input_hops``. Only networks that SANA-FE runs entirely through its own
synapses are compared (every layer in mode `SYNAPSES`, a binary input replayed).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from statten_hw.errors import ConfigError, InputError
from statten_hw.quant import run_integer
from statten_hw.simulator import ENGINES
from statten_hw.simulator.event.detailed import DetailedEngine
from statten_hw.simulator.event.fast import run_fast
from statten_hw.simulator.event.network import build_network
from statten_hw.simulator.event.timing import PJ, energy_pj, is_sanafe, pipeline_lags, timeline, visit_energy_pj

from .plan import INPUT, SYNAPSES, LayerPlan, plan_layers
from .run import SanafeRun, run_sanafe

#: Per-step counts compared exactly.
FIELDS = ("fired", "packets", "hops", "synaptic_events", "neuron_updates")


@dataclass(frozen=True)
class Figures:
    """One tool's figures of a batch: ``steps[field]`` int64 ``[samples, steps]`` (`FIELDS`), the simulated
    time per step ``[samples, steps]`` (s), the total energy (J) and the wall-clock time of the run (s)."""

    steps: dict[str, np.ndarray]
    sim_time_s: np.ndarray
    energy_j: float
    wall_s: float

    @property
    def totals(self) -> dict[str, float]:
        return {**{f: int(a.sum()) for f, a in self.steps.items()}, "sim_time_s": float(self.sim_time_s.sum()),
                "energy_j": self.energy_j}


@dataclass(frozen=True)
class CrossValidation:
    """Both tools' `Figures` (SANA-FE's ``hops`` without ``input_hops``, the hops of the replayed input),
    each layer's step lag as each tool schedules it, and the SANA-FE run itself."""

    ours: Figures
    sanafe: Figures
    input_hops: int
    lags: dict[str, tuple[int, int]]  # layer -> (ours, SANA-FE's)
    run: SanafeRun

    def mismatches(self) -> list[str]:
        """The `FIELDS` whose per-step counts differ (empty: exact agreement)."""
        return [f for f in FIELDS if not np.array_equal(self.ours.steps[f], self.sanafe.steps[f])]

    def relative_difference(self, quantity: str) -> float:
        """``|ours - SANA-FE| / SANA-FE`` of the batch's total ``energy_j`` or ``sim_time_s``."""
        ours, theirs = self.ours.totals[quantity], self.sanafe.totals[quantity]
        return abs(ours - theirs) / theirs


def cross_validate(deployment, x: torch.Tensor, *, engine: str = "fast") -> CrossValidation:
    """Run ``deployment`` (on a SANA-FE target) on the batch ``x`` with the event simulator (``engine``)
    and with SANA-FE (timing model ``simple``, the one the event simulator's SANA-FE timeline follows)."""
    target = deployment.mapping.target
    if not is_sanafe(target):
        raise ConfigError(f"cross-validation needs a SANA-FE target (sanafe:loihi or a .yaml), got {target.name!r}")
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    values = run_integer(deployment.qgraph, x).values
    _check_fully_on_synapses(plan_layers(deployment.qgraph, deployment.mapping, values))
    inputs = values[deployment.qgraph.input_node]
    ours, lags = _event_figures(deployment, x, inputs, engine)
    began = time.perf_counter()
    run = run_sanafe(deployment, x, timing_model="simple")
    wall = time.perf_counter() - began
    sanafe, input_hops = _sanafe_figures(run, wall)
    if sanafe.sim_time_s.shape != ours.sim_time_s.shape:
        raise ConfigError(f"SANA-FE ran {sanafe.sim_time_s.shape[1]} steps per sample, the event simulator's "
                          f"SANA-FE timeline {ours.sim_time_s.shape[1]}")
    return CrossValidation(ours, sanafe, input_hops, {p.name: (lags[p.name], p.lag) for p in run.plans
                                                       if p.kind != INPUT}, run)


def _event_figures(deployment, x: torch.Tensor, inputs: torch.Tensor, engine: str) -> tuple[Figures, dict[str, int]]:
    """The event simulator's figures on SANA-FE's steps (module docstring) and its layer lags; ``inputs``:
    the integer network input ``[T, samples, ...]``, whose events SANA-FE's input neurons fire."""
    target = deployment.mapping.target
    began = time.perf_counter()
    net = build_network(deployment.qgraph, deployment.mapping)
    if engine == "fast":
        _, counts = run_fast(deployment.qgraph, net, x)
    else:
        _, _, counts = DetailedEngine(deployment.qgraph, net).run(x)
    tl, slots = timeline(counts, net, deployment.mapping)
    energy_j = (float(energy_pj(counts.arrays, target).sum())
                + float(visit_energy_pj(tl, target).sum()) * counts.samples) * PJ
    wall = time.perf_counter() - began
    fired_in = _input_events(inputs, tl.slot_cycles.shape[1])
    steps = {"fired": slots["spikes_out"].sum(2) + fired_in,
             "packets": slots["packets_out"].sum(2) + slots["host_packets"], "hops": slots["hops_out"].sum(2),
             "synaptic_events": (slots["sops"] + slots["macs"]).sum(2),
             "neuron_updates": slots["active_updates"].sum(2) + fired_in}
    figures = Figures(steps, tl.slot_cycles / target.timing.clock_hz, energy_j, wall)
    return figures, pipeline_lags(counts, net)


def _input_events(inputs: torch.Tensor, steps: int) -> np.ndarray:
    """``[samples, steps]``: nonzero values of the integer input ``[T, samples, ...]`` per step, at the step
    SANA-FE's input neurons fire them (the input's step t is SANA-FE's step t + 1, our slot t)."""
    per_step = (inputs != 0).flatten(2).sum(2).T.numpy()  # [samples, T]
    out = np.zeros((per_step.shape[0], steps), np.int64)
    out[:, :per_step.shape[1]] = per_step
    return out


def _check_fully_on_synapses(plans: list[LayerPlan]) -> None:
    partial = [f"{p.name} ({p.mode})" for p in plans if p.kind != INPUT and p.mode != SYNAPSES]
    if partial:
        raise ConfigError("cross-validation needs a network SANA-FE runs entirely through its synapses; "
                          f"not so: {', '.join(partial)}")


def _sanafe_figures(run: SanafeRun, wall_s: float) -> tuple[Figures, int]:
    def per_step(get) -> np.ndarray:
        return np.array([[get(s) for s in sample] for sample in run.steps], np.int64)

    steps = {"fired": per_step(lambda s: s.spikes), "packets": per_step(lambda s: s.packets),
             "hops": per_step(lambda s: s.hops - s.input_hops),
             "synaptic_events": per_step(lambda s: s.synaptic_events),
             "neuron_updates": per_step(lambda s: s.neuron_updates)}
    sim_time = np.array([[s.sim_time_s for s in sample] for sample in run.steps])
    energy = sum(s.energy_j["total"] for sample in run.steps for s in sample)
    input_hops = int(per_step(lambda s: s.input_hops).sum())
    return Figures(steps, sim_time, energy, wall_s), input_hops


__all__ = ["FIELDS", "CrossValidation", "Figures", "cross_validate"]
