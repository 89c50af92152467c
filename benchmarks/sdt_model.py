"""SDT-8-768 at 224 px (T = 4, B = 2) with synthetic weights whose BN makes realistic firing rates.

Random conv weights give pre-activations of arbitrary scale; each BatchNorm is therefore calibrated on
random images: its running statistics are set to the batch statistics it sees (one train-mode pass,
``momentum=None``), and its affine part to ``gamma = 1, beta = BETA``, so every LIF receives
roughly N(BETA, 1) input per step: with threshold 1 and tau 2 that fires some 10-20 % of neurons per
step, the range the STAtten/SDT papers report for trained ImageNet models.
"""
from __future__ import annotations

import torch

from statten_hw.models import ModelConfig, build_model

CONFIG = ModelConfig(family="statten", attention="STAtten", depth=8, dim=768, heads=8, timesteps=4, block_size=2,
                     img_size=224, in_channels=3, num_classes=1000, pooling_stat="1111")
BETA = 0.6


def sdt_8_768(config: ModelConfig = CONFIG, seed: int = 0, calibration_images: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(config)
    bns = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one pass sets the running stats to the batch stats
        bn.weight.data.fill_(1.0)
        bn.bias.data.fill_(BETA)
    model.train()
    with torch.no_grad():
        model(images(calibration_images, config, seed + 1))
    return model.eval()


def images(n: int, config: ModelConfig = CONFIG, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, *config.input_shape, generator=torch.Generator().manual_seed(seed))
