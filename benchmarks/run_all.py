"""The whole benchmark suite, one benchmark per child process, then the results table.

Each benchmark runs alone (``python benchmarks/X.py``) and writes its JSON (and plots) under
benchmarks/results/; this script runs them one after another, so one benchmark's memory or threads
never affect the next, and then rewrites the table between the markers in benchmarks/README.md from
the JSON files. The GPU benchmark runs only where CUDA is available (elsewhere its last result, if
any, is tabled as it is); Lava's needs lava-nc.

Run: python benchmarks/run_all.py [--only fast_vs_float,engines] [--table-only]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from harness import RESULTS, ROOT

from statten_hw.reports.files import atomic_write_text

HERE = Path(__file__).parent
README = HERE / "README.md"
BEGIN, END = "<!-- results table: written by run_all.py -->", "<!-- end of results table -->"
#: In run order: quick ones first, so a failure shows early.
BENCHMARKS = ("sdt_model", "map_sdt_8_768", "map_loihi2", "engines", "lava_vs_event", "fast_vs_float", "pipeline",
              "scaling", "event_kernels", "gpu_sdt", "cuda_call_floor")
#: Benchmarks that need a CUDA device (skipped elsewhere; their result files come from a GPU machine).
GPU_ONLY = ("gpu_sdt", "cuda_call_floor")


def run(name: str) -> int:
    argv = [sys.executable, str(HERE / f"{name}.py")]
    if name in GPU_ONLY and not torch.cuda.is_available():
        print(f"{name}: no CUDA device here; run it on a GPU machine (see its docstring)")
        return 0
    if name == "gpu_sdt":
        argv += ["--out", str(RESULTS / "gpu_sdt.json")]
    print(f"=== {name}", flush=True)
    return subprocess.run(argv, cwd=ROOT).returncode


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def rows() -> list[tuple[str, str, str, str, str]]:
    """(item, what, goal, measured, met) for every result file present."""
    out = []
    if d := _load("fast_vs_float"):
        for key, r in d["results"].items():
            out.append(("1", f"fast engine / float forward, {key}", "<= 2x",
                        f"{r['ratio']['median']:.2f}x ({r['timings']['fast_engine']['median_s']:.3g} s vs "
                        f"{r['timings']['float_forward']['median_s']:.3g} s)", _yes(r["met"])))
    for name, where in (("lava_vs_event", "CPU"), ("lava_vs_event_h100_cpu", "CPU of the GPU host"),
                        ("lava_vs_event_cuda", "CUDA; Lava on the same host's CPU")):
        d = _load(name)
        for r in d["results"] if d else []:
            out.append(("2", f"Lava / event simulator ({where}), batch {r['batch']}", ">= 1000x",
                        f"{r['speedup']['median']:.0f}x (stepping only {r['speedup']['stepping_only']:.0f}x"
                        + (f"; float forward {r['float_forward_speedup']:.0f}x" if "float_forward_speedup" in r else "")
                        + "); "
                        f"Lava bit-exact {r['lava_bit_exact']['layers_equal']}/{r['lava_bit_exact']['layers_compared']}"
                        f" layers", _yes(r["met"])))
    for name, what in (("cuda_call_floor", ""), ("cuda_call_floor_fewer_waits", ", an experiment with fewer waits")):
        d = _load(name)
        for r in d["rows"] if d else []:
            out.append(("2", f"event simulator on CUDA per call, embedded, batch {r['batch']}{what}", "(report)",
                        f"{r['ms_per_call']:.1f} ms, {r['event_over_float']['median']:.2f}x the float forward on the "
                        f"same GPU; {r['launches']} kernel launches, {r['waits']} host waits", "-"))
    if d := _load("engines"):
        for name, r in d["results"].items():
            agree = not r["agreement"]["count_fields_differing"] and r["agreement"]["spikes_equal"]
            out.append(("3", f"detailed / fast engine, {name}, batch {r['batch']}", "(report)",
                        f"{r['detailed_over_fast']['median']:.0f}x, identical spikes and counts: {agree}", "-"))
    if d := _load("pipeline"):
        out.append(("4", "SDT-8-768 pipeline: load+lower+quantize+map+ONNX+NIR+simulate+report", "< 300 s",
                    f"{d['total_s']:.0f} s", _yes(d["met"]["time"])))
        out.append(("4", "SDT-8-768 pipeline peak RSS", "< 8 GiB", f"{d['peak_rss_bytes'] / 2**30:.2f} GiB",
                    _yes(d["met"]["memory"])))
    if d := _load("scaling"):
        for engine, fits in d["events_fit"].items():
            out.append(("5", f"{engine} engine time vs events (rate and T sweeps)", "linear in events",
                        f"R² {fits['noc_packets']['r2']:.3f} on packets, {fits['sops']['r2']:.3f} on SOPs; time moves "
                        f"{d['rate_sweep']['time_max_over_min'][engine]:.2f}x over "
                        f"{d['rate_sweep']['events_max_over_min']:.0f}x the synaptic events",
                        _yes(d["linear_in_events"][engine]) if "linear_in_events" in d else "-"))
        if w := d.get("wide_rate_summary"):
            out.append(("5", f"fast engine time vs events, dim {d['wide_base']['dim']} network (rate sweep)",
                        "(report)", f"time moves {w['time_max_over_min']['fast']:.2f}x over "
                        f"{w['sops_max_over_min']:.0f}x the synaptic events (float forward "
                        f"{w['time_max_over_min']['float_forward']:.2f}x)", "-"))
            f = d["fast_fit_t_x_neurons"]
            out.append(("5", "fast engine time vs T x neurons (T, image and depth sweeps)", "(report)",
                        f"R² {f['r2']:.3f}", "-"))
    if d := _load("event_kernels"):
        for name, r in d["networks"].items():
            out.append(("5", f"event-driven / dense conv kernels, {name}, every conv on its real input "
                        f"({100 * r['mean_input_density']:.0f} % non-zero)", "(report)",
                        f"{r['event_over_dense']:.1f}x, identical sums: {r['all_identical']}", "-"))
        below = [f"{100 * r['density']:.2g} %: {r['event_s'] / r['dense_s']:.2f}x" for r in d["density_sweep"]
                 if r["shape"] == d["density_sweep"][0]["shape"]]
        out.append(("5", f"event-driven / dense conv kernel by input density, conv {d['density_sweep'][0]['shape']}",
                    "(report)", "; ".join(below), "-"))
    if d := _load("gpu_sdt"):
        out.append(("6", f"{d['device_batch_n']['device']} / CPU images per second, SDT-8-768", ">= 20x",
                    f"{d['speedup_images_per_s']:.1f}x", _yes(d["met"])))
    if d := _load("map_loihi2"):
        r, steps = d["result"], d["result"]["before_placement"]
        took = (f"{r['map_model']['median_s']:.1f} s" if r["map_model"] else
                f"not finished, stopped after {r['child_wall_s']:.0f} s (partition {steps['partition_s']:.1f} s)")
        out.append(("7", f"map SDT-8-768 on {r['target_file']} ({steps['chips']} chips, {steps['cores']} cores)",
                    "< 30 s", took, _yes(r["met"])))
    return out


def table() -> str:
    lines = ["| item | measurement | goal | measured | met |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows()]
    return "\n".join(lines)


def write_table() -> None:
    text = README.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(README, f"{head}{BEGIN}\n{table()}\n{END}{tail}")
    print(f"wrote the results table into {README}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(BENCHMARKS), help="comma list of benchmarks to run")
    p.add_argument("--table-only", action="store_true", help="only rewrite the README table from the results")
    args = p.parse_args(argv)
    failed = [] if args.table_only else [n for n in args.only.split(",") if run(n)]
    write_table()
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
