"""The block-size tradeoff report: report.json, report.md, report.html (plots) and configurations.csv.

A person reads it to pick B. Each metric is plotted against B, with one line per target (and per bit
width and checkpoint when those vary): memory, latency, energy and accuracy. A Pareto view shows
accuracy against cost. A configuration is Pareto-optimal when no other configuration on the same
target is at least as accurate and at least as cheap, and strictly better in one of the two.

The cost is the simulated energy per inference when every configuration has one. Failing that it
is the simulated latency per inference, and failing that the mapping's latency in steps. The report names
which one it used. A metric nothing measured stays null, and its plot says so; it is never drawn
as zero.
"""
from __future__ import annotations

from pathlib import Path

from statten_hw.reports.files import write_report_folder
from statten_hw.reports.html import figure_png, html_page, pyplot
from statten_hw.reports.schema import SCHEMA_VERSION, TOTAL_FIELDS

from .config import bits_label
from .tasks import SIMULATED_TOTALS

#: Pareto cost, in order of preference: (name, how to read it from a result, axis label, plot scale).
COSTS = (("energy_j", lambda r: r["per_inference"]["energy_j"], "energy per inference (µJ, simulated)", 1e6),
         ("latency_s", lambda r: r["per_inference"]["latency_s"], "latency per inference (µs, simulated)", 1e6),
         ("latency_steps", lambda r: r["latency_steps"], "latency (time steps, mapping)", 1))
#: Values spread wider than this ratio are plotted on a log axis (targets can differ 25x in energy).
LOG_SPREAD = 10


def sweep_report_dict(results: list[dict], failed: list[dict], computed: int, reused: int) -> dict:
    """report.json of a sweep: the schema's top level (null where configurations differ) plus
    ``configurations`` (one result each, with its ``pareto`` flag), ``failed`` and the cost used."""
    metric, cost = pareto_cost(results)
    front = pareto_keys(results, cost)
    return {"schema_version": SCHEMA_VERSION, "tool": "statten-hw", "command": "sweep", "model": None,
            "target": None, "block_size": None, "backend": None, "totals": None, "layers": [], "cores": [],
            "configurations": [{**r, "pareto": r["key"] in front} for r in reading_order(results)],
            "failed": failed, "pareto_cost": metric, "run": {"computed": computed, "reused": reused}}


def reading_order(results: list[dict]) -> list[dict]:
    """Grouped by target (in the order given), then bits, precision and series, with B increasing within a group."""
    targets = list(dict.fromkeys(r["target"] for r in results))
    return sorted(results, key=lambda r: (targets.index(r["target"]), r["bits"], r["precision"], r["series"],
                                          r["block_size"]))


def ok_results(results: list[dict]) -> list[dict]:
    return [r for r in results if r["status"] == "ok"]


def pareto_cost(results: list[dict]):
    """The first cost of `COSTS` that every successful configuration has: ``(name, getter)``."""
    ok = ok_results(results)
    for name, get, _, _ in COSTS:
        if ok and all(get(r) is not None for r in ok):
            return name, get
    return None, None


def front_of(r: dict) -> tuple[str, str]:
    """Configurations compete on one Pareto front per target and precision: figures of a graph quantized
    for the graph are approximate on a target whose formats differ, those quantized for it are not."""
    return r["target"], r["precision"]


def pareto_keys(results: list[dict], cost) -> set[str]:
    """Keys of the configurations that no other one on the same front (`front_of`) dominates
    (accuracy up, cost down)."""
    if cost is None:
        return set()
    front = set()
    ok = ok_results(results)
    for r in ok:
        rivals = [o for o in ok if front_of(o) == front_of(r) and o is not r]
        if not any(_dominates((o["accuracy"], cost(o)), (r["accuracy"], cost(r))) for o in rivals):
            front.add(r["key"])
    return front


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """``a`` = (accuracy, cost) is at least as good as ``b`` in both and better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def csv_rows(doc: dict) -> list[dict]:
    """One flat row per configuration: options, status, every total, the derived figures."""
    rows = []
    for r in doc["configurations"]:
        totals = r["totals"] or {field: None for field in TOTAL_FIELDS}
        per_inference = r["per_inference"] or {field: None for field in SIMULATED_TOTALS}
        rows.append({"checkpoint": r["checkpoint"], "target": r["target"], "block_size": r["block_size"],
                     "bits": r["bits"], "precision": r["precision"], "samples": r["samples"], "engine": r["engine"], "status": r["status"],
                     **{f: totals[f] for f in TOTAL_FIELDS},
                     **{f"{f}_per_inference": per_inference[f] for f in SIMULATED_TOTALS},
                     "memory_bytes": r["memory_bytes"], "latency_steps": r["latency_steps"],
                     "lower_bound_cores": r["lower_bound_cores"], "accuracy": r["accuracy"],
                     "integer_overflows": r["integer_overflows"], "inputs_clipped": r["inputs_clipped"],
                     "simulation_agreeing": r["simulation_agreeing"],
                     "pareto": r["pareto"],
                     "worker_deaths": sum(x["worker_deaths"] for x in r["retries"]), "error": r["error"],
                     "key": r["key"]})
    return rows


def _cell(value, scale: float = 1.0, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value * scale, fmt)


def markdown(doc: dict) -> str:
    configs = doc["configurations"]
    run = doc["run"]
    lines = [f"# Block-size sweep: {len(configs)} configuration(s)", "",
             f"{run['computed']} computed in this run, {run['reused']} reused from earlier runs, "
             f"{len(doc['failed'])} failed. Pareto cost: {doc['pareto_cost'] or 'none (nothing measured)'}; "
             "★ = Pareto-optimal on its target and precision (no configuration there is as accurate and cheaper).", "",
             "Latency, energy, spikes and SOPs are per inference (simulated totals / samples); accuracy is "
             "the integer network's on the samples shown. Memory is the mapping's: weights at the target's "
             "own weight width, whatever the bits the network was quantized to.", "",
             "| checkpoint | target | bits | B | cores | memory KiB | buffer KiB | latency steps | latency µs | "
             "energy µJ | spikes | SOPs | accuracy | |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in configs:
        t = r["totals"] or {field: None for field in TOTAL_FIELDS}
        p = r["per_inference"] or {field: None for field in SIMULATED_TOTALS}
        acc = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f} % ({r['correct']}/{r['n']})"
        lines.append(f"| {Path(r['checkpoint']).name} | {r['target']} | {bits_label(r['bits'], r['precision'])} | "
                     f"{r['block_size']} | "
                     f"{_cell(t['cores'])} | {_cell(r['memory_bytes'], 1 / 1024, ',.1f')} | "
                     f"{_cell(t['buffer_bytes'], 1 / 1024, ',.1f')} | {_cell(r['latency_steps'])} | "
                     f"{_cell(p['latency_s'], 1e6, ',.3f')} | {_cell(p['energy_j'], 1e6, ',.4f')} | "
                     f"{_cell(p['spikes'])} | {_cell(p['sops'])} | {acc} | {'★' if r['pareto'] else ''} |")
    lines += _section("Configurations that cannot run (stored: the same inputs fail the same way)",
                      [f"{r['label']}: {r['error']}" for r in configs if r["status"] != "ok"])
    lines += _section("Simulated predictions that differ from the integer reference (a backend defect)",
                      [f"{r['label']}: {r['n'] - r['simulation_agreeing']} of {r['n']} samples" for r in configs
                       if r["simulation_agreeing"] is not None and r["simulation_agreeing"] != r["n"]])
    lines += _section("Integer values saturated at the state width (counted, never hidden)",
                      [f"{r['label']}: {r['integer_overflows']:,} values" for r in configs if r["integer_overflows"]])
    lines += _section("Input values clipped at the input quantizer's range (test data unlike the calibration data)",
                      [f"{r['label']}: {r['inputs_clipped']:,} values" for r in configs if r["inputs_clipped"]])
    lines += _section("Retried after a worker died",
                      [f"{r['label']}: {x['task']} task, {x['worker_deaths']} worker death(s)"
                       for r in [*configs, *doc["failed"]] for x in r["retries"]])
    lines += _section("Failed in this run (not stored; run the sweep again to retry)",
                      [f"{f['label']}: {f['error']}" for f in doc["failed"]])
    return "\n".join(lines) + "\n"


def _section(title: str, items: list[str]) -> list[str]:
    return ["", f"## {title}", "", *[f"- {item}" for item in items]] if items else []


def _series(results: list[dict]) -> dict[str, list[dict]]:
    """Results grouped into plot lines by (series, target, bits, precision); a label names only what varies."""
    keys = [(r["series"], r["target"], r["bits"], r["precision"]) for r in results]
    varies = [len({k[i] for k in keys}) > 1 for i in range(4)]
    names = (str, str, lambda v: f"{v}-bit", lambda v: f"for the {v}")
    groups: dict[str, list[dict]] = {}
    for key, r in zip(keys, results):
        parts = [names[i](v) for i, v in enumerate(key) if varies[i] or i == 1]
        groups.setdefault(" · ".join(parts), []).append(r)
    return {label: sorted(rs, key=lambda r: r["block_size"]) for label, rs in groups.items()}


def _versus_b(plt, results: list[dict], title: str, ylabel: str, get):
    """One metric against B, a line per series; a metric nothing measured gets a note, not zeros."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    drawn = False
    for label, rs in _series(results).items():
        pts = [(r["block_size"], get(r)) for r in rs if get(r) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
            drawn = True
    if drawn:
        ax.legend(fontsize=8)
        _log_if_spread(ax, "y", [get(r) for r in results if get(r) is not None])
    else:
        ax.text(0.5, 0.5, "not measured in this sweep", ha="center", va="center", transform=ax.transAxes)
    ax.set_xscale("log", base=2)
    sizes = sorted({r["block_size"] for r in results})
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.set_xlabel("block size B")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def _log_if_spread(ax, axis: str, values: list[float]) -> None:
    """A log axis when positive values span more than `LOG_SPREAD`: both targets stay readable."""
    if values and min(values) > 0 and max(values) / min(values) > LOG_SPREAD:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def plots(doc: dict) -> list[tuple[str, str]]:
    plt = pyplot()
    ok = ok_results(doc["configurations"])
    if not ok:
        return []

    def per_inference(field, scale):
        return lambda r: None if r["per_inference"][field] is None else r["per_inference"][field] * scale

    figs = [("Memory vs B", _versus_b(plt, ok, "memory (synapse + state + buffer)", "KiB",
                                      lambda r: r["memory_bytes"] / 1024)),
            ("Latency vs B (simulated)", _versus_b(plt, ok, "latency per inference", "µs",
                                                   per_inference("latency_s", 1e6))),
            ("Latency vs B (mapping)", _versus_b(plt, ok, "latency of the schedule", "time steps",
                                                 lambda r: r["latency_steps"])),
            ("Energy vs B", _versus_b(plt, ok, "energy per inference (simulated)", "µJ",
                                      per_inference("energy_j", 1e6))),
            ("Accuracy vs B", _versus_b(plt, ok, "accuracy", "top-1 accuracy (integer network)",
                                        lambda r: r["accuracy"]))]
    out = [(caption, figure_png(fig)) for caption, fig in figs]
    if doc["pareto_cost"] is not None:
        out.append((f"Pareto view: accuracy vs {doc['pareto_cost']}", figure_png(_pareto_figure(plt, ok, doc))))
    return out


def _pareto_figure(plt, ok: list[dict], doc: dict):
    _, cost, label, scale = next(c for c in COSTS if c[0] == doc["pareto_cost"])

    def get(r):
        return cost(r) * scale

    fig, ax = plt.subplots(figsize=(6, 4))
    both = len({r["precision"] for r in ok}) > 1
    for target, precision in dict.fromkeys(map(front_of, ok)):
        rs = [r for r in ok if front_of(r) == (target, precision)]
        name = f"{target}, for the {precision}" if both else target
        dots = ax.scatter([get(r) for r in rs], [r["accuracy"] for r in rs], label=name, alpha=0.6)
        front = sorted((r for r in rs if r["pareto"]), key=get)
        ax.plot([get(r) for r in front], [r["accuracy"] for r in front], color=dots.get_facecolor()[0], lw=1.2)
        for r in rs:
            ax.annotate(f"B={r['block_size']}" + (f" {r['bits']}b" if len({x['bits'] for x in ok}) > 1 else ""),
                        (get(r), r["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    _log_if_spread(ax, "x", [get(r) for r in ok])
    ax.set_xlabel(f"{label} (lower is better)")
    ax.set_ylabel("accuracy (higher is better)")
    ax.legend(fontsize=8, title="target (line: Pareto front)")
    return fig


def write_sweep_report(out_dir, results: list[dict], failed: list[dict], computed: int, reused: int) -> dict:
    """Write the report folder (`write_report_folder`) and return the report.json dict."""
    doc = sweep_report_dict(results, failed, computed, reused)
    md = markdown(doc)
    return write_report_folder(out_dir, {"configurations.csv": csv_rows(doc)}, md,
                               html_page("statten-hw sweep", md, plots(doc)), doc)
