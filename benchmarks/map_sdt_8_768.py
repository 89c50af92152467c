"""Mapping SDT-8-768 at 224 px (T = 4, B = 2) on every built-in target and on `loihi2_axons8k.toml`
(the built-in Loihi 2 with fan-in/fan-out 8192, the one assumption that admits this network; see
that file): core count vs lower bound, placement traffic (in-order vs traffic-aware) and mapping
time. Writes benchmarks/results/map_sdt_8_768.json.

Weights are synthetic (the architecture decides mapping; values do not). Run: python benchmarks/map_sdt_8_768.py
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from sdt_model import CONFIG

from statten_hw.errors import MappingError
from statten_hw.ir import lower
from statten_hw.mapping import map_model
from statten_hw.models import build_model
from statten_hw.reports.files import write_json

RESULTS = Path(__file__).parent / "results" / "map_sdt_8_768.json"
AXONS_8K = Path("benchmarks") / "loihi2_axons8k.toml"


def main() -> None:
    torch.manual_seed(0)
    t0 = time.perf_counter()
    graph = lower(build_model(CONFIG).eval())
    lower_s = time.perf_counter() - t0
    rows = []
    for target in ("loihi2", "layerwise", "paper45nm", str(AXONS_8K)):
        t0 = time.perf_counter()
        try:
            result = map_model(graph, target, CONFIG.block_size)
        except MappingError as err:  # an infeasible mapping is a result too: record which limit broke
            rows.append({"target": target, "infeasible": str(err), "map_seconds": round(time.perf_counter() - t0, 2)})
            print(rows[-1])
            continue
        seconds = time.perf_counter() - t0
        rows.append({"target": target, "cores": result.totals.cores, "chips": result.totals.chips,
                     "lower_bound_cores": result.lower_bound.cores,
                     "cores_over_lower_bound": result.totals.cores / result.lower_bound.cores,
                     "traffic_in_order": result.traffic["in-order"],
                     "traffic_aware": result.traffic["traffic-aware"], "map_seconds": round(seconds, 2)})
        print(rows[-1])
    write_json(RESULTS, {"model": CONFIG.to_dict(), "lower_seconds": round(lower_s, 2), "results": rows,
                         "machine": {"cpu_count": torch.get_num_threads(), "python": platform.python_version(),
                                     "torch": torch.__version__},
                         "command": "python benchmarks/map_sdt_8_768.py"})


if __name__ == "__main__":
    main()
