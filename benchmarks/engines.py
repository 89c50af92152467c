"""Item 3: the detailed engine (one packet at a time) against the fast engine (tensors): what validation costs.

Both engines simulate the same deployment on the same batch; the result records their time ratio and
that they agree (identical spikes and identical counts, field by field). Networks: the embedded
digits STAtten on ``loihi2`` and a small synthetic STAtten (dim 16, 8 px, calibrated BN: `sdt_model`)
on ``loihi2`` with 64 neurons per core, so that its events cross many cores and NoC hops.

One torch thread by default (``--threads``), as in scaling.py and for the same reason.

Run: python benchmarks/engines.py [--repeats 3] [--batch 4]   Writes benchmarks/results/engines.json.
"""
from __future__ import annotations

import sys
from dataclasses import replace

from harness import agreement, load_average, paired, parser, ratio, set_threads, write_result
from sdt_model import deploy, images, sdt_8_768

from statten_hw.models import ModelConfig

SMALL = ModelConfig(family="statten", attention="STAtten", depth=1, dim=16, heads=2, timesteps=4, block_size=2,
                    img_size=8, in_channels=3, num_classes=5, pooling_stat="0001")


def embedded(batch: int):
    from statten_hw.data import load_dataset
    from statten_hw.pipeline import prepare

    d = prepare(None, "loihi2")
    return d, load_dataset(d.dataset, split="test")[0][:batch]


def small(batch: int):
    from statten_hw.targets import load_target

    base = load_target("loihi2")
    target = replace(base, core=replace(base.core, neurons_per_core=64))
    return deploy(sdt_8_768(SMALL), target, images(8, SMALL, seed=3)), images(batch, SMALL, seed=7)


NETWORKS = {"embedded": embedded, "small": small}


def measure(name: str, batch: int, repeats: int) -> dict:
    from statten_hw.simulator import simulate

    deployment, x = NETWORKS[name](batch)
    run = {engine: (lambda e=engine: simulate(deployment, x, engine=e)) for engine in ("fast", "detailed")}
    timings = paired(run, repeats)
    r = ratio(timings, "detailed", "fast")
    fast, detailed = run["fast"](), run["detailed"]()
    row = {"model": deployment.model.config.to_dict(), "target_cores": len(deployment.mapping.cores),
           "batch": batch, "timings": timings, "detailed_over_fast": r, "agreement": agreement(fast, detailed),
           "events": {"spikes": fast.report["totals"]["spikes"], "sops": fast.report["totals"]["sops"],
                      "noc_packets": fast.report["totals"]["noc_packets"]}}
    print(f"{name}: fast {timings['fast']['median_s']:.3f} s, detailed {timings['detailed']['median_s']:.3f} s, "
          f"ratio {r['median']:.0f}; agreement {row['agreement']}")
    return row


def main(argv=None) -> None:
    p = parser(__doc__, repeats=3, threads=1)
    p.add_argument("--batch", type=int, default=4, help="samples per simulation")
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    load = load_average()
    rows = {name: measure(name, args.batch, args.repeats) for name in NETWORKS}
    write_result(args.results, "engines", {"threads": threads, "repeats": args.repeats, "results": rows}, load)


if __name__ == "__main__":
    sys.exit(main())
