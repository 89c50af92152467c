"""Item 4: the whole pipeline on SDT-8-768 / 224 px / T = 4, as a user runs it: checkpoint to report.

Setup (not timed): the synthetic SDT-8-768 (`sdt_model`) is saved as a checkpoint in the STAtten
repository's layout, with two calibration images and one test image as ``.npz``. Then one child
process, alone, runs and times each stage with the functions `statten_hw.pipeline.prepare` and the
CLI use: load the checkpoint, lower, quantize (2 calibration images), map on ``paper45nm``, export the
integer ONNX and NIR files, simulate one image with the fast engine and write the report folder.
The child reports its own peak resident memory (``VmHWM``: the whole pipeline, and nothing of the
parent that built the synthetic model). Goals: < 5 min, peak RSS < 8 GiB.

Run: python benchmarks/pipeline.py [--threads N]   Writes benchmarks/results/pipeline.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import load_average, parser, peak_rss_bytes, run_child, set_threads, write_result
from sdt_model import CONFIG, images, save_checkpoint, sdt_8_768

GOAL_S, GOAL_RSS = 300.0, 8 * 2**30
TARGET = "paper45nm"


def stages(checkpoint: Path, calibration: Path, image: Path, out: Path) -> dict:
    """The timed pipeline (runs in the child): seconds per stage, file sizes, what was simulated."""
    from statten_hw.data import load_npz
    from statten_hw.export.nir_export import export_nir
    from statten_hw.export.onnx_integer import export_integer_onnx
    from statten_hw.ir import lower
    from statten_hw.mapping import map_model
    from statten_hw.models import load_checkpoint
    from statten_hw.pipeline import Deployment
    from statten_hw.quant import quantize
    from statten_hw.reports.simulation import write_simulation_report
    from statten_hw.simulator import simulate

    seconds: dict[str, float] = {}

    def stage(name, fn):
        t = time.perf_counter()
        value = fn()
        seconds[name] = time.perf_counter() - t
        return value

    model = stage("load", lambda: load_checkpoint(checkpoint))
    calib_x, _ = load_npz(calibration)
    graph = stage("lower", lambda: lower(model))
    qgraph = stage("quantize", lambda: quantize(graph, calib_x))
    mapping = stage("map", lambda: map_model(qgraph.float_graph, TARGET, model.config.block_size))
    onnx = stage("export_onnx", lambda: export_integer_onnx(qgraph, out / "sdt.int.onnx"))
    nir = stage("export_nir", lambda: export_nir(qgraph, out / "sdt.nir"))
    deployment = Deployment(checkpoint, model, qgraph, mapping, str(calibration))
    x, _ = load_npz(image)
    sim = stage("simulate", lambda: simulate(deployment, x))
    stage("report", lambda: write_simulation_report(out / "report", sim.report))
    totals = sim.report["totals"]
    return {"seconds": seconds, "total_s": sum(seconds.values()), "peak_rss_bytes": peak_rss_bytes(),
            "files_bytes": {"onnx": Path(onnx).stat().st_size, "nir": Path(nir).stat().st_size},
            "simulated": {"cores": len(sim.report["cores"]), "spikes": totals["spikes"], "sops": totals["sops"],
                          "energy_j": totals["energy_j"]}}


def setup(folder: Path) -> list[str]:
    """Checkpoint and data files for the child; returns its arguments."""
    save_checkpoint(sdt_8_768(), folder / "sdt_8_768.pth")
    for name, x in (("calibration", images(2, seed=3)), ("image", images(1, seed=7))):
        np.savez(folder / f"{name}.npz", x=x.numpy(), y=np.zeros(len(x), np.int64))
    return [str(folder / n) for n in ("sdt_8_768.pth", "calibration.npz", "image.npz")]


def main(argv=None) -> None:
    p = parser(__doc__, repeats=1)
    p.add_argument("--child", nargs=4, metavar=("CKPT", "CALIB", "IMAGE", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    if args.child:
        ckpt, calib, image, out = map(Path, args.child)
        print(json.dumps(stages(ckpt, calib, image, out)))
        return
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="statten_bench_") as tmp:
        t = time.perf_counter()
        files = setup(Path(tmp))
        setup_s = time.perf_counter() - t
        child = run_child([__file__, "--threads", str(threads), "--child", *files, tmp])
    if child["returncode"] != 0:
        raise SystemExit(f"the pipeline child failed (exit {child['returncode']})")
    result = json.loads(child["stdout"].strip().splitlines()[-1])
    total, rss = result["total_s"], result["peak_rss_bytes"]
    doc = {"model": CONFIG.to_dict(), "target": TARGET, "threads": threads, "setup_s": setup_s, **result,
           "child_wall_s": child["wall_s"],
           "goals": {"total_s": GOAL_S, "peak_rss_bytes": GOAL_RSS},
           "met": {"time": total < GOAL_S, "memory": rss < GOAL_RSS}}
    print(f"pipeline: {total:.0f} s in stages ({', '.join(f'{k} {v:.1f}' for k, v in result['seconds'].items())}),"
          f" child {child['wall_s']:.0f} s, peak RSS {rss / 2**30:.2f} GiB")
    write_result(args.results, "pipeline", doc, load)


if __name__ == "__main__":
    sys.exit(main())
