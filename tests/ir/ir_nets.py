"""Small seeded networks of every family and attention mode, for the IR tests."""
from __future__ import annotations

import torch

from statten_hw.models import ModelConfig, build_model

# (family, attention, extra config): every attention mode, plus the DVS, TET and MLP-residual paths.
SMALL = {
    "statten": ("statten", "STAtten", {}),
    "t_statten": ("statten", "T_STAtten", {}),
    "n_statten": ("statten", "N_STAtten", {}),
    "a2os2a": ("statten", "A2OS2A", {}),
    "sdsa": ("sdt", "SDSA", {"block_size": 1}),
    "ssa": ("spikformer", "SSA", {"block_size": 1}),
    "statten_dvs_tet": ("statten", "STAtten", {"dvs": True, "tet": True, "in_channels": 2}),
    "sdsa_dvs": ("sdt", "SDSA", {"block_size": 1, "dvs": True, "in_channels": 2}),
    "statten_mlp_res": ("statten", "STAtten", {"mlp_ratio": 1, "depth": 2}),
}


def small_model(key: str, seed: int = 0) -> torch.nn.Module:
    """dim 16, depth 1, 8 px, pooling '0001', T 4, B 2; random weights and non-trivial BN stats."""
    family, attention, extra = SMALL[key]
    options = dict(family=family, attention=attention, depth=1, dim=16, heads=2, timesteps=4, block_size=2,
                   img_size=8, in_channels=3, num_classes=5, pooling_stat="0001")
    options.update(extra)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**options))
    gen = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = module.num_features
            module.weight.data = torch.rand(n, generator=gen) + 0.6
            module.bias.data = torch.rand(n, generator=gen) * 1.2 - 0.3
            module.running_mean = torch.randn(n, generator=gen) * 0.3
            module.running_var = torch.rand(n, generator=gen) + 0.5
    return model.eval()


def small_input(model: torch.nn.Module, batch: int = 2, seed: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    if cfg.dvs:
        return torch.poisson(torch.full((batch, *cfg.input_shape), 1.5), generator=gen).clamp(max=6)
    return torch.randn(batch, *cfg.input_shape, generator=gen) * 1.5
