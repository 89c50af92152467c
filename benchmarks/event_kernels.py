"""Item 5, the fast engine's side: would event-driven synaptic kernels make its time follow the events?

The fast engine computes every convolution densely (oneDNN), so its time follows T x neurons. The
event-driven alternative does work in proportion to the synaptic events: each non-zero input adds its
weights to the outputs it reaches. On a CPU the fastest way we found to do that with torch is one
sparse-times-dense product: the events laid out as a CSR matrix in im2col coordinates (rows: output
positions; columns: input channel x kernel offset), times the weights as a ``[C_in·k·k, C_out]``
matrix. Its cost is the events times ``C_out`` per kernel offset, plus building the CSR matrix.

Measured here, one torch thread, each kernel timed interleaved with the other (median of the repeats):

* Per network (the embedded model on one test digit, SDT-8-768 at 224 px with T = 4, its BN calibrated
  as `sdt_model` says, 13.6 % of its neurons firing per step): every conv of the integer graph on its
  real input from the integer run, dense against event-driven. Both give identical sums (integers, exact in float32).
* A density sweep on two conv shapes of SDT-8-768: where the event-driven kernel starts to win.

Run: python benchmarks/event_kernels.py [--repeats 5]   Writes benchmarks/results/event_kernels.json.
"""
from __future__ import annotations

import sys
import warnings

import torch
import torch.nn.functional as F

from harness import load_average, paired, parser, set_threads, write_result
from sdt_model import CONFIG, deploy, images, sdt_8_768

from statten_hw.quant.quantize import QConv2d

DENSITIES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
#: (C_in, C_out, kernel, side): an attention/MLP 1x1 conv and a patch-embedding 3x3 conv of SDT-8-768.
SWEEP_SHAPES = ((768, 768, 1, 14), (384, 768, 3, 28))


def dense_sums(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """The fast engine's kernel: a float32 conv2d of the integer inputs and mantissas."""
    return F.conv2d(x, weight, stride=stride, padding=padding)


def event_sums(x: torch.Tensor, weight_matrix: torch.Tensor, kernel: int, stride: int, padding: int,
               out_hw: tuple[int, int]) -> torch.Tensor:
    """The same sums from the events alone: each non-zero input (n, c, y, x) reaches output
    ``((y + padding - ky) / stride, (x + padding - kx) / stride)`` through weight column ``c·k² + ky·k + kx``."""
    n_in, c, y, xx = x.nonzero(as_tuple=True)
    values = x[n_in, c, y, xx]
    ho, wo = out_hw
    rows, cols, data = [], [], []
    for ky in range(kernel):
        for kx in range(kernel):
            sy, sx = y + padding - ky, xx + padding - kx
            oy, ox = sy.div(stride, rounding_mode="floor"), sx.div(stride, rounding_mode="floor")
            ry, rx = sy % stride, sx % stride
            ok = (ry == 0) & (rx == 0) & (oy >= 0) & (oy < ho) & (ox >= 0) & (ox < wo)
            rows.append((n_in[ok] * ho + oy[ok]) * wo + ox[ok])
            cols.append(c[ok] * kernel * kernel + ky * kernel + kx)
            data.append(values[ok])
    events = torch.sparse_coo_tensor(torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(data),
                                     (x.shape[0] * ho * wo, weight_matrix.shape[0]), check_invariants=False)
    with warnings.catch_warnings():  # torch calls its CSR support beta, once per process
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        events = events.to_sparse_csr()
    return (events @ weight_matrix).reshape(x.shape[0], ho, wo, -1).permute(0, 3, 1, 2)


def compare(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, repeats: int) -> dict:
    """Dense against event-driven on one input; identical sums checked."""
    k = weight.shape[-1]
    matrix = weight.permute(1, 2, 3, 0).reshape(-1, weight.shape[0]).contiguous()
    dense = dense_sums(x, weight, stride, padding)
    same = torch.equal(event_sums(x, matrix, k, stride, padding, dense.shape[-2:]), dense)
    timings = paired({"dense": lambda: dense_sums(x, weight, stride, padding),
                      "event": lambda: event_sums(x, matrix, k, stride, padding, dense.shape[-2:])}, repeats)
    inputs = int(torch.count_nonzero(x))
    return {"density": inputs / x.numel(), "inputs": inputs, "elements": x.numel(),
            "synaptic_events": inputs * k * k * weight.shape[0],
            "dense_s": timings["dense"]["median_s"], "event_s": timings["event"]["median_s"], "identical": same}


def network_convs(deployment, x: torch.Tensor, repeats: int) -> dict:
    """Every plain conv of the integer graph on the input the integer run gives it."""
    from statten_hw.ir.graph import inputs_by_port
    from statten_hw.quant import run_integer

    g = deployment.qgraph.graph
    values = run_integer(deployment.qgraph, x).values
    rows = {}
    for name in g.nodes:
        op = deployment.qgraph.qop(name)
        if not isinstance(op, QConv2d) or op.groups != 1 or len(set(op.stride)) > 1 or len(set(op.padding)) > 1:
            continue
        source = values[inputs_by_port(g, name)["x"]]
        if source.dim() != 5:
            continue
        weight = torch.tensor(op.mantissa, dtype=torch.float32)
        rows[name] = compare(source.flatten(0, 1).float(), weight, op.stride[0], op.padding[0], repeats)
    dense, event = (sum(r[f"{k}_s"] for r in rows.values()) for k in ("dense", "event"))
    density = sum(r["inputs"] for r in rows.values()) / sum(r["elements"] for r in rows.values())
    return {"convs": rows, "dense_s": dense, "event_s": event, "event_over_dense": event / dense,
            "mean_input_density": density, "all_identical": all(r["identical"] for r in rows.values())}


def density_sweep(repeats: int) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for c_in, c_out, k, side in SWEEP_SHAPES:
        weight = torch.randint(-128, 128, (c_out, c_in, k, k), generator=gen).float()
        for density in DENSITIES:
            x = (torch.rand(CONFIG.timesteps, c_in, side, side, generator=gen) < density).float()
            out.append({"shape": [c_in, c_out, k, side], **compare(x, weight, 1, k // 2, repeats)})
    return out


def main(argv=None) -> int:
    args = parser(__doc__, repeats=5, threads=1).parse_args(argv)
    set_threads(args.threads)
    before = load_average()
    from statten_hw.defaults import default_checkpoint
    from statten_hw.pipeline import prepare
    from statten_hw.data import load_dataset

    embedded = prepare(default_checkpoint(), "loihi2")
    digits = load_dataset("digits", split="test")[0][:1]
    sdt = deploy(sdt_8_768(), "paper45nm", images(2, seed=3))  # kernels do not depend on the target
    networks = {"embedded": network_convs(embedded, digits, args.repeats),
                "sdt_8_768": network_convs(sdt, images(1, seed=7), args.repeats)}
    sweep = density_sweep(args.repeats)
    for name, r in networks.items():
        print(f"{name}: {len(r['convs'])} convs, mean input density {100 * r['mean_input_density']:.1f} %, "
              f"event-driven {r['event_over_dense']:.2f}x the dense time, identical: {r['all_identical']}")
    for r in sweep:
        print(f"shape {r['shape']} density {100 * r['density']:.1f} %: event / dense {r['event_s'] / r['dense_s']:.2f}")
    write_result(args.results, "event_kernels", {"threads": args.threads, "repeats": args.repeats,
                                                  "networks": networks, "density_sweep": sweep}, before)
    return 0 if all(r["all_identical"] for r in networks.values()) and all(r["identical"] for r in sweep) else 1


if __name__ == "__main__":
    sys.exit(main())
