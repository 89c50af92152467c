"""What a person asks first about a loaded model: parameters and spiking neurons per layer."""
from __future__ import annotations

import torch

from .lif import MultiStepLIF, MultiStepTernary

SPIKING = (MultiStepLIF, MultiStepTernary)


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def lif_layers(model: torch.nn.Module) -> list[tuple[str, int, float]]:
    """``(module path, neurons per time step, firing rate)`` of every spiking layer that runs.

    Found by one forward pass on a zero-free probe input; layers the forward never calls (the
    official dead modules ``talking_heads_lif`` outside SDSA, for instance) are left out.
    """
    cfg = model.config
    probe = torch.rand((1, *cfg.input_shape), generator=torch.Generator().manual_seed(0))
    seen: list[tuple[str, int, float]] = []
    hooks = [
        module.register_forward_hook(
            lambda mod, inp, out, name=name: seen.append((name, out[0].numel(), float(out.abs().mean())))
        )
        for name, module in model.named_modules()
        if isinstance(module, SPIKING)
    ]
    try:
        model(probe)
    finally:
        for h in hooks:
            h.remove()
    return seen
