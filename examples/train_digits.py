"""Train the embedded default STAtten models on scikit-learn's 8x8 digits (CPU, deterministic).

Writes official-format (timm ``CheckpointSaver``) checkpoints that ``statten_hw.load_checkpoint``
reads back:

* ``digits_statten.pth``   STAtten, T=4, B=2, static ``digits`` (the image is repeated T times)
* ``digits_seq_b{1,2,4,8}.pth``  STAtten, T=8, B in {1,2,4,8}, ``digits-seq`` (row t shown at step t)

Every model uses the same recipe: AdamW + cosine decay, batch 64, label smoothing 0.1, random
+-1 pixel shifts. After training, each file is reloaded through ``statten_hw.load_checkpoint`` and
evaluated in eval mode (BatchNorm running statistics) on the fixed test split.

    .venv/bin/python examples/train_digits.py                       # all five models
    .venv/bin/python examples/train_digits.py --only digits_seq_b4  # one of them
"""
from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

import statten_hw
from statten_hw.data import load_digits_split
from statten_hw.models import ModelConfig, build_model
from statten_hw.quant.aware import bake, freeze_batchnorm, quantization_aware

DIM, DEPTH, HEADS, POOLING = 32, 1, 4, "0001"

#: name -> (dataset, T, block size, default epochs). The four digits-seq models share one recipe.
MODELS = {
    "digits_statten": ("digits", 4, 2, 30),
    "digits_seq_b1": ("digits-seq", 8, 1, 30),
    "digits_seq_b2": ("digits-seq", 8, 2, 30),
    "digits_seq_b4": ("digits-seq", 8, 4, 30),
    "digits_seq_b8": ("digits-seq", 8, 8, 30),
}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        torch.use_deterministic_algorithms(True)
    except Exception:  # pragma: no cover - very old torch
        pass


def shift_images(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift every ``[N, 1, 8, 8]`` image by a random (dy, dx) in {-1, 0, 1}^2, zero fill."""
    n, _, h, w = img.shape
    padded = F.pad(img, (1, 1, 1, 1))
    offs = torch.randint(0, 3, (n, 2), generator=gen)
    out = torch.empty_like(img)
    for dy in range(3):
        for dx in range(3):
            sel = (offs[:, 0] == dy) & (offs[:, 1] == dx)
            if sel.any():
                out[sel] = padded[sel, :, dy:dy + h, dx:dx + w]
    return out


def rows_as_sequence(img: torch.Tensor) -> torch.Tensor:
    """Torch version of ``statten_hw.data.rows_as_sequence``: ``[N,1,8,8] -> [N,8,1,8,8]``."""
    n, c, h, w = img.shape
    seq = img.new_zeros((n, h, c, h, w))
    for t in range(h):
        seq[:, t, :, t, :] = img[:, :, t, :]
    return seq


def augment(x: torch.Tensor, dataset: str, gen: torch.Generator) -> torch.Tensor:
    if dataset == "digits":
        return shift_images(x, gen)
    # digits-seq: frame t holds only row t, so the summed frames are the image; shift it, re-sequence.
    return rows_as_sequence(shift_images(x.sum(1), gen))


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i:i + batch]).argmax(-1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def run_epochs(model: torch.nn.Module, data, dataset: str, args: argparse.Namespace, gen: torch.Generator,
               epochs: int, lr: float, warmup: bool, desc: str, frozen_bn: bool = False) -> None:
    """AdamW with cosine decay to 0 per step (after one epoch of linear warm-up when ``warmup``);
    ``frozen_bn``: BatchNorm on its running statistics, as quantization-aware training needs."""
    xtr, ytr, xte, yte = data
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(xtr) / args.batch_size)
    total = epochs * steps_per_epoch
    ramp = steps_per_epoch if warmup else 0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / ramp if s < ramp else 0.5 * (1 + math.cos(math.pi * (s - ramp) / max(1, total - ramp))))
    bar = tqdm(range(epochs), desc=f"{desc:19s}", leave=True, dynamic_ncols=True)
    for epoch in bar:
        model.train()
        if frozen_bn:
            freeze_batchnorm(model)
        perm = torch.randperm(len(xtr), generator=gen)
        running, seen = 0.0, 0
        for i in range(0, len(xtr), args.batch_size):
            idx = perm[i:i + args.batch_size]
            xb, yb = augment(xtr[idx], dataset, gen), ytr[idx]
            loss = F.cross_entropy(model(xb), yb, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * len(idx)
            seen += len(idx)
        post = {"loss": f"{running / seen:.3f}"}
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == epochs:
            post["test"] = f"{evaluate(model, xte, yte):.4f}"
        bar.set_postfix(post)


def train_one(name: str, args: argparse.Namespace, console: Console) -> dict:
    dataset, T, B, default_epochs = MODELS[name]
    epochs = args.epochs or default_epochs
    seed_everything(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    xtr, ytr = load_digits_split(dataset, "train")
    xte, yte = load_digits_split(dataset, "test")
    cfg = ModelConfig(family="statten", attention="STAtten", depth=DEPTH, dim=args.dim, heads=HEADS,
                      timesteps=T, block_size=B, img_size=8, in_channels=1, num_classes=10,
                      pooling_stat=POOLING)
    t0 = time.perf_counter()
    if args.from_float:
        model = statten_hw.load_checkpoint(Path(args.from_float) / f"{name}.pth")
    else:
        model = build_model(cfg)
        run_epochs(model, (xtr, ytr, xte, yte), dataset, args, gen, epochs, args.lr, warmup=True, desc=name)
    float_acc = evaluate(model, xte, yte)
    if args.qat_epochs:
        quantization_aware(model, args.qat_bits, encoding="events" if dataset == "digits-seq" else None)
        run_epochs(model, (xtr, ytr, xte, yte), dataset, args, gen, args.qat_epochs, args.qat_lr, warmup=False,
                   desc=f"{name} QAT", frozen_bn=True)
        bake(model)
    train_s = time.perf_counter() - t0
    acc = evaluate(model, xte, yte)

    ckpt_args = argparse.Namespace(
        model="sdt", time_steps=T, chunk_size=B, attention_mode="STAtten", statten_hw_attention="STAtten",
        num_heads=HEADS, dim=args.dim, layer=DEPTH, pooling_stat=POOLING, mlp_ratio=4, img_size=8,
        in_channels=1, num_classes=10, dvs_mode=False, TET=False, dataset=dataset, seed=args.seed,
        epochs=epochs, lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
        smoothing=0.1, opt="adamw", sched="cosine", warmup_epochs=1, aug="random shift +-1 px",
        qat_epochs=args.qat_epochs, qat_lr=args.qat_lr, qat_bits=args.qat_bits, float_top1=float_acc,
    )
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    out = Path(args.out) / f"{name}.pth"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epochs - 1, "arch": "sdt", "state_dict": state, "version": 2,
                "args": ckpt_args, "metric": acc}, out)

    reloaded = statten_hw.load_checkpoint(out)
    assert reloaded.config == cfg, (reloaded.config, cfg)
    reload_acc = evaluate(reloaded, xte, yte)
    console.print(f"[bold]{name}[/]: trained {train_s:.0f}s, test top-1 {acc:.4f} (float stage {float_acc:.4f}), "
                  f"reloaded {reload_acc:.4f}, {out} ({out.stat().st_size / 1024:.1f} KiB)")
    return dict(name=name, dataset=dataset, T=T, B=B, acc=acc, float_acc=float_acc, reload_acc=reload_acc,
                size=out.stat().st_size, seconds=train_s, epochs=epochs, path=out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="statten_hw/default_models", help="output directory")
    p.add_argument("--only", choices=sorted(MODELS), help="train only this model")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs for every model (default: 30 for digits_statten, 30 for digits_seq_*)")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dim", type=int, default=DIM)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--qat-epochs", type=int, default=8,
                   help="quantization-aware fine-tuning epochs after the float stage (0: none)")
    p.add_argument("--qat-lr", type=float, default=1e-3)
    p.add_argument("--qat-bits", type=int, default=8)
    p.add_argument("--from-float", metavar="DIR",
                   help="skip the float stage: load DIR/<name>.pth (a float-stage checkpoint) instead")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=max(Console().width, 110))
    start = time.perf_counter()
    results = [train_one(n, args, console) for n in ([args.only] if args.only else MODELS)]

    table = Table(title=f"digits default models ({time.perf_counter() - start:.0f}s in all)")
    for col in ("file", "dataset", "T", "B", "float stage", "test top-1", "reloaded top-1", "size", "train s"):
        table.add_column(col, justify="right" if col not in ("file", "dataset") else "left")
    for r in results:
        table.add_row(r["path"].name, r["dataset"], str(r["T"]), str(r["B"]), f"{r['float_acc']:.4f}", f"{r['acc']:.4f}",
                      f"{r['reload_acc']:.4f}", f"{r['size'] / 1024:.1f} KiB", f"{r['seconds']:.0f}")
    console.print(table)


if __name__ == "__main__":
    main()
