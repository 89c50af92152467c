"""Simulate SDT-8-768 at 224 px (T = 4, B = 2) on one image and write its report folder.

Synthetic weights with BN calibrated to set the firing rates (benchmarks/sdt_model.py); the
network maps on ``paper45nm`` (loihi2 and layerwise refuse it: see benchmarks/results/map_sdt_8_768.json).
Run: ``python examples/simulate_sdt_8_768.py [--device cuda] [-o out/sdt_8_768]``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from sdt_model import images, sdt_8_768  # noqa: E402

from statten_hw.ir import lower  # noqa: E402
from statten_hw.mapping import map_model  # noqa: E402
from statten_hw.pipeline import Deployment  # noqa: E402
from statten_hw.quant import quantize  # noqa: E402
from statten_hw.reports.simulation import write_simulation_report  # noqa: E402
from statten_hw.simulator import simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--target", default="paper45nm")
    parser.add_argument("-o", "--output", default="out/sdt_8_768")
    args = parser.parse_args()
    model = sdt_8_768()
    graph = lower(model)
    qgraph = quantize(graph, images(2, seed=3))
    deployment = Deployment(None, model, qgraph, map_model(graph, args.target, model.config.block_size), "random")
    sim = simulate(deployment, images(1, seed=7), device=args.device, progress=True)
    write_simulation_report(args.output, sim.report)
    pi = sim.report["simulation"]["per_inference"]
    print(f"SDT-8-768 on {args.target}: {pi['cycles']:,.0f} cycles, {pi['energy_j'] * 1e3:.2f} mJ per image; "
          f"report in {args.output}/")


if __name__ == "__main__":
    main()
