"""Spiking patch splitting (SPS): the convolutional stem that turns frames into tokens.

Module and parameter names equal the official ones, so official state_dicts load strictly.
"""
from __future__ import annotations

import torch
from torch import nn

from .lif import MultiStepLIF


def _maxpool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)


def _conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False)


class MS_SPS(nn.Module):
    """SDT/STAtten stem (``module/sps.py``): four conv-BN-LIF stages, pools per ``pooling_stat``.

    The last pool acts on BN output before ``proj_lif3``; the relative position embedding
    ``BN(rpe_conv(LIF(x))) + x`` leaves membrane-like (real) values, with no output LIF.
    """

    def __init__(self, in_channels: int, embed_dims: int, pooling_stat: str):
        super().__init__()
        self.pooling_stat = pooling_stat
        widths = [in_channels, embed_dims // 8, embed_dims // 4, embed_dims // 2, embed_dims]
        for i, suffix in enumerate(["", "1", "2", "3"]):
            setattr(self, f"proj_conv{suffix}", _conv3x3(widths[i], widths[i + 1]))
            setattr(self, f"proj_bn{suffix}", nn.BatchNorm2d(widths[i + 1]))
            setattr(self, f"proj_lif{suffix}", MultiStepLIF())
            setattr(self, f"maxpool{suffix}", _maxpool())
        self.rpe_conv = _conv3x3(embed_dims, embed_dims)
        self.rpe_bn = nn.BatchNorm2d(embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        x = x.flatten(0, 1)
        for i, suffix in enumerate(["", "1", "2"]):
            x = getattr(self, f"proj_bn{suffix}")(getattr(self, f"proj_conv{suffix}")(x))
            x = getattr(self, f"proj_lif{suffix}")(x.reshape(T, B, *x.shape[1:]).contiguous())
            x = x.flatten(0, 1).contiguous()
            if self.pooling_stat[i] == "1":
                x = getattr(self, f"maxpool{suffix}")(x)
        x = self.proj_bn3(self.proj_conv3(x))
        if self.pooling_stat[3] == "1":
            x = self.maxpool3(x)
        x_feat = x
        x = self.proj_lif3(x.reshape(T, B, *x.shape[1:]).contiguous()).flatten(0, 1).contiguous()
        x = self.rpe_bn(self.rpe_conv(x))
        return (x + x_feat).reshape(T, B, *x.shape[1:]).contiguous()


class SPS(nn.Module):
    """Spikformer CIFAR stem (``cifar10/model.py``): pools after the third and fourth LIF, RPE with a LIF.

    Returns tokens ``[T, B, N, C]``.
    """

    def __init__(self, in_channels: int, embed_dims: int):
        super().__init__()
        widths = [in_channels, embed_dims // 8, embed_dims // 4, embed_dims // 2, embed_dims]
        for i, suffix in enumerate(["", "1", "2", "3"]):
            setattr(self, f"proj_conv{suffix}", _conv3x3(widths[i], widths[i + 1]))
            setattr(self, f"proj_bn{suffix}", nn.BatchNorm2d(widths[i + 1]))
            setattr(self, f"proj_lif{suffix}", MultiStepLIF())
        self.maxpool2 = _maxpool()
        self.maxpool3 = _maxpool()
        self.rpe_conv = _conv3x3(embed_dims, embed_dims)
        self.rpe_bn = nn.BatchNorm2d(embed_dims)
        self.rpe_lif = MultiStepLIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        x = x.flatten(0, 1)
        for suffix in ["", "1", "2", "3"]:
            x = getattr(self, f"proj_bn{suffix}")(getattr(self, f"proj_conv{suffix}")(x))
            x = getattr(self, f"proj_lif{suffix}")(x.reshape(T, B, *x.shape[1:]).contiguous())
            x = x.flatten(0, 1).contiguous()
            if suffix in ("2", "3"):
                x = getattr(self, f"maxpool{suffix}")(x)
        x_feat = x.reshape(T, B, *x.shape[1:]).contiguous()
        x = self.rpe_bn(self.rpe_conv(x))
        x = self.rpe_lif(x.reshape(T, B, *x.shape[1:]).contiguous())
        x = x + x_feat
        return x.flatten(-2).transpose(-1, -2)
