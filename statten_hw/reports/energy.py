"""The ``energy`` command's report folder: report.json, report.md, report.html and a per-layer CSV."""
from __future__ import annotations

from statten_hw.energy import EnergyReport, energy_table

from .files import write_report_folder
from .html import figure_png, html_page, pyplot
from .schema import empty_report


def energy_report_dict(model, report: EnergyReport) -> dict:
    doc = empty_report("energy", model, target="paper45nm", block_size=model.config.block_size, backend="none")
    doc["totals"]["energy_j"] = report.total_j
    doc["layers"] = [{"name": r["name"], "kind": r["kind"], "neurons": None, "cores": [], "spikes": None,
                      "sops": None, "firing_rate": r["mean_rate"], "energy_j": r["energy_j"],
                      "op": r["op"], "ops": r["ops"], "formula": r["formula"]} for r in energy_table(report)]
    doc["energy_model"] = {"e_mac_j": report.e_mac_j, "e_ac_j": report.e_ac_j, "rate_source": report.rate_source,
                           "reference": "Lee et al., STAtten (CVPR 2025), Table 7; Horowitz, ISSCC 2014"}
    return doc


def _markdown(doc: dict) -> str:
    lines = [f"# Energy, paper45nm ({doc['model']['family']} / {doc['model']['attention']}, "
             f"T = {doc['model']['timesteps']}, B = {doc['block_size']})", "",
             f"Rates: {doc['energy_model']['rate_source']}. Total: **{doc['totals']['energy_j'] * 1e6:.3f} µJ** per sample.",
             "", "| layer | kind | op | ops | mean rate | energy (µJ) | formula |", "|---|---|---|---|---|---|---|"]
    for row in doc["layers"]:
        rate = "analog" if row["firing_rate"] is None else f"{row['firing_rate']:.4f}"
        lines.append(f"| {row['name']} | {row['kind']} | {row['op']} | {row['ops']:,} | {rate} | "
                     f"{row['energy_j'] * 1e6:.4f} | `{row['formula']}` |")
    lines += ["", "ops: the formula's dense count before rates: F, one step of a conv or linear; for an attention "
              "its whole prefactor, T included."]
    return "\n".join(lines) + "\n"


def _energy_figure(doc: dict) -> list[tuple[str, str]]:
    plt = pyplot()
    rows = doc["layers"][::-1]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(rows))))
    colours = {"conv": "tab:blue", "linear": "tab:green", "attention": "tab:red"}
    ax.barh([r["name"] for r in rows], [r["energy_j"] * 1e6 for r in rows],
            color=[colours.get(r["kind"], "tab:gray") for r in rows])
    ax.set_xlabel("energy per sample (µJ)")
    ax.tick_params(axis="y", labelsize=7)
    return [("Energy per layer (blue conv, green linear, red attention)", figure_png(fig))]


def write_energy_report(out_dir, model, report: EnergyReport) -> dict:
    """Write the report folder (`write_report_folder`) and return the report.json dict."""
    doc = energy_report_dict(model, report)
    md = _markdown(doc)
    tables = {"layers.csv": [{k: v for k, v in row.items() if k != "cores"} for row in doc["layers"]]}
    return write_report_folder(out_dir, tables, md, html_page("statten-hw energy: paper45nm", md, _energy_figure(doc)), doc)
