"""SDT-8-768 at 224 px (T = 4, B = 2) with synthetic weights whose BatchNorms set the firing rates.

Random conv weights give pre-activations of arbitrary scale, so `calibrate` sets every BatchNorm in
one forward pass over random images, in the order the network runs:

* its running statistics to those of the input it sees (the pass runs in eval mode, normalising as the
  calibrated model will), its gamma to 1;
* its beta, per channel, to the shift at which the LIF it feeds fires ``rate`` of its neurons per
  step (bisection on that LIF run over the channel's values): the stem's and each branch's LIFs.
  The BatchNorm that ends a branch (the stem's ``rpe_bn``, ``proj_bn``, ``fc2_bn``) adds to the
  membrane residual stream, so its beta sets the stream that the next ``shortcut_lif``/``fc1_lif``
  (and after the last block ``head_lif``, on the token mean) read to fire ``rate`` as well: the stream
  cannot drift up with depth and saturate them.

``rate`` defaults to 15 %, inside the 7-43 % per layer that the trained embedded digits model fires
(a round figure, not a trained ImageNet model's rates). q, k and v fire more sparsely: STAtten's
attention LIF (threshold 0.5, no BatchNorm) sums ``d_h · B·N`` products scaled by ``1/H``, a mean
drive of ``d_h · B · H · r³`` at q, k, v rate ``r``; `qkv_rate` picks ``r`` so that the drive is
`ATTENTION_DRIVE`, the value at which SDT-8-768's attention LIFs fire 17-24 % (5 % q, k, v; at 15 %
they fire 97-100 %). The rates each LIF really has: `firing_rates`; ``python benchmarks/sdt_model.py``
writes SDT-8-768's to ``results/sdt_model_rates.json`` (13.6 % of all neurons per step).

The same recipe builds any STAtten/SDT `ModelConfig` (the scaling benchmark's small and medium
networks; its ``rate`` is the knob that moves the number of events), and `save_checkpoint` writes it in
the layout the STAtten repository's ``train.py`` saves, so the whole-pipeline benchmark starts from a
checkpoint file as a user would.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn

from statten_hw.models import ModelConfig, build_model
from statten_hw.models.lif import MultiStepLIF

CONFIG = ModelConfig(family="statten", attention="STAtten", depth=8, dim=768, heads=8, timesteps=4, block_size=2,
                     img_size=224, in_channels=3, num_classes=1000, pooling_stat="1111")
RATE = 0.15
#: STAtten's mean attention-LIF drive ``d_h · B · H · r³`` at which SDT-8-768's attention LIFs fire
#: 17-24 % per step: ``r`` = 5 % there (``96 · 2 · 14 · 0.05³``; measured with `firing_rates`).
ATTENTION_DRIVE = 0.336
#: Bisection steps for a channel's shift (its bracket is the values' range, so 2⁻³⁰ of that).
BISECTIONS = 30
#: Positions (batch × pixels) per channel that the bisection runs the LIF on; a strided subset beyond.
SAMPLED_POSITIONS = 4096


def sdt_8_768(config: ModelConfig = CONFIG, seed: int = 0, calibration_images: int = 2,
              rate: float = RATE) -> torch.nn.Module:
    """The network of ``config`` with seeded random weights, calibrated (`calibrate`) on ``calibration_images``
    random images so its LIFs fire ``rate`` (q, k, v: `qkv_rate`) of their neurons per step."""
    torch.manual_seed(seed)
    model = build_model(config)
    return calibrate(model, images(calibration_images, config, seed + 1), rate, qkv_rate(config, rate))


def qkv_rate(config: ModelConfig, rate: float = RATE) -> float:
    """The q, k, v firing rate that gives ``config``'s attention LIFs `ATTENTION_DRIVE` at the default
    ``rate`` (and moves with ``rate`` in proportion): ``(drive / (d_h · B · H))^(1/3)``, at most 1.
    The drive is STAtten's q·kᵀ·v over a block; other attention modes sum other products."""
    if config.attention != "STAtten":
        raise ValueError(f"qkv_rate is sized for STAtten's block-wise attention, not {config.attention}")
    products = config.dim // config.heads * config.block_size * config.token_grid
    return min(1.0, (ATTENTION_DRIVE / products) ** (1 / 3) * rate / RATE)


def calibrate(model: nn.Module, x: torch.Tensor, rate: float, qkv: float) -> nn.Module:
    """Set every BatchNorm of the SDT/STAtten ``model`` in one eval-mode pass over ``x`` (module
    docstring). Returns the model, in eval mode."""
    config = model.config
    if config.family == "spikformer" or config.mlp_ratio == 1:
        raise ValueError("calibrate handles SDT/STAtten networks whose MLP is wider than its input")
    hooks = [bn.register_forward_pre_hook(_normalise_what_arrives) for bn in _reset_batchnorms(model)]
    for module, bn, lif_input, target in _shift_points(model, rate, qkv):
        hooks.append(module.register_forward_hook(_fire_at(bn, lif_input, target)))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    return model


def _reset_batchnorms(model: nn.Module) -> list[nn.BatchNorm2d]:
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_parameters()  # gamma 1, beta 0: `_fire_at` adds the shifts to beta
    return bns


def _normalise_what_arrives(bn: nn.BatchNorm2d, inputs) -> None:
    """Running statistics := the batch's own (biased variance, as normalisation uses it)."""
    (x,) = inputs
    bn.running_mean.copy_(x.mean((0, 2, 3)))
    bn.running_var.copy_(x.var((0, 2, 3), unbiased=False))


def _shift_points(model: nn.Module, rate: float, qkv: float):
    """(module whose output is shifted, BatchNorm whose beta takes the shift, that output as the LIF it
    feeds sees it ``[T, B, C, ...]``, target rate), in the order the forward pass meets them."""
    config, stem = model.config, model.patch_embed
    T = config.timesteps

    def time_major(out):
        return out.reshape(T, -1, *out.shape[1:])

    def pooled(out):
        return time_major(stem.maxpool3(out))

    def stream(out):
        return out

    def token_mean(out):
        return out.flatten(3).mean(3)

    for suffix in ("", "1", "2", "3"):
        bn = getattr(stem, f"proj_bn{suffix}")
        yield bn, bn, pooled if suffix == "3" and config.pooling_stat[3] == "1" else time_major, rate
    yield stem, stem.rpe_bn, stream, rate
    for i, block in enumerate(model.block):
        for name in ("q", "k", "v"):
            if type(getattr(block.attn, f"{name}_lif")) is MultiStepLIF:  # not A2OS2A's ReLU k, ternary v
                yield getattr(block.attn, f"{name}_bn"), getattr(block.attn, f"{name}_bn"), time_major, qkv
        yield block.attn, block.attn.proj_bn, stream, rate
        yield block.mlp.fc1_bn, block.mlp.fc1_bn, time_major, rate
        yield block.mlp, block.mlp.fc2_bn, token_mean if i == len(model.block) - 1 else stream, rate


def _fire_at(bn: nn.BatchNorm2d, lif_input, target: float):
    def hook(module, inputs, out):
        shift = shift_for_rate(lif_input(out), target)
        bn.bias.add_(shift)
        return out + shift.view(-1, 1, 1)
    return hook


def shift_for_rate(x: torch.Tensor, rate: float, threshold: float = 1.0) -> torch.Tensor:
    """Per channel ``c``, the smallest shift (to 2⁻`BISECTIONS` of the values' range) at which the official
    LIF run over ``x[:, :, c] + shift`` (``[T, B, C, ...]``) fires at least ``rate`` of its neurons per step."""
    y = x.movedim(2, 1).flatten(2)  # [T, C, positions]
    y = y[:, :, ::math.ceil(y.shape[2] / SAMPLED_POSITIONS)]
    bound = float(x.abs().amax()) + 2 * threshold
    low, high = torch.full((y.shape[1], 1), -bound), torch.full((y.shape[1], 1), bound)
    for _ in range(BISECTIONS):
        mid = (low + high) / 2
        below = _lif_rate(y + mid, threshold)[:, None] < rate
        low, high = torch.where(below, mid, low), torch.where(below, high, mid)
    return high[:, 0]


def _lif_rate(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per channel, the fraction of ``x``'s ``[T, C, P]`` neurons and steps that fire."""
    return MultiStepLIF(threshold)(x).mean((0, 2))


def firing_rates(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, float], float]:
    """Every LIF's fraction of neurons firing per step on ``x``, by module path, and that of all of
    them together (spikes / (neurons x steps))."""
    spikes, sites = {}, {}

    def record(name):
        def hook(module, inputs, out):
            spikes[name], sites[name] = out.sum().item(), out.numel()
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if type(m) is MultiStepLIF]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return {name: spikes[name] / sites[name] for name in spikes}, sum(spikes.values()) / sum(sites.values())


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
    mapping = map_model(qgraph.float_graph, target, model.config.block_size, weight_bits=qgraph.weight_bits)
    return Deployment(checkpoint=None, model=model, qgraph=qgraph, mapping=mapping, dataset="synthetic")


def main(argv=None) -> int:
    """Calibrate SDT-8-768 and write the rates its LIFs fire at on a held-out image."""
    from harness import load_average, parser, write_result

    args = parser(__doc__, repeats=None, threads=False).parse_args(argv)
    before = load_average()
    per_lif, overall = firing_rates(sdt_8_768(), images(1, seed=7))
    write_result(args.results, "sdt_model_rates", {"rate": RATE, "qkv_rate": qkv_rate(CONFIG), "image_seed": 7,
                                                   "overall": overall, "per_lif": per_lif}, before)
    print(f"overall {overall:.3f}; attention LIFs "
          f"{min(v for k, v in per_lif.items() if 'attn_lif' in k):.3f}-"
          f"{max(v for k, v in per_lif.items() if 'attn_lif' in k):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
