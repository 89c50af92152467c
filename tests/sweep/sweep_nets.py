"""A tiny STAtten checkpoint in the official format and a matching .npz data set, for fast sweeps."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ir"))
from ir_nets import small_input, small_model  # noqa: E402

#: T of the tiny network (its own B is 2), so B = 1, 2, 4 all divide it.
TINY_T = 4


def save_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """``small_model('statten')`` (dim 16, depth 1, 8 px, 3 channels, 5 classes, T 4, B 2) written as the
    STAtten training code writes it: ``{'state_dict', 'args': Namespace}`` (see models/checkpoint.py)."""
    model = small_model("statten", seed=seed)
    cfg = model.config
    args = argparse.Namespace(time_steps=cfg.timesteps, chunk_size=cfg.block_size, attention_mode="STAtten",
                              statten_hw_attention="STAtten", img_size=cfg.img_size, pooling_stat=cfg.pooling_stat,
                              num_heads=cfg.heads)
    torch.save({"state_dict": model.state_dict(), "args": args}, path)
    return path


def save_tiny_dataset(path: Path, samples: int = 24) -> Path:
    """Seeded random 3×8×8 inputs and labels in the .npz layout (``x``, ``y``): the accuracy means nothing,
    but it is some fraction of the samples that a shard-by-shard count must reproduce exactly."""
    model = small_model("statten")
    x = small_input(model, batch=samples, seed=7)
    y = torch.randint(0, model.config.num_classes, (samples,), generator=torch.Generator().manual_seed(8))
    np.savez(path, x=x.numpy(), y=y.numpy())
    return path
