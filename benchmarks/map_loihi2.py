"""Item 7: mapping SDT-8-768 at 224 px (T = 4, B = 2) on a multi-chip Loihi 2 system, timed. Goal: < 30 s.

The built-in ``loihi2`` refuses this network on fan-out (6,912 > 4,096, a Loihi 1 stand-in limit; see
map_sdt_8_768.json) and then on fan-in (6,913 > 4,096); ``loihi2_axons8k.toml`` beside this script is the
same target with those two limits raised, and says why. Mapping depends on the architecture only, so
the weights are the untrained initialisation.

Timed: the whole ``map_model`` (temporal blocks, partition, both placements) in a child process,
killed after ``--timeout`` seconds if it has not finished; and, in this process, the steps before
placement (partition within every per-core limit, the core-to-core traffic estimate) with the size
of the placement problem they hand on (cores, slots, traffic edges).

Run: python benchmarks/map_loihi2.py [--repeats 1] [--timeout 300]   Writes benchmarks/results/map_loihi2.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from harness import load_average, parser, run_child, set_threads, write_result
from sdt_model import CONFIG

TARGET = Path(__file__).parent / "loihi2_axons8k.toml"
GOAL_S = 30.0


def graph():
    from statten_hw.ir import lower
    from statten_hw.models import build_model

    torch.manual_seed(0)
    return lower(build_model(CONFIG).eval())


def timed_map(repeats: int) -> dict:
    """The child's work: ``map_model`` on the benchmark target, ``repeats`` times."""
    from statten_hw.mapping import map_model

    g, seconds = graph(), []
    for _ in range(repeats):
        t = time.perf_counter()
        result = map_model(g, TARGET, CONFIG.block_size)
        seconds.append(time.perf_counter() - t)
    return {"seconds": seconds, "median_s": statistics.median(seconds), "chips": result.totals.chips,
            "cores": result.totals.cores, "lower_bound_cores": result.lower_bound.cores, "traffic": result.traffic}


def before_placement(g) -> dict:
    """Partition and traffic estimate, timed, and the size of the placement problem they leave."""
    from statten_hw.mapping.layers import fan_out, neuron_layers
    from statten_hw.mapping.partition import layer_demand, partition
    from statten_hw.mapping.placement import DEFAULT_RATE, core_traffic
    from statten_hw.mapping.temporal import temporal_partition
    from statten_hw.targets import load_target

    target = load_target(TARGET)
    t = time.perf_counter()
    layers = neuron_layers(g)
    buffers, _ = temporal_partition(layers, target, CONFIG.timesteps, CONFIG.block_size)
    fo = fan_out(layers)
    part = partition([layer_demand(la, b, target, fo[la.name]) for la, b in zip(layers, buffers)], target)
    partition_s = time.perf_counter() - t
    t = time.perf_counter()
    traffic = core_traffic(layers, part, {la.name: DEFAULT_RATE for la in layers})
    cores = len(part.cores)
    chips = -(-cores // target.cores_per_chip)
    return {"partition_s": partition_s, "traffic_s": time.perf_counter() - t, "cores": cores, "chips": chips,
            "slots": chips * target.cores_per_chip, "traffic_edges": len(traffic)}


def builtin_refusal(g) -> dict | None:
    from statten_hw.errors import MappingError
    from statten_hw.mapping import map_model

    t = time.perf_counter()
    try:
        map_model(g, "loihi2", CONFIG.block_size)
    except MappingError as err:
        return {"error": str(err), "seconds": time.perf_counter() - t}
    return None


def main(argv=None) -> None:
    p = parser(__doc__, repeats=1)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before the mapping child is stopped")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    if args.child:
        print(json.dumps(timed_map(args.repeats)))
        return
    load = load_average()
    g = graph()
    steps, refusal = before_placement(g), builtin_refusal(g)
    child = run_child([__file__, "--child", "--repeats", str(args.repeats)], timeout_s=args.timeout)
    full = json.loads(child["stdout"].strip().splitlines()[-1]) if child["returncode"] == 0 else None
    row = {"target_file": str(TARGET.relative_to(TARGET.parent.parent)), "goal_s": GOAL_S,
           "before_placement": steps, "map_model": full, "child_wall_s": child["wall_s"],
           "timed_out": child["timed_out"], "timeout_s": args.timeout,
           "met": bool(full) and full["median_s"] < GOAL_S}
    took = f"{full['median_s']:.1f} s" if full else f"not finished after {child['wall_s']:.0f} s"
    print(f"{steps['cores']} cores on {steps['chips']} chips; partition {steps['partition_s']:.1f} s, traffic "
          f"{steps['traffic_s']:.1f} s ({steps['traffic_edges']} edges); map_model {took} (goal < {GOAL_S:.0f} s)")
    write_result(args.results, "map_loihi2", {"model": CONFIG.to_dict(), "threads": threads,
                                             "builtin_loihi2_refusal": refusal, "result": row}, load)


if __name__ == "__main__":
    sys.exit(main())
