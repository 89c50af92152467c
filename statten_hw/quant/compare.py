"""Float vs integer: accuracy of both and per-LIF spike agreement (reported, never hidden)."""
from __future__ import annotations

import math

import torch

from statten_hw.ir.execute_float import run_float
from statten_hw.ir.graph import OP, SHAPE, timesteps
from statten_hw.ir import nodes as ir
from statten_hw.resources import samples_per_batch

from .execute import run_integer
from .quantize import QuantizedGraph


@torch.no_grad()
def compare_float_integer(model: torch.nn.Module, qgraph: QuantizedGraph, x: torch.Tensor, y: torch.Tensor,
                          batch: int = 256) -> dict:
    """``float_accuracy`` (the float graph of ``qgraph``, bit-exact with ``model``), ``integer_accuracy``,
    ``spike_agreement[lif] =`` fraction of equal spikes between ``run_float(keep=True)`` and the
    integer run, ``mean_spike_agreement``, ``overflows`` per node and ``n`` samples. Both runs keep
    every node's values (float32 and int64) of a batch, so ``batch`` shrinks to what ``BATCH_BYTES``
    holds: 256 samples of the embedded model at T = 128 took 12 GB. The counts are sums over samples,
    the same however the samples are batched."""
    model.eval()
    g = qgraph.float_graph
    numel = sum(math.prod(shape) for _, shape in g.nodes(data=SHAPE))
    batch = min(batch, samples_per_batch((4 + 8) * timesteps(g) * numel))
    lifs = [n for n in g if isinstance(g.nodes[n][OP], ir.LIF)]
    correct_f = correct_i = 0
    equal = {n: 0 for n in lifs}
    total = {n: 0 for n in lifs}
    overflows: dict[str, int] = {}
    for i in range(0, len(y), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        f = run_float(g, xb, keep=True)
        r = run_integer(qgraph, xb)
        out = next(n for n in g if isinstance(g.nodes[n][OP], ir.Output))
        logits_f = f[out].mean(0) if f[out].dim() == 3 else f[out]
        logits_i = r.logits_int.sum(0) if r.logits_int.dim() == 3 else r.logits_int
        correct_f += int((logits_f.argmax(-1) == yb).sum())
        correct_i += int((logits_i.argmax(-1) == yb).sum())
        for n in lifs:
            equal[n] += int((f[n].to(torch.int64) == r.values[n]).sum())
            total[n] += f[n].numel()
        for n, c in r.overflows.items():
            overflows[n] = overflows.get(n, 0) + c
    agreement = {n: equal[n] / total[n] for n in lifs}
    return {"n": int(len(y)), "float_accuracy": correct_f / len(y), "integer_accuracy": correct_i / len(y),
            "spike_agreement": agreement,
            "mean_spike_agreement": sum(equal.values()) / max(sum(total.values()), 1),
            "overflows": overflows}
