"""Item 6: the fast engine on CUDA against the same engine on the CPU, SDT-8-768 at 224 px, in images per second.

Builds the synthetic SDT-8-768 (`sdt_model`, T = 4, B = 2), deploys it on ``paper45nm`` and times
``simulate(..., device=D)`` with the full report: the CPU with batch 1, the device with batch 1 and
with ``--batch`` images. The first image's spikes, logits and every count must be identical on both
devices (the run stops with exit 1 otherwise). Goal: device images/s >= 20x the CPU's.

Needs only this repository and its virtual environment:

    python benchmarks/gpu_sdt.py --out gpu_sdt.json                  # on the GPU machine
    python benchmarks/gpu_sdt.py --device cpu --small --out x.json   # the same code path, small and on the CPU
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from harness import agreement, identical, load_average, machine, paired, set_threads
from sdt_model import CONFIG, deploy, images, sdt_8_768

from statten_hw.reports.files import write_json

GOAL = 20.0
SMALL = replace(CONFIG, depth=1, dim=32, heads=2, img_size=32)


def throughput(deployment, x, device: str, repeats: int) -> dict:
    from statten_hw.simulator import simulate

    t = paired({device: lambda: simulate(deployment, x, device=device)}, repeats)[device]
    return {"device": device, "batch": int(x.shape[0]), **t, "images_per_s": x.shape[0] / t["median_s"]}


def main(argv=None) -> int:
    from statten_hw.simulator import simulate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="result JSON path")
    p.add_argument("--device", default="cuda", help="device to compare with the CPU (cuda, cuda:N or cpu)")
    p.add_argument("--batch", type=int, default=8, help="images per simulation on the device")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (median taken) on the device")
    p.add_argument("--cpu-repeats", type=int, default=2, help="timed repeats on the CPU")
    p.add_argument("--small", action="store_true", help="a small STAtten (dim 32, 32 px) instead of SDT-8-768")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: one per core)")
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    load = load_average()
    config = SMALL if args.small else CONFIG
    print(f"building {config.depth}-{config.dim} at {config.img_size} px ...", flush=True)
    deployment = deploy(sdt_8_768(config), "paper45nm", images(2, config, seed=3))
    x = images(args.batch, config, seed=7)
    first = x[:1]
    check = agreement(simulate(deployment, first, device="cpu"), simulate(deployment, first, device=args.device))
    print(f"agreement cpu vs {args.device}: {check}", flush=True)
    cpu = throughput(deployment, first, "cpu", args.cpu_repeats)
    print(f"cpu: {cpu['images_per_s']:.4f} images/s", flush=True)
    dev_1 = throughput(deployment, first, args.device, args.repeats)
    dev_n = throughput(deployment, x, args.device, args.repeats)
    speedup = max(dev_1["images_per_s"], dev_n["images_per_s"]) / cpu["images_per_s"]
    print(f"{args.device}: {dev_1['images_per_s']:.3f} images/s (batch 1), {dev_n['images_per_s']:.3f} images/s "
          f"(batch {args.batch}); {speedup:.1f}x the CPU (goal >= {GOAL:.0f}x)", flush=True)
    exact = identical(check)
    write_json(args.out, {
        "benchmark": "gpu_sdt", "model": config.to_dict(), "target": "paper45nm", "threads": threads,
        "agreement": check, "cpu": cpu, "device_batch_1": dev_1, "device_batch_n": dev_n,
        "speedup_images_per_s": speedup, "goal": GOAL, "met": speedup >= GOAL,
        "command": "python " + " ".join(["benchmarks/gpu_sdt.py", *sys.argv[1:]]), "machine": machine(),
        "load_average": {"before": load, "after": load_average()}})
    print(f"wrote {args.out}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
