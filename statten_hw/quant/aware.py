"""Quantization-aware fine-tuning: train a PyTorch model on the very weights ``quantize`` deploys.

Post-training quantization rounds every folded weight by up to half a step. Most networks shrug
that off; some do not: the embedded ``digits-seq`` models change 13-26 of 450 test predictions
under a random weight perturbation of 0.1 % of the mean weight (their row-by-row input keeps many
membranes near threshold for eight steps), so 8-bit rounding moves their accuracy by a point or
more in either direction. The remedy the field uses (lava-dl's SLAYER trains on 8-bit weights)
is to train on the quantized weights, so that deployment changes nothing the training has not seen.

``quantization_aware(model, bits)`` puts a fake quantizer on every conv/linear weight that
``quantize`` will quantize, following its rules exactly: the BN that ``quantize`` folds into the
layer (``folded_batchnorm``) is folded first with its running statistics, the folded weight is
rounded to the per-layer symmetric grid ``max|W'| / (2**(bits-1) - 1)``, and unfolded again; the
gradient passes straight through the rounding. BatchNorm layers must run on their running
statistics meanwhile (``freeze_batchnorm`` after every ``model.train()``): folding uses them.
``bake(model)`` then stores the rounded weights in the ordinary parameters, so the checkpoint
keeps the official layout and ``quantize`` finds every folded weight on its grid.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from statten_hw.ir import lower
from statten_hw.ir import nodes as ir
from statten_hw.ir.graph import OP

from .fixed_point import limit
from .quantize import folded_batchnorm


class FoldedFakeQuant(nn.Module):
    """Parametrization ``W -> unfold(round_grid(fold(W)))`` with a straight-through gradient."""

    def __init__(self, bits: int, bn: nn.modules.batchnorm._BatchNorm | None):
        super().__init__()
        self.levels = limit(bits)
        self.bn = [bn]  # a list: the BN is the model's module, not a submodule of the parametrization

    def _fold_factor(self, w: torch.Tensor) -> torch.Tensor:
        bn = self.bn[0]
        if bn is None:
            return torch.ones((), dtype=w.dtype, device=w.device)
        factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return factor.reshape(-1, *([1] * (w.dim() - 1)))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        factor = self._fold_factor(w)
        folded = w * factor
        step = folded.detach().abs().max().clamp_min(torch.finfo(w.dtype).tiny) / self.levels
        rounded = torch.clamp(torch.round(folded / step), -self.levels, self.levels) * step
        # a channel whose BN scale is 0 folds to 0 whatever its weights: keep them (0/0 would be NaN)
        unfold = torch.where(factor == 0, torch.ones_like(factor), factor)
        return torch.where(factor == 0, w, (folded + (rounded - folded).detach()) / unfold)


def _quantized_layers(model: nn.Module, encoding: str | None) -> list[tuple[str, str | None]]:
    """``(module path, folded BN module path or None)`` of every layer ``quantize`` quantizes."""
    was_training = model.training
    graph = lower(model.eval(), encoding=encoding)
    model.train(was_training)
    layers = []
    for name, data in graph.nodes(data=True):
        if isinstance(data[OP], (ir.Conv2d, ir.Linear)):
            bn = folded_batchnorm(graph, name)
            layers.append((data["source"], graph.nodes[bn]["source"] if bn else None))
    return layers


def quantization_aware(model: nn.Module, bits: int = 8, encoding: str | None = None) -> list[str]:
    """Fake-quantize, in place, every weight ``quantize(lower(model), ..., weight_bits=bits)`` will
    quantize; returns their module paths. ``encoding`` as for ``lower`` (``"events"`` for
    event-frame input)."""
    if not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"quantization-aware training needs weight bits in 2..16, got {bits!r}")
    layers = _quantized_layers(model, encoding)
    for path, bn_path in layers:
        bn = model.get_submodule(bn_path) if bn_path else None
        parametrize.register_parametrization(model.get_submodule(path), "weight", FoldedFakeQuant(bits, bn))
    return [path for path, _ in layers]


def freeze_batchnorm(model: nn.Module) -> None:
    """Run every BatchNorm on its running statistics (which the fold uses) and stop updating them."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def bake(model: nn.Module) -> None:
    """Replace every fake-quantized weight by its rounded value as a plain parameter."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
