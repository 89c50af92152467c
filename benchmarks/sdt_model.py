"""SDT-8-768 at 224 px (T = 4, B = 2) with synthetic weights whose BN sets the firing rates.

Random conv weights give pre-activations of arbitrary scale; each BatchNorm is therefore calibrated on
random images: its running statistics are set to the batch statistics it sees (one train-mode pass,
``momentum=None``), and its affine part to ``gamma = 1, beta = BETA``, so every LIF right after a
BatchNorm receives roughly N(BETA, 1) input per step: with threshold 1 and tau 2 that fires 12-18 % of
its neurons per step (patch embedding, q, k, v, fc2), the range the STAtten/SDT papers report for
trained ImageNet models. The other LIFs fire far more, measured on one image (`benchmarks/event_kernels.py`
prints the conv inputs' densities): the ones reading the membrane residual stream (shortcut_lif 89 %,
fc1_lif 91 %; every block adds an N(BETA, 1) branch to the stream, so it drifts upwards) and the
attention LIF (97 %: q·kᵀ·v counts, with no BatchNorm). Overall 28 % of the neurons fire per step, so
this network's events, and the energy that follows from them, are at the high end of a trained model's.
Other ``beta`` values move every layer's firing rate together (the scaling benchmark's knob for the
number of events).

The same recipe builds any `ModelConfig` (the scaling benchmark's small and medium networks), and
`save_checkpoint` writes it in the layout the STAtten repository's ``train.py`` saves, so the whole
pipeline benchmark starts from a checkpoint file as a user would.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from statten_hw.models import ModelConfig, build_model

CONFIG = ModelConfig(family="statten", attention="STAtten", depth=8, dim=768, heads=8, timesteps=4, block_size=2,
                     img_size=224, in_channels=3, num_classes=1000, pooling_stat="1111")
BETA = 0.6


def sdt_8_768(config: ModelConfig = CONFIG, seed: int = 0, calibration_images: int = 2,
              beta: float = BETA) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(config)
    bns = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one pass sets the running stats to the batch stats
        bn.weight.data.fill_(1.0)
        bn.bias.data.fill_(beta)
    model.train()
    with torch.no_grad():
        model(images(calibration_images, config, seed + 1))
    return model.eval()


def images(n: int, config: ModelConfig = CONFIG, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, *config.input_shape, generator=torch.Generator().manual_seed(seed))


def save_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """``{'arch', 'state_dict', 'args'}`` as the STAtten repository writes it (``statten_hw.load_checkpoint``
    reads T, B, image size and pooling from ``args``, the rest from the weights)."""
    c = model.config
    args = argparse.Namespace(model="sdt", time_steps=c.timesteps, chunk_size=c.block_size,
                              attention_mode=c.attention, statten_hw_attention=c.attention, num_heads=c.heads,
                              dim=c.dim, layer=c.depth, pooling_stat=c.pooling_stat, mlp_ratio=c.mlp_ratio,
                              img_size=c.img_size, in_channels=c.in_channels, num_classes=c.num_classes,
                              dvs_mode=c.dvs, TET=c.tet)
    torch.save({"arch": "sdt", "state_dict": model.state_dict(), "args": args}, path)
    return path


def deploy(model: torch.nn.Module, target, calibration: torch.Tensor):
    """Lower, quantize on ``calibration`` and map on ``target``: `statten_hw.pipeline.prepare` after
    its checkpoint loading, for a model held in memory."""
    from statten_hw.ir import lower
    from statten_hw.mapping import map_model
    from statten_hw.pipeline import Deployment
    from statten_hw.quant import quantize

    qgraph = quantize(lower(model), calibration)
    mapping = map_model(qgraph.float_graph, target, model.config.block_size)
    return Deployment(checkpoint=None, model=model, qgraph=qgraph, mapping=mapping, dataset="synthetic")
