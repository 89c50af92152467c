"""Simulate SDT-8-768 at 224 px (T = 4, B = 2) on one image and write its report folder.

Synthetic weights whose BatchNorms set the firing rates (benchmarks/sdt_model.py: 15 %, q, k, v 5 %); the
network maps on ``paper45nm`` (loihi2 and layerwise refuse it: see benchmarks/results/map_sdt_8_768.json).
Run: ``python examples/simulate_sdt_8_768.py [--device cuda] [-o out/sdt_8_768]``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from sdt_model import deploy, images, sdt_8_768  # noqa: E402

from statten_hw.reports.simulation import write_simulation_report  # noqa: E402
from statten_hw.simulator import simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--target", default="paper45nm")
    parser.add_argument("-o", "--output", default="out/sdt_8_768")
    args = parser.parse_args()
    deployment = deploy(sdt_8_768(), args.target, images(2, seed=3))
    sim = simulate(deployment, images(1, seed=7), device=args.device, progress=True)
    write_simulation_report(args.output, sim.report)
    pi = sim.report["simulation"]["per_inference"]
    print(f"SDT-8-768 on {args.target}: {pi['cycles']:,.0f} cycles, {pi['energy_j'] * 1e3:.2f} mJ per image; "
          f"report in {args.output}/")


if __name__ == "__main__":
    main()
