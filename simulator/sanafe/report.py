"""report.json of a SANA-FE run: ``sanafe_report(deployment, run) -> dict`` (schema version 1).

Totals, layers and cores are sums over the batch and every simulated step, as SANA-FE counted them:
``spikes`` neurons fired, ``sops`` synaptic events, ``active_updates`` somas updated (SANA-FE updates
only the neurons whose state can change: the event report's ``active_updates``, not its
``neuron_updates`` of every neuron every step, which stays null here), ``latency_s`` simulated
seconds, ``energy_j`` joules. SANA-FE reports no cycles, no per-layer energy or work and no per-core
energy or updates: those stay null. Memory figures are the mapping's (SANA-FE models none); the core
and neuron totals are those of the core rows (the mapping's cores, reference-only layers included,
and the cores holding the replayed input). A layer's ``synapses_created`` counts the SANA-FE
connections made for it.
Everything SANA-FE-specific (energy breakdown, packets, hops, per-step counters, how each layer was
expressed and what the target conversion assumed) sits under ``"sanafe"``.
"""
from __future__ import annotations

from statten_hw.quant.precision import precision_report
from statten_hw.reports.schema import empty_report

from ._sdk import VERSION
from .plan import INPUT, REFERENCE, SYNAPSES
from .run import SanafeRun, StepCounts

_ENERGY_PARTS = ("total", "synapse", "dendrite", "soma", "network")


def sanafe_report(deployment, run: SanafeRun) -> dict:
    """report.json (DESIGN.md) filled from ``run``; what SANA-FE cannot measure is null."""
    doc = empty_report("simulate", deployment.model, target=deployment.target.name,
                       block_size=deployment.block_size, backend="sanafe")
    steps = [s for sample in run.steps for s in sample]
    mapping = deployment.mapping.totals
    doc["layers"] = _layers(deployment, run)
    doc["cores"] = _cores(deployment, run)
    doc["totals"].update(
        chips=1, cores=len(doc["cores"]), neurons=sum(c["neurons"] for c in doc["cores"]),
        synapse_bytes=mapping.synapse_bytes, state_bytes=mapping.state_bytes, buffer_bytes=mapping.buffer_bytes,
        spikes=sum(s.spikes for s in steps), sops=sum(s.synaptic_events for s in steps),
        active_updates=sum(s.neuron_updates for s in steps), cycles=None,
        latency_s=sum(s.sim_time_s for s in steps), energy_j=sum(s.energy_j["total"] for s in steps))
    doc["sanafe"] = _details(deployment, run, steps)
    doc["precision"] = precision_report(deployment, run.clipping)
    return doc


def _layers(deployment, run: SanafeRun) -> list[dict]:
    cores = {row.name: list(row.cores) for row in deployment.mapping.layers}
    batch = len(run.steps)
    rows = []
    for plan in run.plans:
        fired = run.spikes.get(plan.name)
        spikes = None if fired is None else int(fired.sum())
        rows.append({
            "name": plan.name, "kind": plan.kind, "neurons": plan.neurons, "cores": cores.get(plan.name),
            "spikes": spikes, "sops": None, "energy_j": None,
            "firing_rate": None if spikes is None else spikes / (plan.neurons * plan.steps * batch),
            "sanafe_mode": plan.mode, "sanafe_lag_steps": plan.lag, "synapses_created": run.synapses.get(plan.name),
            "approximation": None if plan.mode == SYNAPSES else plan.note,
            "reference_mismatches": run.reference_mismatches.get(plan.name),
            "reference_overflows": run.clipping["saturated"].get(plan.name, 0)})
    return rows


def _cores(deployment, run: SanafeRun) -> list[dict]:
    """Our mapping's cores (at their SANA-FE core), then the cores holding the replayed input."""
    rows = []
    for row in deployment.mapping.cores:
        rows.append({"id": row.id, "chip": row.chip, "x": row.x, "y": row.y, "layers": list(row.layers),
                     "neurons": row.neurons, "synapse_bytes": row.synapse_bytes, "state_bytes": row.state_bytes,
                     "buffer_bytes": row.buffer_bytes, **_core_counts(run, run.core_of[row.id])})
    for core in sorted({g.core for g in run.groups if g.mapped_core is None}):
        x, y = run.architecture.tile_position(core // run.architecture.cores_per_tile)
        layers = sorted({g.layer for g in run.groups if g.core == core})
        rows.append({"id": None, "chip": 0, "x": x, "y": y, "layers": layers,
                     "neurons": sum(g.neurons for g in run.groups if g.core == core), "synapse_bytes": None,
                     "state_bytes": None, "buffer_bytes": None, **_core_counts(run, core)})
    return rows


def _core_counts(run: SanafeRun, core: int) -> dict:
    c = run.cores.get(core)
    arch = run.architecture
    return {"sanafe_core": f"{core // arch.cores_per_tile}.{core % arch.cores_per_tile}",
            "spikes_in": c.packets_in if c else 0, "spikes_out": c.spikes if c else 0,
            "sops": c.synaptic_events if c else 0, "neuron_updates": None, "cycles_busy": None,
            "noc_packets": c.packets_out if c else 0, "noc_hops": c.hops_out if c else 0, "energy_j": None}


def _details(deployment, run: SanafeRun, steps: list[StepCounts]) -> dict:
    provenance = deployment.target.provenance
    return {
        "version": VERSION, "architecture": run.architecture.source, "timing_model": run.timing_model,
        "samples": len(run.steps), "steps_per_sample": len(run.steps[0]) if run.steps else 0,
        "packets": sum(s.packets for s in steps), "hops": sum(s.hops for s in steps),
        "energy_j": {part: sum(s.energy_j[part] for s in steps) for part in _ENERGY_PARTS},
        "per_sample": [_summary(sample) for sample in run.steps],
        "steps": [[_step(s) for s in sample] for sample in run.steps],
        "layers_bit_exact": sorted(n for n, m in run.reference_mismatches.items() if m == 0),
        "approximations": [{"layer": p.name, "mode": p.mode, "how": p.note} for p in run.plans
                           if p.mode != SYNAPSES],
        "not_on_chip": [p.name for p in run.plans if p.mode == REFERENCE],
        "input_on_free_cores": any(p.kind == INPUT for p in run.plans),
        "target_defaults": list(provenance.defaults), "target_unmodelled": list(provenance.unmodelled),
        "wall_s": run.wall_s,
    }


def _summary(sample: tuple[StepCounts, ...]) -> dict:
    return {"sim_time_s": sum(s.sim_time_s for s in sample), "energy_j": sum(s.energy_j["total"] for s in sample),
            "spikes": sum(s.spikes for s in sample), "packets": sum(s.packets for s in sample),
            "hops": sum(s.hops for s in sample), "sops": sum(s.synaptic_events for s in sample),
            "neuron_updates": sum(s.neuron_updates for s in sample)}


def _step(s: StepCounts) -> dict:
    return {"step": s.step, "spikes": s.spikes, "packets": s.packets, "hops": s.hops, "sops": s.synaptic_events,
            "neuron_updates": s.neuron_updates, "sim_time_s": s.sim_time_s, "energy_j": s.energy_j["total"],
            "input_packets": s.input_packets, "input_hops": s.input_hops}


__all__ = ["sanafe_report"]
