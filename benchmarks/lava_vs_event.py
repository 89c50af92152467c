"""Item 2: the event simulator (fast engine) against the Lava backend (``Loihi2SimCfg``, fixed point).

Same deployment (the embedded digits STAtten), same batch, same T. Batches are the first samples of
the digits test split, then of its train split (up to the whole data set, 1797 images). Both must be bit-exact: the Lava
run's spikes of every layer and its logits are compared with the integer reference, as the event
simulator's are. Lava's time is given two ways: the whole ``run_lava`` call (build, compile, run,
stop) and its stepping alone (``LavaRun.step_s``); the goal is >= 1000x on the whole call. The float
PyTorch forward of the same model on the same batch and device is timed in the same run: Lava over
it is the ratio any simulator costing one float forward would reach, a ceiling for the event
simulator (which runs the integer graph and counts every event besides).

`measure_lava` is the entry point the suite calls; it needs ``statten_hw.simulator.lava.run.run_lava``
(the Lava backend, issue 7) and lava-nc installed (``make test`` installs it).

One torch thread by default (``--threads``): with one per core, on a shared machine, the event
simulator's small parallel regions wait for the busy other core (0.6 s instead of 0.05 s per image).

``--device cuda`` runs the event simulator on the GPU (Lava's ``Loihi2SimCfg`` has only CPU models)
on the same machine and in the same run, with the spikes checked against the CPU integer reference;
it writes ``lava_vs_event_cuda.json`` beside the CPU result.

Run: python benchmarks/lava_vs_event.py [--batches 1,16] [--repeats 3] [--device cuda]
Writes benchmarks/results/lava_vs_event.json (or lava_vs_event_DEVICE.json).
"""
from __future__ import annotations

import copy
import statistics
import sys

import numpy as np
import torch

from harness import load_average, paired, parser, set_threads, write_result

GOAL = 1000.0


def measure_lava(deployment, x, repeats: int, device: str = "cpu") -> dict:
    """Paired timings of ``simulate(fast)`` on ``device`` and ``run_lava`` on the batch ``x``, both
    checked against the integer reference run on the CPU."""
    from statten_hw.quant import run_integer
    from statten_hw.simulator import simulate
    from statten_hw.simulator.lava.report import agreement
    from statten_hw.simulator.lava.run import run_lava

    lava_runs = []

    def lava():
        lava_runs.append(run_lava(deployment.qgraph, x))

    model, x_on = copy.deepcopy(deployment.model).to(device), x.to(device)  # the deployment's stays on the CPU

    def float_forward():
        with torch.no_grad():
            model(x_on)
        if x_on.is_cuda:
            torch.cuda.synchronize()

    timings = paired({"event_fast": lambda: simulate(deployment, x, device=device), "lava": lava,
                      "float_forward": float_forward}, repeats)
    step_s = statistics.median(r.step_s for r in lava_runs[-repeats:])
    reference = run_integer(deployment.qgraph, x)
    sim = simulate(deployment, x, device=device)
    event_exact = all(np.array_equal(sim.spikes[n].cpu().numpy(), reference.values[n].numpy()) for n in sim.spikes)
    per = [lv / ev for lv, ev in zip(timings["lava"]["wall_s"], timings["event_fast"]["wall_s"])]
    ratio = statistics.median(per)
    return {"batch": int(x.shape[0]), "event_device": device, "timings": timings, "lava_step_s_median": step_s,
            "lava_steps": lava_runs[-1].steps, "speedup": {"median": ratio, "per_repeat": per,
                                                           "stepping_only": step_s / timings["event_fast"]["median_s"]},
            "float_forward_speedup": statistics.median(
                lv / fl for lv, fl in zip(timings["lava"]["wall_s"], timings["float_forward"]["wall_s"])),
            "goal": GOAL, "met": ratio >= GOAL, "lava_bit_exact": agreement(lava_runs[-1], reference),
            "event_bit_exact": event_exact}


def main(argv=None) -> None:
    from statten_hw.data import load_dataset
    from statten_hw.pipeline import prepare

    p = parser(__doc__, repeats=3, threads=1)
    p.add_argument("--batches", default="1,16", help="comma list of batch sizes")
    p.add_argument("--device", default="cpu", help="the event simulator's device (cpu, cuda); Lava runs on the CPU")
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    load = load_average()
    deployment = prepare(None, "loihi2")
    x = torch.cat([load_dataset(deployment.dataset, split=split)[0] for split in ("test", "train")])  # all 1797
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        rows.append(measure_lava(deployment, x[:batch], args.repeats, args.device))
        r = rows[-1]
        print(f"batch {batch}: event {r['timings']['event_fast']['median_s']:.3f} s, Lava "
              f"{r['timings']['lava']['median_s']:.1f} s (stepping {r['lava_step_s_median']:.1f} s): "
              f"{r['speedup']['median']:.0f}x (goal >= {GOAL:.0f}x; the float forward {r['float_forward_speedup']:.0f}x); "
              f"Lava bit-exact {r['lava_bit_exact']}")
    name = "lava_vs_event" if args.device == "cpu" else f"lava_vs_event_{args.device.split(':')[0]}"
    write_result(args.results, name, {"model": deployment.model.config.to_dict(), "target": "loihi2",
                                                 "threads": threads, "repeats": args.repeats, "results": rows}, load)


if __name__ == "__main__":
    sys.exit(main())
