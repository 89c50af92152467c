"""Item 1: the fast event engine (CPU) against the plain PyTorch float forward of the same model, batch 1.

Both get the same input; the simulation produces the full per-core report (``simulate`` fills every
report.json field), the float forward only logits. Goal: simulation <= 2x the float forward. Models:
the embedded digits STAtten on ``loihi2``, and SDT-8-768 at 224 px with T = 4 (synthetic weights,
calibrated BN: `sdt_model`) on ``paper45nm``, the one built-in target it fits. One more simulation
runs under cProfile: the functions it spends its time in are kept with the result, as the record of
where the time goes. Each model is built (BN calibration, quantization) with torch's default thread
count, whatever ``--threads`` says: float sums differ slightly with the thread count, and so would the
deployment (0.1 % of the spikes on SDT-8-768).

Run: python benchmarks/fast_vs_float.py [--models embedded,sdt_8_768] [--repeats 3] [--threads 1,2]
Writes benchmarks/results/fast_vs_float.json (``--tag T``: fast_vs_float_T.json).
"""
from __future__ import annotations

import cProfile
import pstats
import sys

import torch

from harness import load_average, paired, parser, ratio, set_threads, write_result
from sdt_model import deploy, images, sdt_8_768

GOAL = 2.0


def embedded():
    from statten_hw.data import load_dataset
    from statten_hw.pipeline import prepare

    d = prepare(None, "loihi2")
    x, _ = load_dataset(d.dataset, split="test")
    return d, x[:1]


def sdt():
    model = sdt_8_768()
    return deploy(model, "paper45nm", images(2, seed=3)), images(1, seed=7)


MODELS = {"embedded": embedded, "sdt_8_768": sdt}


def profile(fn, top: int = 25) -> list[dict]:
    """The ``top`` functions of statten-hw by cumulative time in one call of ``fn`` (cProfile)."""
    prof = cProfile.Profile()
    prof.runcall(fn)
    stats = pstats.Stats(prof).stats
    rows = [{"function": f"{path.split('/work/main/')[-1]}:{line}({name})", "calls": calls, "cumulative_s": cum,
             "own_s": own}
            for (path, line, name), (_, calls, own, cum, _) in stats.items()
            if "site-packages" not in path and path.endswith(".py") and "benchmarks/" not in path]
    return sorted(rows, key=lambda r: -r["cumulative_s"])[:top]


def measure(name: str, deployment, x, repeats: int) -> dict:
    from statten_hw.simulator import simulate

    model = deployment.model

    def float_forward():
        with torch.no_grad():
            return model(x)

    timings = paired({"float_forward": float_forward, "fast_engine": lambda: simulate(deployment, x)}, repeats)
    r = ratio(timings, "fast_engine", "float_forward")
    report = simulate(deployment, x).report
    row = {"model": model.config.to_dict(), "target": deployment.target.name, "batch": 1,
           "threads": torch.get_num_threads(),
           "timings": timings, "ratio": r, "goal": GOAL, "met": r["median"] <= GOAL,
           "report": {"cores": len(report["cores"]), "layers": len(report["layers"]),
                      "spikes": report["totals"]["spikes"], "sops": report["totals"]["sops"]},
           "profile": profile(lambda: simulate(deployment, x))}
    print(f"{name}, {torch.get_num_threads()} threads: float {timings['float_forward']['median_s']:.3f} s, fast engine "
          f"{timings['fast_engine']['median_s']:.3f} s, ratio {r['median']:.2f} (goal <= {GOAL})")
    return row


def main(argv=None) -> None:
    p = parser(__doc__, repeats=3, threads=False)
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                   help="comma list of torch thread counts, each measured (default: 1 and one per core)")
    p.add_argument("--tag", default="", help="suffix of the result name (e.g. 'before' for a baseline run)")
    args = p.parse_args(argv)
    counts = sorted({int(t) for t in args.threads.split(",")})
    load = load_average()
    rows = {}
    build_threads = torch.get_num_threads()
    for name in args.models.split(","):
        set_threads(build_threads)
        deployment, x = MODELS[name]()
        for threads in counts:
            set_threads(threads)
            rows[f"{name}/threads={threads}"] = measure(name, deployment, x, args.repeats)
    name = "fast_vs_float" + (f"_{args.tag}" if args.tag else "")
    write_result(args.results, name, {"repeats": args.repeats, "results": rows}, load)


if __name__ == "__main__":
    sys.exit(main())
