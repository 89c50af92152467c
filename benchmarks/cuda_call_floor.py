"""Item 2 on a GPU, per call: what one ``simulate`` call costs on CUDA at small batches, and how often
the host waits for the GPU in it.

On an H100 the fast engine took a fixed 13-15 ms per call from batch 1 to 450, against 4 ms of GPU
time (torch profiler, commit 5151f30): it is bound by the host, which launches some 620 kernels and
reads a GPU value back some 140 times. Each read waits until every kernel queued before it has run,
so the host cannot run ahead of the GPU. This benchmark times ``simulate`` on the embedded model
(batch 1 and 16) interleaved with the float forward on the same GPU, and profiles one call: kernel
launches, and the host's waits (``cudaStreamSynchronize``, ``cudaMemcpy*`` to the host). CUDA's
counts and spikes are checked against the CPU's.

Run on a CUDA machine (``--device cpu`` runs the same code here, for its test):
    python benchmarks/cuda_call_floor.py [--out FILE] [--repeats 30]
"""
from __future__ import annotations

import copy
import sys

import torch

from harness import agreement, identical, load_average, paired, parser, ratio, write_result

#: Profiler events that make the host wait for the GPU, and those that queue a kernel.
WAITS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy", "cudaMemcpyAsync")
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")


def profile_call(fn, device: str) -> dict:
    """Kernel launches and host waits of one call of ``fn`` (CUDA only; None elsewhere)."""
    if device != "cuda":
        return {"launches": None, "waits": None}
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
    events = {e.key: e.count for e in prof.key_averages()}
    return {"launches": sum(events.get(k, 0) for k in LAUNCHES), "waits": sum(events.get(k, 0) for k in WAITS),
            "waits_by_kind": {k: events[k] for k in WAITS if k in events}}


def main(argv=None) -> dict:
    p = parser(__doc__, repeats=30, threads=False)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--out", default="cuda_call_floor", help="result name under --results (default cuda_call_floor)")
    args = p.parse_args(argv)
    from statten_hw.data import load_dataset
    from statten_hw.pipeline import prepare
    from statten_hw.simulator import simulate

    load = load_average()
    deployment = prepare(None, "loihi2")
    model = copy.deepcopy(deployment.model).to(args.device).eval()
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        x = load_dataset(deployment.dataset, split="test")[0][:batch]
        x_on = x.to(args.device)

        def event():
            return simulate(deployment, x, device=args.device)

        def float_forward():
            with torch.no_grad():
                model(x_on)
            if args.device == "cuda":
                torch.cuda.synchronize()

        timings = paired({"event": event, "float_forward": float_forward}, args.repeats)
        row = {"batch": batch, "timings": timings, "event_over_float": ratio(timings, "event", "float_forward"),
               "ms_per_call": timings["event"]["median_s"] * 1e3, **profile_call(event, args.device),
               "equal_to_cpu": identical(agreement(event(), simulate(deployment, x, device="cpu")))}
        rows.append(row)
        print(f"batch {batch}: {row['ms_per_call']:.2f} ms per call ({row['event_over_float']['median']:.2f}x the "
              f"float forward), {row['launches']} launches, {row['waits']} host waits, equal to the CPU: "
              f"{row['equal_to_cpu']}", flush=True)
    doc = {"device": args.device,
           "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None, "rows": rows}
    write_result(args.results, args.out, doc, load)
    return doc


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
