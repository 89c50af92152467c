"""Simulation backends: the cycle-level event simulator (here), Lava (``.lava``) and SANA-FE (``.sanafe``).

>>> from statten_hw.pipeline import prepare                       # doctest: +SKIP
>>> sim = simulate(prepare(None, "loihi2"), x, engine="fast")      # doctest: +SKIP
>>> sim.report["totals"]["energy_j"], sim.predictions               # doctest: +SKIP

The event simulator runs the quantized graph as placed by the mapper; two engines (`event.fast`,
`event.detailed`) produce the same `Counts`, and `event.timing` turns counts into cycles, latency and
energy. `simulate` fills report.json (DESIGN.md) with every field: totals, per layer, per core.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from statten_hw.errors import InputError
from statten_hw.quant.precision import precision_report, run_clipping

from .event.counts import Counts
from .event.network import EventNetwork
from .event.timing import Timeline, timeline

ENGINES = ("fast", "detailed")


@dataclass(frozen=True)
class Simulation:
    """One simulated batch: integer outputs, per-layer spikes, counts, timeline and the report dict."""

    logits_int: torch.Tensor
    spikes: dict[str, torch.Tensor]
    counts: Counts
    timeline: Timeline
    report: dict
    network: EventNetwork

    @property
    def predictions(self) -> torch.Tensor:
        logits = self.logits_int if self.logits_int.dim() == 2 else self.logits_int.sum(0)  # TET: mean over steps
        return logits.argmax(-1).cpu()


def check_device(device: str) -> str:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"--device must be cpu or cuda[:N], got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device is available on this machine")
    return device


#: Per deployment, the float model's static NeuroBench metrics: a deployment is a snapshot (its
#: integer graph was made from the model as it was), and walking the module costs more than the
#: integer run of a small network.
_FLOAT_MODEL_METRICS: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def neurobench_report(deployment, run) -> dict:
    """NeuroBench's metrics of the integer run, under NeuroBench's own names (statten_hw.metrics)."""
    from statten_hw.metrics import NEUROBENCH_VERSION
    from statten_hw.metrics.neurobench import float_model_metrics, neurobench_metrics

    report = {"neurobench_version": NEUROBENCH_VERSION, **neurobench_metrics(deployment.qgraph, run)}
    if deployment.model is not None:
        if deployment not in _FLOAT_MODEL_METRICS:
            _FLOAT_MODEL_METRICS[deployment] = float_model_metrics(deployment.model)
        report["float_model"] = dict(_FLOAT_MODEL_METRICS[deployment])
    return report


def simulate(deployment, x: torch.Tensor, *, engine: str = "fast", device: str = "cpu",
             labels: torch.Tensor | None = None, progress: bool = False) -> Simulation:
    """Simulate ``deployment`` (`statten_hw.pipeline.prepare`) on the batch ``x`` with one engine.

    ``fast``: tensor engine, CPU or CUDA, for real model sizes. ``detailed``: one packet at a time
    through an event queue (CPU), the readable definition; both give identical counts and spikes.
    ``progress``: show a progress bar (projections counted, or samples for the detailed engine)."""
    from statten_hw.evaluate import check_input_shape
    from statten_hw.reports.simulation import simulation_report

    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "detailed" and device != "cpu":
        raise InputError(f"--device {device!r}: the detailed engine runs on the CPU (--device is the fast engine's)")
    check_input_shape(deployment.model, x)
    net = deployment.event_network
    if engine == "fast":
        from .event.fast import run_fast

        run, counts = run_fast(deployment.qgraph, net, x, device=check_device(device), progress=progress)
        logits, spikes = run.logits_int, {layer.name: run.values[layer.name] for layer in net.layers}
    else:
        from statten_hw.quant import run_integer

        from .event.detailed import DetailedEngine

        logits, spikes, counts = DetailedEngine(deployment.qgraph, net).run(x, progress=progress)
        run = run_integer(deployment.qgraph, x, trace_lifs=True)  # for the NeuroBench metrics only
    tl, slots = timeline(counts, net, deployment.mapping)
    report = simulation_report(deployment, net, counts, tl, slots, engine=engine, device=device)
    report["neurobench"] = neurobench_report(deployment, run)
    report["precision"] = precision_report(deployment, run_clipping(deployment.qgraph, run))
    sim = Simulation(logits, spikes, counts, tl, report, net)
    if labels is not None:
        report["simulation"]["accuracy"] = float((sim.predictions == labels.cpu()).double().mean())
    return sim


__all__ = ["ENGINES", "Simulation", "simulate"]
