"""The ``map`` command's report folder: report.json, report.md, report.html (plots), cores.csv, layers.csv.

A mapping is static: it fills the totals it knows (chips, cores, neurons, synapse/state/buffer bytes)
and the layers' and cores' static fields; spikes, SOPs, cycles, latency in seconds and energy stay
null (DESIGN.md: a field a backend cannot measure is null, not zero). What the mapping adds beyond
the schema sits under ``"mapping"`` (lower bound, schedule, placement traffic) and in extra keys.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from .files import JSON_READ_ERRORS, write_report_folder
from .html import figure_png, html_page, pyplot
from .schema import empty_report

_CORE_DYNAMIC = ("spikes_in", "spikes_out", "sops", "neuron_updates", "cycles_busy", "noc_packets", "noc_hops",
                 "energy_j")


def mapping_report_dict(model, result) -> dict:
    """report.json of a mapping (schema version 1; static fields filled, dynamic ones null)."""
    doc = empty_report("map", model, target=result.target.name, block_size=result.block_size, backend="none")
    doc["totals"].update(asdict(result.totals))
    doc["layers"] = [{"name": r.name, "kind": r.kind, "neurons": r.neurons, "cores": list(r.cores), "spikes": None,
                      "sops": None, "firing_rate": None, "energy_j": None, "min_cores": r.min_cores,
                      "fan_in": r.fan_in, "fan_out": r.fan_out, "synapses": r.synapse_count,
                      "synapse_bytes": r.synapse_bytes, "state_bytes": r.state_bytes, "buffer_bytes": r.buffer_bytes,
                      "qkv_bytes": r.qkv_bytes, "accumulator_bytes": r.accumulator_bytes,
                      "residual_bytes": r.residual_bytes, "block_bytes": r.block_bytes,
                      "pre_pool_bytes": r.pre_pool_bytes, "split_bytes": r.split_bytes,
                      "start_step": r.start_step,
                      "delay_steps": r.delay_steps, "assumed_rate": result.rates.get(r.name)}
                     for r in result.layers]
    doc["cores"] = [{"id": c.id, "chip": c.chip, "x": c.x, "y": c.y, "layers": list(c.layers), "neurons": c.neurons,
                     "synapse_bytes": c.synapse_bytes, "state_bytes": c.state_bytes, "buffer_bytes": c.buffer_bytes,
                     **{k: None for k in _CORE_DYNAMIC}, "fan_in": c.fan_in, "fan_out": c.fan_out}
                    for c in result.cores]
    lb = result.lower_bound
    doc["mapping"] = {
        "execution": result.schedule.execution, "schedule": asdict(result.schedule),
        "lower_bound": {"cores": lb.cores, "resources": [{"resource": r, "demand": d, "cap": c, "cores": n}
                                                         for r, d, c, n in lb.resources]},
        "placement": result.placement,
        "traffic_hop_events_per_step": {k: float(v) for k, v in result.traffic.items()},
        "traffic_note": "estimated from assumed firing rates (layers[].assumed_rate) x fan-out; not measured",
        "limits": asdict(result.target.core),
        "weight_bits": result.weight_bits,
        "mesh": asdict(result.target.mesh),
        "violations": [list(v) for v in result.violations],
    }
    return doc


def _markdown(doc: dict) -> str:
    m, t = doc["mapping"], doc["totals"]
    s = m["schedule"]
    lines = [f"# Mapping on {doc['target']} ({doc['model']['family']} / {doc['model']['attention']}, "
             f"T = {s['timesteps']}, B = {doc['block_size']})", "",
             f"- execution: `{m['execution']}`, {s['blocks']} block(s) of {s['block_size']} step(s), "
             f"latency {s['latency_steps']} steps ({s['stages']} stages)",
             f"- cores: **{t['cores']}** on {t['chips']} chip(s); lower bound {m['lower_bound']['cores']}",
             f"- axons: each neuron's fan-in and fan-out fit the target's {doc['mapping']['limits']['fan_in']:,} / "
             f"{doc['mapping']['limits']['fan_out']:,}; a core's distinct inputs and routes (the union over its "
             "neurons) are not checked here: `simulate` counts them and warns where a core needs more",
             f"- neurons {t['neurons']:,}; synapse {t['synapse_bytes']:,} B ({m['weight_bits']}-bit weights); "
             f"state {t['state_bytes']:,} B; "
             f"buffers {t['buffer_bytes']:,} B",
             "- traffic (Σ events × hops per step, assumed rates): "
             + ", ".join(f"{k} {v:,.1f}" for k, v in m["traffic_hop_events_per_step"].items()), "",
             "| resource | demand | per-core cap | cores |", "|---|---|---|---|"]
    lines += [f"| {r['resource']} | {r['demand']:,} | {r['cap']:,} | {r['cores']} |" for r in m["lower_bound"]["resources"]]
    lines += ["", "## Layers", "", "| layer | kind | neurons | cores | min cores | fan-in | synapse B | state B | "
              "buffer B | start step |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['kind']} | {r['neurons']:,} | {_ids(r['cores'])} | {r['min_cores']} | {r['fan_in']} | "
              f"{r['synapse_bytes']:,} | {r['state_bytes']:,} | {r['buffer_bytes']:,} | {r['start_step']} |"
              for r in doc["layers"]]
    lines += ["", "## Cores", "", "| id | chip | x | y | layers | neurons | synapse B | state B | buffer B |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['id']} | {c['chip']} | {c['x']} | {c['y']} | {', '.join(c['layers'])} | {c['neurons']:,} | "
              f"{c['synapse_bytes']:,} | {c['state_bytes']:,} | {c['buffer_bytes']:,} |" for c in doc["cores"]]
    return "\n".join(lines) + "\n"


def _ids(ids: list[int]) -> str:
    return f"{ids[0]}–{ids[-1]}" if len(ids) > 2 and ids == list(range(ids[0], ids[-1] + 1)) else ", ".join(map(str, ids))


#: Plot limits that keep a report of thousands of cores on hundreds of chips readable (and quick).
MAX_FIGURE_INCHES = 16
MAX_BARS = 150
MAX_CHIP_PANELS = 8


def _plots(doc: dict) -> list[tuple[str, str]]:
    plt = pyplot()
    limits, mesh, cores, layers = doc["mapping"]["limits"], doc["mapping"]["mesh"], doc["cores"], doc["layers"]
    figs = []
    fig, ax = plt.subplots(figsize=(min(MAX_FIGURE_INCHES, max(6, 0.35 * len(cores))), 3.5))
    ids = [c["id"] for c in cores]
    width = 0.27
    for k, (label, values, cap) in enumerate((
            ("neurons", [c["neurons"] for c in cores], limits["neurons_per_core"]),
            ("synapse bytes", [c["synapse_bytes"] for c in cores], limits["synapse_bytes_per_core"]),
            ("state + buffer bytes", [c["state_bytes"] + c["buffer_bytes"] for c in cores],
             limits["buffer_bytes_per_core"]))):
        percent = [100 * v / cap if cap else 0 for v in values]
        if len(cores) <= MAX_BARS:
            ax.bar([i + (k - 1) * width for i in ids], percent, width, label=label)
        else:  # thousands of cores: one line per resource, bars would be thinner than a pixel
            ax.plot(ids, percent, lw=0.6, label=label)
    ax.axhline(100, color="k", lw=0.8, ls="--")
    ax.set_xlabel("core")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("% of per-core limit")
    ax.legend(fontsize=8)
    figs.append(("Per-core utilisation", figure_png(fig)))

    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(layers))))
    names = [r["name"] for r in layers][::-1]
    left = [0] * len(names)
    for key in ("synapse_bytes", "state_bytes", "qkv_bytes", "accumulator_bytes", "residual_bytes", "block_bytes",
                "pre_pool_bytes", "split_bytes"):
        vals = [r[key] for r in layers][::-1]
        ax.barh(names, vals, left=left, label=key.replace("_bytes", ""))
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlabel("bytes")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=8)
    figs.append(("Memory per layer", figure_png(fig)))

    chips = sorted({c["chip"] for c in cores}) or [0]
    order = {r["name"]: i for i, r in enumerate(layers)}
    if len(chips) > MAX_CHIP_PANELS:
        figs.append(_system_placement(plt, mesh, cores, order, len(chips)))
        return figs
    fig, axes = plt.subplots(1, len(chips), figsize=(4 * len(chips), 5), squeeze=False)
    cmap = plt.get_cmap("viridis", max(len(layers), 2))
    for ax, chip in zip(axes[0], chips):
        on = [c for c in cores if c["chip"] == chip]
        ax.scatter([c["x"] for c in on], [c["y"] for c in on], s=160, marker="s",
                   c=[cmap(order[c["layers"][0]]) for c in on])
        for c in on:
            ax.annotate(str(c["id"]), (c["x"], c["y"]), ha="center", va="center", fontsize=7, color="w")
        ax.set_title(f"chip {chip}")
        ax.set_xlim(-0.5, mesh["mesh_x"] - 0.5)
        ax.set_ylim(mesh["mesh_y"] - 0.5, -0.5)
        ax.set_aspect("equal")
    figs.append(("Placement on the mesh (colour = first layer on the core, label = core id)", figure_png(fig)))
    return figs


def _system_placement(plt, mesh: dict, cores: list[dict], order: dict[str, int], chips: int) -> tuple[str, str]:
    """Every core at its global mesh position (chip grid x mesh), one panel: with more chips than
    `MAX_CHIP_PANELS`, a panel per chip made figures tens of thousands of pixels wide. ``order``: layer
    -> colour index."""
    gx = [(c["chip"] % mesh["chips_x"]) * mesh["mesh_x"] + c["x"] for c in cores]
    gy = [(c["chip"] // mesh["chips_x"]) * mesh["mesh_y"] + c["y"] for c in cores]
    width, height = max(gx) + 1, max(gy) + 1
    scale = MAX_FIGURE_INCHES / max(width, height)
    fig, ax = plt.subplots(figsize=(max(4.0, width * scale), max(3.0, height * scale)))
    ax.scatter(gx, gy, s=max(1.0, 40 * scale), marker="s", c=[order[c["layers"][0]] for c in cores], cmap="viridis")
    for x in range(mesh["mesh_x"], width, mesh["mesh_x"]):
        ax.axvline(x - 0.5, color="0.6", lw=0.5)
    for y in range(mesh["mesh_y"], height, mesh["mesh_y"]):
        ax.axhline(y - 0.5, color="0.6", lw=0.5)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_aspect("equal")
    return (f"Placement on all {chips} chips (grey lines: chip borders; colour = first layer on the core)",
            figure_png(fig))


def write_mapping_report(out_dir, model, result) -> dict:
    """Write the report folder (`write_report_folder`) and return the report.json dict."""
    doc = mapping_report_dict(model, result)
    md = _markdown(doc)
    tables = {"cores.csv": [{**c, "layers": ";".join(c["layers"])} for c in doc["cores"]],
              "layers.csv": [{**r, "cores": ";".join(map(str, r["cores"]))} for r in doc["layers"]]}
    return write_report_folder(out_dir, tables, md, html_page(f"statten-hw map: {doc['target']}", md, _plots(doc)), doc)


#: The files of one map report folder (`write_mapping_report`), and the table of a multi-B run.
REPORT_FILES = ("report.json", "report.md", "report.html", "cores.csv", "layers.csv")
BLOCK_SIZE_TABLE = "block_sizes.csv"


def _is_map_report(folder: Path) -> bool:
    """Whether ``folder`` holds a report.json that statten-hw's map command wrote."""
    try:
        doc = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except JSON_READ_ERRORS:
        return False
    return isinstance(doc, dict) and doc.get("tool") == "statten-hw" and doc.get("command") == "map"


def remove_other_map_reports(out_dir, block_folders: list[str] | None) -> list[Path]:
    """Remove what an earlier ``map`` run into ``out_dir`` left that this run does not rewrite, so the
    folder never shows two runs side by side: with one block size (``block_folders`` None) the
    ``B<k>`` report folders and the block-size table; with several, the report in ``out_dir`` itself
    and the ``B<k>`` folders not in ``block_folders``. Only folders whose report.json is a map
    report are touched (a user's own files stay). Returns what was removed."""
    out = Path(out_dir)
    removed = []
    for folder in sorted(out.glob("B[0-9]*")):
        if folder.is_dir() and folder.name not in (block_folders or ()) and _is_map_report(folder):
            shutil.rmtree(folder)
            removed.append(folder)
    if block_folders is None and (out / BLOCK_SIZE_TABLE).is_file():
        (out / BLOCK_SIZE_TABLE).unlink()
        removed.append(out / BLOCK_SIZE_TABLE)
    if block_folders is not None and _is_map_report(out):
        for name in REPORT_FILES:
            if (out / name).is_file():
                (out / name).unlink()
                removed.append(out / name)
    return removed


__all__ = ["BLOCK_SIZE_TABLE", "REPORT_FILES", "mapping_report_dict", "remove_other_map_reports", "write_mapping_report"]
