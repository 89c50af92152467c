"""How an input batch becomes the time-major tensor ``[T, B, C, H, W]`` every official model uses."""
from __future__ import annotations

import torch


def time_major(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Static ``[B,C,H,W]`` is repeated T times (direct coding); event frames ``[B,T,C,H,W]`` are transposed."""
    if x.dim() < 5:
        return x.unsqueeze(0).repeat(timesteps, 1, 1, 1, 1)
    return x.transpose(0, 1).contiguous()
