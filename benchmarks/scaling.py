"""Item 5: how simulation time and memory grow with T, B, image size, depth, and with the events simulated.

Networks are small and medium STAtten configurations (`ModelConfig`) with synthetic weights and BN
calibrated to set the firing rates (`sdt_model`), mapped on ``loihi2``, one image each.

* Size sweeps (T, B, image size, depth around one base network): the fast engine's time (median of
  the repeats) beside the float forward's, and the extra peak memory of one simulation. Memory is
  measured in a fresh child process per point whose allocator returns every large block on free
  (``MALLOC_MMAP_THRESHOLD_``), so that resident memory follows live tensors: ``VmHWM`` during the
  first simulation minus ``VmRSS`` before it.
* Events: one network, its LIFs' firing rate moved by the BN calibration's ``rate`` (T x neurons fixed), plus a T
  sweep at the usual rate: the time of both engines against the spike packets sent and the synaptic
  events (SOPs) simulated, each with a least-squares line ``time = a + b · events`` and its R².

* Wide: the same rate sweep, fast engine only, on a network wide enough (dim 256) that kernels
  rather than per-call overhead take its time, from silent to busy.

The detailed engine handles one packet at a time, so its time should follow the events; the fast
engine runs dense tensor kernels over every neuron and step, so its time should follow T × neurons
and stay flat when only the firing rate moves. The plots show which is the case; the result file
says per engine whether both lines (packets, SOPs) have R² >= ``LINEAR_R2``, and fits the fast
engine's time against T × neurons over the T, image size and depth sweeps.

One torch thread by default: on a shared machine a parallel region on small tensors waits for every
core, and the curves would measure the other jobs. Run: python benchmarks/scaling.py [--repeats 3]
Writes benchmarks/results/scaling.json, scaling_sizes.png and scaling_events.png.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import numpy as np
import torch

from harness import PeakMemory, load_average, paired, parser, run_child, save_png, set_threads, write_result
from sdt_model import RATE, deploy, images, sdt_8_768

from statten_hw.models import ModelConfig

BASE = ModelConfig(family="statten", attention="STAtten", depth=2, dim=64, heads=4, timesteps=4, block_size=2,
                   img_size=32, in_channels=3, num_classes=10, pooling_stat="0011")
SWEEPS = {
    "timesteps": [replace(BASE, timesteps=t) for t in (2, 4, 8, 16)],
    "block_size": [replace(BASE, timesteps=8, block_size=b) for b in (1, 2, 4, 8)],
    "img_size": [replace(BASE, img_size=s) for s in (16, 32, 48, 64)],
    "depth": [replace(BASE, depth=d) for d in (1, 2, 4, 8)],
}
EVENTS_BASE = replace(BASE, depth=1, dim=32, heads=2, img_size=16)
RATES = (0.01, 0.03, 0.08, 0.15, 0.25, 0.4, 0.6)
EVENTS_T = (2, 8)
#: A network where the kernels, not the per-call overhead, take the fast engine's time (the events
#: base spends most of its 10 ms on the calls themselves): its firing rate swept from silent to busy.
WIDE_BASE = replace(BASE, dim=256)
WIDE_RATES = (0.0, 0.02, 0.05, 0.15, 0.3, 0.6)
#: An engine counts as linear in the events where both least-squares lines (packets, SOPs) explain this much.
LINEAR_R2 = 0.9


def network(config: ModelConfig, rate: float = RATE):
    model = sdt_8_768(config, rate=rate)
    return deploy(model, "loihi2", images(2, config, seed=3)), images(1, config, seed=7)


def simulation_memory(config: ModelConfig, rate: float) -> int | None:
    """Extra peak resident bytes of the first fast simulation of one image, in a fresh child process."""
    child = run_child([__file__, "--memory-child", json.dumps(config.to_dict()), str(rate)],
                      env={"MALLOC_MMAP_THRESHOLD_": str(128 << 10)})
    return json.loads(child["stdout"].strip().splitlines()[-1]) if child["returncode"] == 0 else None


def memory_child(config: ModelConfig, rate: float) -> int | None:
    from statten_hw.simulator import simulate

    deployment, x = network(config, rate)
    with PeakMemory() as mem:
        simulate(deployment, x)
    return mem.extra


def point(config: ModelConfig, repeats: int, engines=("fast",), rate: float = RATE, memory: bool = True) -> dict:
    """Times (median of ``repeats``) of the float forward and each engine, the fast engine's extra peak
    memory (``memory``), and the size and events of the simulated image."""
    from statten_hw.simulator import simulate

    deployment, x = network(config, rate)

    def float_forward():
        with torch.no_grad():
            deployment.model(x)

    fns = {"float_forward": float_forward, **{e: (lambda e=e: simulate(deployment, x, engine=e)) for e in engines}}
    timings = paired(fns, repeats)
    t = simulate(deployment, x).report["totals"]
    return {"config": {k: v for k, v in config.to_dict().items() if k in ("timesteps", "block_size", "img_size",
                                                                        "depth", "dim")},
            "rate": rate, "neurons": t["neurons"], "t_x_neurons": t["neurons"] * config.timesteps,
            "cores": t["cores"], "spikes": t["spikes"], "sops": t["sops"], "noc_packets": t["noc_packets"],
            "seconds": {name: v["median_s"] for name, v in timings.items()}, "timings": timings,
            "fast_peak_extra_bytes": simulation_memory(config, rate) if memory else None}


def fit(x: list[float], y: list[float]) -> dict:
    """Least-squares ``y = a + b·x`` and its coefficient of determination."""
    b, a = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    pred = a + b * np.asarray(x, float)
    ss_res = float(((np.asarray(y) - pred) ** 2).sum())
    ss_tot = float(((np.asarray(y) - np.mean(y)) ** 2).sum())
    return {"intercept_s": float(a), "slope_s_per_event": float(b), "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def plot_sizes(sweeps: dict, folder):
    from statten_hw.reports.html import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(2, len(sweeps), figsize=(3.6 * len(sweeps), 6.4), sharex="col")
    for col, (knob, rows) in enumerate(sweeps.items()):
        xs = [r["config"][knob] for r in rows]
        top, bottom = axes[0][col], axes[1][col]
        top.plot(xs, [r["seconds"]["fast"] for r in rows], "o-", label="fast engine")
        top.plot(xs, [r["seconds"]["float_forward"] for r in rows], "s--", label="float forward")
        bottom.plot(xs, [(r["fast_peak_extra_bytes"] or 0) / 2**20 for r in rows], "^-", color="tab:red")
        bottom.set_xlabel(knob)
        bottom.set_xscale("log", base=2)
        if col == 0:
            top.set_ylabel("seconds per image")
            bottom.set_ylabel("fast engine: extra peak RSS (MiB)")
            top.legend(fontsize=8)
    fig.suptitle(f"Scaling around depth {BASE.depth}, dim {BASE.dim}, {BASE.img_size} px, T={BASE.timesteps}, "
                 f"B={BASE.block_size} (one image, one thread)")
    fig.tight_layout()
    return save_png(fig, folder / "scaling_sizes.png")


QUANTITIES = {"noc_packets": "spike packets sent (events x destination cores)", "sops": "synaptic events (SOPs)"}


def plot_events(rows: list[dict], fits: dict, folder, wide: list[dict]):
    """Both engines' time against packets and SOPs (rate and T sweeps of the events base), and a third
    column: the fast engine and the float forward over the wide network's rate sweep."""
    from statten_hw.reports.html import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for i, engine in enumerate(("detailed", "fast")):
        for j, (quantity, label) in enumerate(QUANTITIES.items()):
            ax = axes[i][j]
            for sweep, marker in (("rate", "o"), ("timesteps", "s")):
                sel = [r for r in rows if r["sweep"] == sweep]
                ax.plot([r[quantity] for r in sel], [r["seconds"][engine] for r in sel], marker, label=f"{sweep} sweep")
            xs = np.linspace(0, max(r[quantity] for r in rows), 50)
            f = fits[engine][quantity]
            ax.plot(xs, f["intercept_s"] + f["slope_s_per_event"] * xs, "k--", lw=0.8,
                    label=f"least squares, R²={f['r2']:.3f}")
            ax.set_xlabel(label)
            ax.set_ylabel("seconds per image")
            ax.set_title(f"{engine} engine")
            ax.legend(fontsize=8)
    for row, quantity in enumerate(QUANTITIES):
        ax = axes[row][2]
        for name, marker in (("fast", "o-"), ("float_forward", "s--")):
            ax.plot([r[quantity] for r in wide], [r["seconds"][name] for r in wide], marker, label=name.replace("_", " "))
        ax.set_xscale("symlog", linthresh=1e4)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(QUANTITIES[quantity])
        ax.set_ylabel("seconds per image")
        ax.set_title(f"rate sweep, dim {WIDE_BASE.dim}, {WIDE_BASE.img_size} px, depth {WIDE_BASE.depth}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, folder / "scaling_events.png")


def main(argv=None) -> None:
    p = parser(__doc__, repeats=3, threads=1)
    p.add_argument("--memory-child", nargs=2, metavar=("CONFIG_JSON", "RATE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    if args.memory_child:
        print(json.dumps(memory_child(ModelConfig(**json.loads(args.memory_child[0])), float(args.memory_child[1]))))
        return
    load = load_average()
    sweeps = {}
    for knob, configs in SWEEPS.items():
        sweeps[knob] = [point(c, args.repeats) for c in configs]
        print(knob, [(r["config"][knob], round(r["seconds"]["fast"], 3)) for r in sweeps[knob]])
    events = [{"sweep": "rate", **point(EVENTS_BASE, args.repeats, ("fast", "detailed"), rate)} for rate in RATES]
    events += [{"sweep": "timesteps", **point(replace(EVENTS_BASE, timesteps=t), args.repeats, ("fast", "detailed"))}
               for t in EVENTS_T]
    fits = {e: {q: fit([r[q] for r in events], [r["seconds"][e] for r in events]) for q in QUANTITIES}
            for e in ("fast", "detailed")}
    rate = [r for r in events if r["sweep"] == "rate"]
    flat = {e: max(r["seconds"][e] for r in rate) / min(r["seconds"][e] for r in rate) for e in ("fast", "detailed")}
    sops_range = max(r["sops"] for r in rate) / max(min(r["sops"] for r in rate), 1)
    for e in ("fast", "detailed"):
        f = fits[e]["noc_packets"]
        print(f"{e}: time = {f['intercept_s']:.3g} s + {f['slope_s_per_event']:.3g} s/packet, R² {f['r2']:.3f}; "
              f"over the rate sweep ({sops_range:.0f}x the synaptic events) time moves {flat[e]:.2f}x")
    wide = [point(WIDE_BASE, args.repeats, rate=rate, memory=False) for rate in WIDE_RATES]
    wide_summary = {"sops_max_over_min": max(r["sops"] for r in wide) / max(min(r["sops"] for r in wide), 1),
                    "time_max_over_min": {e: max(r["seconds"][e] for r in wide) / min(r["seconds"][e] for r in wide)
                                          for e in ("fast", "float_forward")},
                    "fast_fit_sops": fit([r["sops"] for r in wide], [r["seconds"]["fast"] for r in wide])}
    print(f"wide network ({WIDE_BASE.dim} dims): {wide_summary['sops_max_over_min']:.0f}x the synaptic events, fast "
          f"engine time {wide_summary['time_max_over_min']['fast']:.2f}x, float forward "
          f"{wide_summary['time_max_over_min']['float_forward']:.2f}x")
    grown = [r for knob in ("timesteps", "img_size", "depth") for r in sweeps[knob]]
    t_x_neurons_fit = fit([r["t_x_neurons"] for r in grown], [r["seconds"]["fast"] for r in grown])
    linear = {e: min(fits[e][q]["r2"] for q in QUANTITIES) >= LINEAR_R2 for e in ("fast", "detailed")}
    plot_sizes(sweeps, args.results)
    plot_events(events, fits, args.results, wide)
    write_result(args.results, "scaling", {
        "threads": threads, "repeats": args.repeats, "base": BASE.to_dict(), "events_base": EVENTS_BASE.to_dict(),
        "sizes": sweeps, "events": events, "events_fit": fits,
        "rate_sweep": {"events_max_over_min": sops_range, "time_max_over_min": flat},
        "linear_in_events": {"r2_at_least": LINEAR_R2, **linear},
        "wide_base": WIDE_BASE.to_dict(), "wide_rate_sweep": wide, "wide_rate_summary": wide_summary,
        "fast_fit_t_x_neurons": t_x_neurons_fit,
        "plots": ["scaling_sizes.png", "scaling_events.png"]}, load)


if __name__ == "__main__":
    sys.exit(main())
