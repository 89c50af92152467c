"""The ``simulate`` command's report: report.json with every field filled, report.md, report.html, CSV.

Counts are sums over all simulated samples (integers); ``latency_s`` and ``cycles`` are those of the
samples run one after another; ``per_inference`` gives the means per sample. The totals' energy includes
static power over the run's duration when the target states one (the chips', so the layers' and cores'
``energy_j`` are their dynamic energy only), and the neuron visits of every time slot.
``neuron_updates`` counts every neuron every step it computes on; ``active_updates`` only those whose state can change
(SANA-FE's count, `statten_hw.simulator.event.counts.count_active_updates`).
"""
from __future__ import annotations

import numpy as np

from statten_hw.simulator.event.axons import core_axons
from statten_hw.simulator.event.timing import PJ, energy_parts_pj, visit_energy_pj

from .files import write_report_folder
from .html import figure_png, html_page, pyplot
from .mapping import mapping_report_dict


def _block_bits(counts, net, layer_style: bool) -> np.ndarray:
    """``layer`` targets write and read every layer's output block: per neuron and step (one neuron
    update) one value of the layer's width (a spike 1 bit, a graded value the state width)."""
    if not layer_style:
        return np.zeros_like(counts["updates"], dtype=np.float64)
    bits = np.array([layer.value_bits for layer in net.layers], np.float64)
    return counts["updates"] * bits[:, None, None, None]


def _firing_rate(row: dict, spikes: int, steps: int) -> float | None:
    """Spikes per neuron and step; None for a readout, whose accumulators emit nothing to count (a
    rate of 0 would read as a silent layer), as the Lava report gives it."""
    return None if row["kind"] == "readout" else spikes / (row["neurons"] * steps)


def _rate_text(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.4f}"


def simulation_report(deployment, net, counts, tl, slots, *, engine: str, device: str) -> dict:
    mapping, target = deployment.mapping, deployment.mapping.target
    doc = mapping_report_dict(deployment.model, mapping)
    doc.update(command="simulate", backend="event")
    c = counts.arrays
    layer_style = target.execution.value == "layer"
    parts = energy_parts_pj(c, target, _block_bits(counts, net, layer_style))  # [L, S, T, K] each
    dyn_pj = sum(parts.values())
    S, T = counts.samples, counts.timesteps
    visit_pj = visit_energy_pj(tl, target) * S  # [L, slots, K], all samples
    seconds = tl.cycles / target.timing.clock_hz  # per sample
    static_j = target.energy.static_power_mw * 1e-3 * seconds.sum() * mapping.totals.chips
    per_layer = {name: a.sum(axis=tuple(range(1, a.ndim))).tolist() for name, a in c.items()}  # one pass each
    per_core = {name: a.sum((0, 1, 2)).tolist() for name, a in c.items() if a.ndim == 4}
    energy = (dyn_pj.sum((1, 2)) + visit_pj.sum(1)) * PJ  # [L, K]
    for i, row in enumerate(doc["layers"]):
        spikes = per_layer["spikes_out"][i]
        row.update(spikes=spikes, sops=per_layer["sops"][i] + per_layer["macs"][i], macs=per_layer["macs"][i],
                   firing_rate=_firing_rate(row, spikes, T * S), energy_j=float(energy[i].sum()),
                   packets=per_layer["packets_in"][i], neuron_updates=per_layer["updates"][i],
                   active_updates=per_layer["active_updates"][i])
    busy, buffer_peak = tl.busy.sum((0, 1)).tolist(), tl.buffer_bits.max((0, 1), initial=0)
    core_energy = energy.sum(0).tolist()
    axons = core_axons(net)
    for k, row in enumerate(doc["cores"]):
        row.update(input_axons=int(axons.inputs[k]), output_axons=int(axons.outputs[k]),
                   spikes_in=per_core["packets_in"][k], spikes_out=per_core["spikes_out"][k],
                   sops=per_core["sops"][k] + per_core["macs"][k], neuron_updates=per_core["updates"][k],
                   active_updates=per_core["active_updates"][k], cycles_busy=busy[k],
                   noc_packets=per_core["packets_out"][k], noc_hops=per_core["hops_out"][k],
                   energy_j=core_energy[k], buffer_peak_bytes=int(np.ceil(buffer_peak[k] / 8)))
    total = {name: sum(values) for name, values in per_layer.items()}
    dyn_j = float(energy.sum())
    doc["totals"].update(spikes=total["spikes_out"], sops=total["sops"] + total["macs"],
                         neuron_updates=total["updates"], cycles=float(tl.cycles.sum()),
                         latency_s=float(seconds.sum()), energy_j=dyn_j + static_j)
    doc["totals"].update(macs=total["macs"], noc_packets=total["packets_out"] + total["host_packets"],
                         input_packets=total["host_packets"], noc_hops=total["hops_out"],
                         active_updates=total["active_updates"],
                         # all cores at one moment, as buffer_bytes is all cores' allocation (not the busiest core)
                         buffer_peak_bytes=int(np.ceil(tl.buffer_bits.sum(2).max(initial=0) / 8)))
    breakdown = {part: float(pj.sum()) for part, pj in parts.items()} | {"neuron_access": float(visit_pj.sum())}
    doc["simulation"] = {
        "engine": engine, "device": device, "samples": S, "timesteps": T,
        "slots": list(tl.slot_names), "slot_cycles_mean": (tl.slot_cycles.mean(0)).tolist(),
        "per_inference": {"cycles": float(tl.cycles.mean()), "latency_s": float(seconds.mean()),
                          "energy_j": (dyn_j + static_j) / S,
                          "throughput_per_s": float(1 / seconds.mean()) if seconds.mean() > 0 else None},
        "energy_breakdown_j": {k: v * PJ for k, v in breakdown.items()} | {"static": static_j},
        "busy_cycles_per_slot_core": tl.busy.sum(0).tolist(),
        "buffer_bits_per_slot_core_max": tl.buffer_bits.max(0).tolist(),
        "accuracy": None,
        "axons": axon_summary(axons, target),
    }
    return doc


def axon_summary(axons, target) -> dict:
    """The busiest core's input and output axons (`statten_hw.simulator.event.axons`), the target's
    limits, and every core past them."""
    over = axons.over(target.core.fan_in, target.core.fan_out)
    return {"max_input_axons": int(axons.inputs.max(initial=0)), "max_output_axons": int(axons.outputs.max(initial=0)),
            "fan_in": target.core.fan_in, "fan_out": target.core.fan_out,
            "over": [{"core": k, "quantity": q, "used": used, "limit": limit} for k, q, used, limit in over]}


def axon_problem(axons: dict) -> str:
    """The clause saying that a placement needs more axons than its cores have; empty when it does not."""
    if not axons["over"]:
        return ""
    first = axons["over"][0]
    cores = len({o["core"] for o in axons["over"]})
    return (f"{cores} core(s) need more axons than the target's per-core limits (first: core {first['core']}, "
            f"{first['used']:,} {first['quantity']} > {first['limit']:,}); the mapper checks each neuron's fan-in "
            "and fan-out, not a core's distinct inputs and routes, so this placement would not load as mapped")


def _markdown(doc: dict) -> str:
    t, s = doc["totals"], doc["simulation"]
    pi = s["per_inference"]
    lines = [f"# Simulation on {doc['target']} ({doc['model']['family']} / {doc['model']['attention']}, "
             f"T = {s['timesteps']}, B = {doc['block_size']}, {s['engine']} engine on {s['device']})", "",
             f"- samples: {s['samples']}" + _data_text(doc)
             + (f", accuracy {100 * s['accuracy']:.2f} %" if s["accuracy"] is not None else ""),
             f"- per inference: {pi['cycles']:,.0f} cycles, latency {pi['latency_s'] * 1e6:,.2f} µs, "
             f"energy {pi['energy_j'] * 1e6:,.3f} µJ",
             f"- totals over the {s['samples']} sample(s): spikes {t['spikes']:,}, synaptic ops {t['sops']:,} (of which graded MACs {t['macs']:,}), "
             f"neuron updates {t['neuron_updates']:,} (active {t['active_updates']:,}), NoC packets "
             f"{t['noc_packets']:,} (of which the host's input {t['input_packets']:,}; the cores' table counts what "
             f"each core sends), hops {t['noc_hops']:,}",
             f"- cores {t['cores']} on {t['chips']} chip(s); buffers: {t['buffer_bytes']:,} B allocated by the "
             f"mapping; the attention's q/k/v values held at once peak at {t['buffer_peak_bytes']:,} B (nonzero "
             "values; the other buffers are not tracked over time)", _axon_line(s["axons"]), *_precision_lines(doc), "",
             f"| energy part (all {s['samples']} samples) | J |", "|---|---|"]
    lines += [f"| {k} | {v:.3e} |" for k, v in s["energy_breakdown_j"].items()]
    static = s["energy_breakdown_j"]["static"]
    per_part = (f"Totals over the {s['samples']} sample(s); energy is the dynamic part"
                + (f" (the chips' static {static:.3e} J is in the totals only)." if static else "."))
    lines += ["", "## Layers", "", per_part, "", "| layer | kind | neurons | spikes | rate | SOPs | packets in | energy J |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['kind']} | {r['neurons']:,} | {r['spikes']:,} | {_rate_text(r['firing_rate'])} | "
              f"{r['sops']:,} | {r['packets']:,} | {r['energy_j']:.3e} |" for r in doc["layers"]]
    lines += ["", "## Cores", "", per_part, "", "| id | chip | x | y | packets in (spikes, graded values) | spikes out | SOPs | updates | busy cycles | "
              "packets out | hops | energy J |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['id']} | {c['chip']} | {c['x']} | {c['y']} | {c['spikes_in']:,} | {c['spikes_out']:,} | "
              f"{c['sops']:,} | {c['neuron_updates']:,} | {c['cycles_busy']:,.0f} | {c['noc_packets']:,} | "
              f"{c['noc_hops']:,} | {c['energy_j']:.3e} |" for c in doc["cores"]]
    return "\n".join(lines) + "\n"


def _axon_line(axons: dict) -> str:
    line = (f"- axons: the busiest core receives {axons['max_input_axons']:,} distinct inputs (the target allows "
            f"{axons['fan_in']:,}) and sends {axons['max_output_axons']:,} routes (allows {axons['fan_out']:,})")
    problem = axon_problem(axons)
    return f"{line}; **{problem}**" if problem else line


def _data_text(doc: dict) -> str:
    """`` of INPUT, network quantized on CALIBRATION``: the data of a run of the command line (none via
    the API); a built-in data set's split is named (a ``.npz`` file has none)."""
    from statten_hw.data import DATASETS

    data = doc.get("data")
    if not data:
        return ""

    def named(name: str, split: str) -> str:
        return f"{name} ({split} split)" if name in DATASETS else name

    return f" of {named(data['input'], 'test')}, network quantized on {named(data['calibration'], 'train')}"


def input_clipping(precision: dict) -> str:
    """The clause saying how many input values the input quantizer clipped, and what to do about it."""
    low, high = precision["input_range"]
    return (f"{precision['inputs_clipped']:,} value(s) outside the input quantizer's range [{low:g}, {high:g}] "
            "were clipped (the network was quantized on other data; --calibration names data like this)")


def _precision_lines(doc: dict) -> list[str]:
    p = doc["precision"]
    problems, graph, saturated = p["problems"], p["graph"], p.get("saturated", {})
    lines = [f"- number formats: the integer graph was quantized for the target's ({graph['weight_bits']}-bit "
             f"weights, exponents up to {graph['weight_exponent']}, {graph['state_bits']}-bit state)"
             ] if p["quantized_for"] == "target" else []
    if p.get("inputs_clipped"):
        lines.append(f"- **input: {input_clipping(p)}**")
    if saturated:
        worst = max(saturated, key=saturated.get)
        lines.append(f"- saturated at the {graph['state_bits']}-bit state: {sum(saturated.values()):,} values in "
                     f"{len(saturated)} node(s), most in {worst} ({saturated[worst]:,})")
    if not problems:
        return [*lines, "- number formats: every weight, state and decay of the integer graph fits the target's"]
    return [*lines, f"- **number formats: the integer graph does not fit the target's in {len(problems)} place(s)**, "
            "so the figures are approximate there:", *(f"  - {line}" for line in problems)]


def _plots(doc: dict) -> list[tuple[str, str]]:
    plt = pyplot()
    s = doc["simulation"]
    busy = np.array(s["busy_cycles_per_slot_core"])
    figs = []
    fig, ax = plt.subplots(figsize=(8, 4))
    im = ax.imshow(busy.T, aspect="auto", cmap="magma", interpolation="nearest")
    ax.set_xlabel("time slot (global step, or stage for layer-by-layer targets)")
    ax.set_ylabel("core")
    fig.colorbar(im, label="busy cycles (all samples)")
    figs.append(("Per-core activity over time", figure_png(fig)))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    buf = np.array(s["buffer_bits_per_slot_core_max"]) / 8
    ax.plot(buf.sum(1), label="all cores")
    ax.plot(buf.max(1), label="busiest core")
    ax.set_xlabel("time slot")
    ax.set_ylabel("attention buffer bytes in use")
    ax.legend()
    figs.append(("Buffer occupancy over time", figure_png(fig)))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    parts = s["energy_breakdown_j"]
    ax.bar(list(parts), [v * 1e6 for v in parts.values()])
    ax.set_ylabel("µJ (all samples)")
    ax.tick_params(axis="x", rotation=30)
    figs.append(("Energy breakdown", figure_png(fig)))
    return figs


def _backend_markdown(doc: dict) -> str:
    """Summary of another backend's report (Lava, SANA-FE): the fields it measured; null = not measured."""
    lines = [f"# {doc['backend']} run on {doc['target']} ({doc['model']['family']} / {doc['model']['attention']}, "
             f"B = {doc['block_size']})", ""]
    if doc.get("data"):
        lines += [f"- samples: {doc['data']['samples']}{_data_text(doc)}"]
    if doc.get("precision"):
        lines += _precision_lines(doc)
    lines.append("")
    lines += ["| total | value |", "|---|---|"]
    lines += [f"| {k} | {_measured(v)} |" for k, v in doc["totals"].items()]
    lines += ["", "| layer | kind | neurons | spikes | SOPs |", "|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r.get('kind')} | {_measured(r.get('neurons'))} | {_measured(r.get('spikes'))} | "
              f"{_measured(r.get('sops'))} |" for r in doc["layers"]]
    if approximations := doc.get("sanafe", {}).get("approximations"):
        lines += ["", "## Layers SANA-FE does not run as synapses", "",
                  "Their synaptic work is not in SANA-FE's counts (SOPs, energy): the event simulator's report has it.",
                  "", *(f"- {a['layer']} ({a['mode']}): {a['how']}" for a in approximations)]
    return "\n".join(lines) + "\n"


def _measured(value) -> str:
    """A report value for a table: 'not measured' for null, integers with separators, floats to 4 digits."""
    if value is None:
        return "not measured"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _backend_plots(doc: dict) -> list[tuple[str, str]]:
    rows = [r for r in doc["layers"] if r.get("spikes") is not None]
    if not rows:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(rows))))
    ax.barh([r["name"] for r in rows][::-1], [r["spikes"] for r in rows][::-1])
    ax.set_xlabel("spikes (all samples)")
    ax.tick_params(axis="y", labelsize=7)
    return [("Spikes per layer", figure_png(fig))]


def _flat(value):
    return ";".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def write_simulation_report(out_dir, doc: dict) -> dict:
    """Write report.json, report.md, report.html, cores.csv and layers.csv (`write_report_folder`),
    for the event simulator's report or another backend's."""
    tables = {"cores.csv": [{k: _flat(v) for k, v in c.items()} for c in doc["cores"]],
              "layers.csv": [{k: _flat(v) for k, v in r.items()} for r in doc["layers"]]}
    event = "simulation" in doc
    md = _markdown(doc) if event else _backend_markdown(doc)
    figures = _plots(doc) if event else _backend_plots(doc)
    return write_report_folder(out_dir, tables, md, html_page(f"statten-hw simulate: {doc['target']}", md, figures), doc)


__all__ = ["axon_problem", "axon_summary", "input_clipping", "simulation_report", "write_simulation_report"]
