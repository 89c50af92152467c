"""report.json of a Lava run: what Lava measured, and which Lava process runs on which mapped core.

Filled from the run: every neuron layer's ``spikes`` (nonzero outputs over all samples and steps,
as the event simulator counts them) and ``firing_rate``; ``totals.spikes``; each core's
``spikes_out`` (the spikes of the neurons the mapping placed on it, `simulator.event.owners`); and
the ``lava`` section: steps, window, latencies, wall time and every process with its node, mapped
layers, cores and (for a process that emits a layer's output) its spikes, and, given the integer
reference run, whether every layer and the logits equal it (``integer_reference``, with how many
values the reference saturated and how many synaptic sums Lava wrapped: Lava wraps 24-bit synaptic
sums, before their bias, where the contract saturates the sum with its bias, so only a run with
neither is bit-exact), and then the ``precision`` section of every simulation report
(`statten_hw.quant.precision.precision_report`). The placement itself (layer and core identities,
positions, neurons, and the static totals and memory per core) is the deployment's mapping. Nothing
else is measured by Lava (SOPs, cycles, energy, NoC traffic): those fields stay null.

A process belongs to the neuron layers its output reaches without its values travelling between cores
(a conv feeds the LIF after it, a pool or residual sum the layer whose dendrite computes it, by the
event simulator's rule: `dendrite_arrivals`); a process that
reaches none (a spike sum read by synapses, a readout's time mean) belongs to the layers it reads.
"""
from __future__ import annotations

import numpy as np
import torch

from statten_hw.ir.graph import PORT, SHAPE, topological_order
from statten_hw.quant.fixed_point import limit
from statten_hw.quant.quantize import QConv2d, QLinear
from statten_hw.quant.precision import precision_report, run_clipping
from statten_hw.reports.schema import STATIC_TOTALS, empty_report
from statten_hw.simulator.event.network import dendrite_arrivals
from statten_hw.simulator.event.owners import layer_owners

from .neurons import LAVA_ALIGN_BITS


def node_layers(qgraph, layers: set[str], arrivals: frozenset[tuple[str, str]]) -> dict[str, set[str]]:
    """Mapped layers each node's process belongs to (module docstring); ``arrivals``: the ``(node, port)``
    edges whose values come from other cores (`simulator.event.network.dendrite_arrivals`)."""
    g = qgraph.graph
    order = topological_order(g)
    owned: dict[str, set[str]] = {}
    for n in reversed(order):
        if n in layers:
            owned[n] = {n}
            continue
        owned[n] = set()
        for _, succ, data in g.out_edges(n, data=True):
            if succ in layers or (succ, data[PORT]) not in arrivals:
                owned[n] |= owned[succ]
    for n in order:
        if not owned[n]:
            owned[n] = set().union(*(owned[p] for p in g.predecessors(n)))
    return owned


def _layer_spikes(run, rows) -> dict[str, np.ndarray]:
    """Spike count per neuron (flattened layer order) of every recorded layer."""
    return {r.name: (run.spikes[r.name] != 0).sum((0, 1)).reshape(-1) for r in rows if r.name in run.spikes}


def wrapped_sums(qgraph, reference) -> int:
    """Synaptic sums of the integer ``reference`` run that Lava's 24-bit synapses wrap: Lava adds a
    conv's or dense's bias after the synapse (the receiving LIF's ``bias_mant``, a graded process's
    ``bias``), so a bias-free sum beyond the state width wraps there even where the contract's sum
    with its bias fits (and saturates nothing). Each is read back from the reference as output less
    bias, exact wherever the reference did not saturate it."""
    top = limit(qgraph.state_bits)
    wrapped = 0
    for name in qgraph.graph:
        op = qgraph.qop(name)
        if isinstance(op, (QConv2d, QLinear)):
            out = reference.values[name].cpu()
            bias = torch.tensor(op.bias, dtype=out.dtype)  # a copy: the op's array is read-only
            sums = out - (bias.reshape(-1, 1, 1) if isinstance(op, QConv2d) else bias)
            wrapped += int(((sums > top) | (sums < -top - 1)).sum())
    return wrapped


def agreement(run, reference, qgraph) -> dict:
    """Every recorded layer's spikes and the logits of the Lava ``run`` against the integer
    ``reference`` (`statten_hw.quant.run_integer` on the same inputs of ``qgraph``): the contract says
    equal, unless the reference saturated values or Lava wrapped sums (`wrapped_sums`), counted here."""
    equal = {n: bool(np.array_equal(s, reference.values[n].cpu().numpy())) for n, s in run.spikes.items()}
    return {"layers_compared": len(equal), "layers_equal": sum(equal.values()),
            "layers_differing": sorted(n for n, same in equal.items() if not same),
            "logits_equal": bool(np.array_equal(run.logits_int, reference.logits_int.cpu().numpy())),
            "reference_saturated": sum(reference.overflows.values()),
            "lava_wrapped_sums": wrapped_sums(qgraph, reference)}


def lava_report(deployment, run, reference=None) -> dict:
    """report.json (schema version 1, command ``simulate``, backend ``lava``) of ``run`` on ``deployment``;
    with the integer ``reference`` run of the same inputs, ``lava.integer_reference`` says whether they
    agree (`agreement`)."""
    mapping, qgraph = deployment.mapping, deployment.qgraph
    doc = empty_report("simulate", deployment.model, target=mapping.target.name, block_size=mapping.block_size,
                       backend="lava")
    per_neuron = _layer_spikes(run, mapping.layers)
    samples, steps = run.samples, run.timesteps
    cores_of = {r.name: list(r.cores) for r in mapping.layers}
    doc["layers"] = [{"name": r.name, "kind": r.kind, "neurons": r.neurons, "cores": cores_of[r.name],
                      "spikes": int(per_neuron[r.name].sum()) if r.name in per_neuron else None,
                      "sops": None,
                      "firing_rate": float(per_neuron[r.name].sum() / (r.neurons * steps * samples))
                      if r.name in per_neuron else None,
                      "energy_j": None} for r in mapping.layers]
    doc["cores"] = _cores(mapping, qgraph, per_neuron)
    doc["totals"].update({f: getattr(mapping.totals, f) for f in STATIC_TOTALS},
                         spikes=int(sum(int(c.sum()) for c in per_neuron.values())))
    owners = node_layers(qgraph, set(cores_of), dendrite_arrivals(qgraph, mapping))
    doc["lava"] = {
        "run_config": "Loihi2SimCfg(select_tag='fixed_pt')",
        "neuron_model": f"lava.proc.lif LIFReset/TernaryLIF with Lava's fixed-point LIF arithmetic on an integer "
                        f"membrane (no {LAVA_ALIGN_BITS}-bit MSB alignment): statten_hw.simulator.lava.neurons",
        "samples": samples, "timesteps": steps, "window_steps": run.window, "steps": run.steps,
        "wall_s": run.wall_s, "step_s": run.step_s, "latency_steps": dict(run.latency),
        "processes": [_process_row(p, owners, cores_of, run) for p in run.processes],
        "integer_reference": None if reference is None else agreement(run, reference, qgraph),
    }
    if reference is not None:
        doc["precision"] = precision_report(deployment, run_clipping(qgraph, reference))
    return doc


def _process_row(p, owners, cores_of, run) -> dict:
    layers = sorted(owners.get(p.node, set()))
    cores = sorted({c for layer in layers for c in cores_of[layer]})
    spikes = int((run.spikes[p.node] != 0).sum()) if p.emits and p.node in run.spikes else None
    return {"name": p.name, "lava_class": p.lava_class, "node": p.node, "layers": layers,
            "cores": cores if layers else None, "spikes": spikes}


def _cores(mapping, qgraph, per_neuron) -> list[dict]:
    """Mapped cores with the spikes their neurons sent (null where a spiking layer on it went unrecorded)."""
    shapes = {r.name: tuple(qgraph.graph.nodes[r.name][SHAPE]) for r in mapping.layers}
    owner = layer_owners(mapping.pieces, shapes)
    spikes = np.zeros(len(mapping.cores), np.int64)
    unmeasured: set[int] = set()
    for r in mapping.layers:
        ids = owner[r.name].reshape(-1)
        if r.name in per_neuron:
            np.add.at(spikes, ids, per_neuron[r.name])
        elif r.kind != "readout":  # a readout emits no spikes
            unmeasured |= set(ids.tolist())
    return [{"id": c.id, "chip": c.chip, "x": c.x, "y": c.y, "layers": list(c.layers), "neurons": c.neurons,
             "synapse_bytes": c.synapse_bytes, "state_bytes": c.state_bytes, "buffer_bytes": c.buffer_bytes,
             "spikes_in": None,
             "spikes_out": None if c.id in unmeasured else int(spikes[c.id]), "sops": None, "neuron_updates": None,
             "cycles_busy": None, "noc_packets": None, "noc_hops": None, "energy_j": None}
            for c in mapping.cores]

