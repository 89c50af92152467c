"""Spikformer (ZK-Zhou/spikformer, ``cifar10/model.py``) with spiking self-attention (SSA).

Tokens are ``[T, B, N, C]``; every branch ends in a LIF and is added to the stream
(spike-element-wise residual). ``norm1``/``norm2`` are unused LayerNorms kept for strict loading.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .encoding import time_major
from .lif import MultiStepLIF
from .sps import SPS

SSA_SCALE = 0.125


def _linear_bn_lif(module: nn.Module, name: str, x: torch.Tensor, T: int, B: int) -> torch.Tensor:
    """``LIF(BN1d(Linear(x)))`` on ``x = [T·B, N, C_in]``, returning ``[T, B, N, C_out]``."""
    y = getattr(module, f"{name}_linear")(x)
    y = getattr(module, f"{name}_bn")(y.transpose(-1, -2)).transpose(-1, -2)
    return getattr(module, f"{name}_lif")(y.reshape(T, B, x.shape[1], y.shape[-1]).contiguous())


def _make_linear_bn_lif(module: nn.Module, name: str, c_in: int, c_out: int, threshold: float = 1.0):
    setattr(module, f"{name}_linear", nn.Linear(c_in, c_out))
    setattr(module, f"{name}_bn", nn.BatchNorm1d(c_out))
    setattr(module, f"{name}_lif", MultiStepLIF(threshold))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        _make_linear_bn_lif(self, "fc1", dim, hidden)
        _make_linear_bn_lif(self, "fc2", hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        x = _linear_bn_lif(self, "fc1", x.flatten(0, 1), T, B)
        return _linear_bn_lif(self, "fc2", x.flatten(0, 1), T, B)


class SSA(nn.Module):
    """``LIF(BN(proj(LIF_0.5(((Q Kᵀ) * 0.125) V))))`` per head, within one time step."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.num_heads = heads
        for name in ("q", "k", "v", "proj"):
            _make_linear_bn_lif(self, name, dim, dim)
        self.attn_lif = MultiStepLIF(v_threshold=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, N, C = x.shape
        x_for_qkv = x.flatten(0, 1)
        q, k, v = (
            _linear_bn_lif(self, n, x_for_qkv, T, B).reshape(T, B, N, self.num_heads, C // self.num_heads).permute(0, 1, 3, 2, 4).contiguous()
            for n in ("q", "k", "v")
        )
        attn = (q @ k.transpose(-2, -1)) * SSA_SCALE
        x = (attn @ v).transpose(2, 3).reshape(T, B, N, C).contiguous()
        x = self.attn_lif(x)
        return _linear_bn_lif(self, "proj", x.flatten(0, 1), T, B)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SSA(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikformer(nn.Module):
    """``model(x)`` on static ``[B,C,H,W]`` returns logits ``head(mean_T(mean_N(x)))``."""

    #: Layers whose input is a mean of spikes, real-valued at any T (the energy model's MACs; at T = 1
    #: nothing in the shapes shows the time mean).
    real_valued_inputs = ("head",)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.patch_embed = SPS(cfg.in_channels, cfg.dim)
        self.block = nn.ModuleList([Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.head = nn.Linear(cfg.dim, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(time_major(x, self.config.timesteps))
        for blk in self.block:
            x = blk(x)
        return self.head(x.mean(2).mean(0))
