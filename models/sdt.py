"""Spike-driven Transformer v1 backbone with STAtten and its sibling attention modes.

Structure and parameter names follow the official ``SpikeDrivenTransformer`` (timm name ``sdt``)
of the STAtten and SDT v1 repositories, so their checkpoints load strictly and give bit-identical
logits on CPU fp32. Residuals carry membrane potentials (MS shortcut); each branch starts with its
own LIF.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import BLOCKWISE_PRODUCTS
from .config import ModelConfig
from .encoding import time_major
from .lif import MultiStepLIF, MultiStepTernary
from .sps import MS_SPS


class DVSPooling(nn.Module):
    """``MaxPool3d((1,3,3), stride 1, padding (0,1,1))`` on a 5-D tensor, as the official DVS code.

    On ``[T,B,C,H,W]`` it pools over H and W; on ``[T,B,h,N,d]`` (SDSA) over the (N, d) plane.
    """

    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 1, 1), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class MS_SSA_Conv(nn.Module):
    """Attention branch: ``x + BN(proj(ATTN(LIF(BN(conv(LIF(x)))) for q, k, v)))``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dim, heads = cfg.dim, cfg.heads
        self.cfg = cfg
        self.num_heads = heads
        if cfg.dvs:
            self.pool = DVSPooling()
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_conv", nn.Conv2d(dim, dim, kernel_size=1, stride=1, bias=False))
            setattr(self, f"{name}_bn", nn.BatchNorm2d(dim))
        self.q_lif = MultiStepLIF()
        self.k_lif = nn.ReLU() if cfg.attention == "A2OS2A" else MultiStepLIF()
        self.v_lif = MultiStepTernary() if cfg.attention == "A2OS2A" else MultiStepLIF()
        # Unused by every mode but SDSA; kept because official state_dicts carry its weight.
        self.talking_heads = nn.Conv1d(heads, heads, kernel_size=1, stride=1, bias=False)
        self.talking_heads_lif = MultiStepLIF(v_threshold=0.5)
        self.attn_lif = MultiStepLIF(v_threshold=0.5)
        self.proj_conv = nn.Conv2d(dim, dim, kernel_size=1, stride=1)
        self.proj_bn = nn.BatchNorm2d(dim)
        self.shortcut_lif = MultiStepLIF()

    def scale_for(self, H: int) -> float:
        """STAtten's scale ``1/H`` (static) or ``1/(H²·B)`` (DVS), as a Python float like the official code,
        for a token grid of side ``H``: the official code takes H from the tensor it is given."""
        return 1 / (H * H * self.cfg.block_size) if self.cfg.dvs else 1 / H

    @property
    def scale(self) -> float:
        """`scale_for` the configured image size (the deployment graph's, whose input shape is fixed)."""
        return self.scale_for(self.cfg.token_grid)

    def _project(self, name: str, x_for_qkv: torch.Tensor, shape) -> torch.Tensor:
        T, B, C, H, W = shape
        out = getattr(self, f"{name}_bn")(getattr(self, f"{name}_conv")(x_for_qkv)).reshape(T, B, C, H, W).contiguous()
        out = getattr(self, f"{name}_lif")(out)
        pooled = self.cfg.dvs and (name != "q" or self.cfg.attention != "SDSA")
        if pooled:
            out = self.pool(out)
        N = H * W
        return out.flatten(3).transpose(-1, -2).reshape(T, B, N, self.num_heads, C // self.num_heads).permute(0, 1, 3, 2, 4).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        identity = x
        x = self.shortcut_lif(x)
        x_pool = self.pool(x) if self.cfg.dvs else None
        x_for_qkv = x.flatten(0, 1)
        q, k, v = (self._project(n, x_for_qkv, (T, B, C, H, W)) for n in ("q", "k", "v"))
        if self.cfg.attention == "SDSA":
            x = self._sdsa(q, k, v).transpose(3, 4).reshape(T, B, C, H, W).contiguous()
        else:
            out = BLOCKWISE_PRODUCTS[self.cfg.attention](q, k, v, self.cfg.block_size, self.scale_for(H))
            x = out.transpose(4, 3).reshape(T, B, C, H * W).contiguous()
            x = self.attn_lif(x).reshape(T, B, C, H, W)
            if self.cfg.dvs:
                x = x.mul(x_pool)
                x = x + x_pool
        x = self.proj_bn(self.proj_conv(x.flatten(0, 1))).reshape(T, B, C, H, W).contiguous()
        return x + identity

    def _sdsa(self, q, k, v) -> torch.Tensor:
        kv = k.mul(v)
        if self.cfg.dvs:
            kv = self.pool(kv)
        kv = self.talking_heads_lif(kv.sum(dim=-2, keepdim=True))
        x = q.mul(kv)
        if self.cfg.dvs:
            x = self.pool(x)
        return x


class MS_MLP_Conv(nn.Module):
    """MLP branch: ``x + BN(fc2(LIF(BN(fc1(LIF(x))))))`` with 1×1 convs (biased)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.res = dim == hidden
        self.c_hidden = hidden
        self.fc1_conv = nn.Conv2d(dim, hidden, kernel_size=1, stride=1)
        self.fc1_bn = nn.BatchNorm2d(hidden)
        self.fc1_lif = MultiStepLIF()
        self.fc2_conv = nn.Conv2d(hidden, dim, kernel_size=1, stride=1)
        self.fc2_bn = nn.BatchNorm2d(dim)
        self.fc2_lif = MultiStepLIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        identity = x
        x = self.fc1_lif(x)
        x = self.fc1_bn(self.fc1_conv(x.flatten(0, 1))).reshape(T, B, self.c_hidden, H, W).contiguous()
        if self.res:
            x = identity + x
            identity = x
        x = self.fc2_lif(x)
        x = self.fc2_bn(self.fc2_conv(x.flatten(0, 1))).reshape(T, B, C, H, W).contiguous()
        return x + identity


class MS_Block_Conv(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn = MS_SSA_Conv(cfg)
        self.mlp = MS_MLP_Conv(cfg.dim, cfg.dim * cfg.mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn(x))


class SpikeDrivenTransformer(nn.Module):
    """``model(x)`` returns what the official ``validate()`` uses: logits ``[B, K]``, or
    ``[T, B, K]`` per-step logits when ``cfg.tet`` (validate then averages them over T)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.patch_embed = MS_SPS(cfg.in_channels, cfg.dim, cfg.pooling_stat)
        self.block = nn.ModuleList([MS_Block_Conv(cfg) for _ in range(cfg.depth)])
        self.head_lif = MultiStepLIF()
        self.head = nn.Linear(cfg.dim, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(time_major(x, self.config.timesteps))
        for blk in self.block:
            x = blk(x)
        x = self.head(self.head_lif(x.flatten(3).mean(3)))
        return x if self.config.tet else x.mean(0)
