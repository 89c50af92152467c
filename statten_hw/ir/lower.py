"""Lower a loaded float model (``statten_hw.models``) into the deployment graph.

The walk follows the known module structure of each family, in the order of its ``forward``:
a module in a slot that has no lowering rule raises :class:`UnsupportedLayer` naming its path and
type, never a silent skip. Node names are module paths (``block.0.attn.q_conv``); nodes with no
module of their own (residual adds, means) are named under their parent module. Weights are
copied as float32 numpy arrays; BN keeps its running statistics (the float executor reproduces
``F.batch_norm`` exactly; folding is the quantizer's business).
"""
from __future__ import annotations

import networkx as nx
import numpy as np
import torch
from torch import nn

from statten_hw.errors import UnsupportedLayer
from statten_hw.models.lif import MultiStepLIF, MultiStepTernary
from statten_hw.models.sdt import DVSPooling, MS_Block_Conv, MS_MLP_Conv, MS_SSA_Conv, SpikeDrivenTransformer
from statten_hw.models.sps import MS_SPS, SPS
from statten_hw.models.spikformer import MLP, SSA, SSA_SCALE, Block, Spikformer

from . import nodes as ir
from .graph import add_op, new_graph
from .passes import run_pipeline

ROOT = "<model>"


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().to(torch.float32).numpy().copy()


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _child(parent: nn.Module, path: str, name: str, kinds: tuple[type, ...], why: str) -> tuple[str, nn.Module]:
    sub = _join(path, name)
    module = getattr(parent, name, None)
    if module is None:
        raise UnsupportedLayer(sub, "missing", f"expected {why}")
    if not isinstance(module, kinds):
        raise UnsupportedLayer(sub, type(module).__name__, f"no lowering rule here (expected {why})")
    return sub, module


class _Lowering:
    """Appends nodes to one graph; ``x`` names are graph node names."""

    def __init__(self, g: nx.DiGraph):
        self.g = g

    def conv(self, parent, path, name, x):
        sub, m = _child(parent, path, name, (nn.Conv2d,), "nn.Conv2d")
        if m.dilation != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise UnsupportedLayer(sub, "Conv2d", f"only dilation 1 and explicit zero padding are lowered "
                                                  f"(dilation {m.dilation}, padding {m.padding!r}, mode {m.padding_mode})")
        op = ir.Conv2d(weight=_np(m.weight), bias=_np(m.bias), stride=m.stride, padding=m.padding, groups=m.groups)
        return add_op(self.g, sub, op, sub, x=x)

    def linear(self, parent, path, name, x):
        sub, m = _child(parent, path, name, (nn.Linear,), "nn.Linear")
        return add_op(self.g, sub, ir.Linear(weight=_np(m.weight), bias=_np(m.bias)), sub, x=x)

    def bn(self, parent, path, name, x, channel_axis=0):
        sub, m = _child(parent, path, name, (nn.BatchNorm1d, nn.BatchNorm2d), "nn.BatchNorm1d/2d")
        if not (m.affine and m.track_running_stats) or m.running_mean is None:
            raise UnsupportedLayer(sub, type(m).__name__, "needs affine=True and running statistics")
        if m.training:
            raise UnsupportedLayer(sub, type(m).__name__, "is in training mode (batch statistics); call model.eval()")
        op = ir.BatchNorm(gamma=_np(m.weight), beta=_np(m.bias), mean=_np(m.running_mean), var=_np(m.running_var),
                          eps=float(m.eps), channel_axis=channel_axis)
        return add_op(self.g, sub, op, sub, x=x)

    def neuron(self, parent, path, name, x):
        sub, m = _child(parent, path, name, (MultiStepLIF, MultiStepTernary, nn.ReLU),
                        "MultiStepLIF, MultiStepTernary or nn.ReLU")
        rules = {
            MultiStepLIF: lambda: ir.LIF(threshold=m.v_threshold),
            MultiStepTernary: lambda: ir.LIF(threshold=m.v_threshold, ternary=True),
            nn.ReLU: lambda: ir.ReLU(),
        }
        return add_op(self.g, sub, rules[type(m)](), sub, x=x)

    def maxpool(self, parent, path, name, x, node_name=None):
        sub, m = _child(parent, path, name, (nn.MaxPool2d, DVSPooling), "nn.MaxPool2d or DVSPooling")
        if isinstance(m, DVSPooling):
            sub_pool, p = _child(m, sub, "pool", (nn.MaxPool3d,), "nn.MaxPool3d")
            if _triple(p.kernel_size)[0] != 1 or _triple(p.stride)[0] != 1 or _triple(p.padding)[0] != 0 \
                    or p.dilation not in (1, (1, 1, 1)) or p.ceil_mode:
                raise UnsupportedLayer(sub_pool, "MaxPool3d", "only pools over (H, W) with time kernel 1 are lowered")
            kernel, stride, padding = (_triple(v)[1:] for v in (p.kernel_size, p.stride, p.padding))
        else:
            if m.dilation not in (1, (1, 1)) or m.ceil_mode:
                raise UnsupportedLayer(sub, "MaxPool2d", "only dilation 1 and floor mode are lowered")
            kernel, stride, padding = (_pair(v) for v in (m.kernel_size, m.stride, m.padding))
        op = ir.MaxPool2d(kernel=kernel, stride=stride, padding=padding)
        return add_op(self.g, node_name or sub, op, sub, x=x)

    def add(self, name, source, lhs, rhs, kind):
        return add_op(self.g, name, ir.Add(kind=kind), source, lhs=lhs, rhs=rhs)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _triple(v):
    return (v, v, v) if isinstance(v, int) else tuple(v)


def _require(module: nn.Module, path: str, kind: type) -> None:
    if not isinstance(module, kind):
        raise UnsupportedLayer(path or ROOT, type(module).__name__, f"expected {kind.__name__}")


# --- SDT / STAtten --------------------------------------------------------------------------

def _ms_sps(lw: _Lowering, sps: nn.Module, p: str, x: str) -> str:
    _require(sps, p, MS_SPS)
    for i, suffix in enumerate(["", "1", "2"]):
        x = lw.conv(sps, p, f"proj_conv{suffix}", x)
        x = lw.bn(sps, p, f"proj_bn{suffix}", x)
        x = lw.neuron(sps, p, f"proj_lif{suffix}", x)
        if sps.pooling_stat[i] == "1":
            x = lw.maxpool(sps, p, f"maxpool{suffix}", x)
    x = lw.conv(sps, p, "proj_conv3", x)
    x = lw.bn(sps, p, "proj_bn3", x)
    if sps.pooling_stat[3] == "1":
        x = lw.maxpool(sps, p, "maxpool3", x)
    feat = x
    x = lw.neuron(sps, p, "proj_lif3", x)
    x = lw.conv(sps, p, "rpe_conv", x)
    x = lw.bn(sps, p, "rpe_bn", x)
    return lw.add(_join(p, "rpe_add"), p, x, feat, "membrane")


def _ms_ssa(lw: _Lowering, attn: nn.Module, p: str, x: str) -> str:
    _require(attn, p, MS_SSA_Conv)
    cfg = attn.cfg
    identity = x
    x = lw.neuron(attn, p, "shortcut_lif", x)
    x_pool = lw.maxpool(attn, p, "pool", x, node_name=_join(p, "pool.x")) if cfg.dvs else None
    qkv = {}
    for n in ("q", "k", "v"):
        y = lw.conv(attn, p, f"{n}_conv", x)
        y = lw.bn(attn, p, f"{n}_bn", y)
        y = lw.neuron(attn, p, f"{n}_lif", y)
        if cfg.dvs and (n != "q" or cfg.attention != "SDSA"):
            y = lw.maxpool(attn, p, "pool", y, node_name=_join(p, f"pool.{n}"))
        qkv[n] = y
    if cfg.attention == "SDSA":
        _, kv_lif = _child(attn, p, "talking_heads_lif", (MultiStepLIF,), "MultiStepLIF (SDSA's K⊙V neuron)")
        op = ir.SpikingAttention(mode="SDSA", heads=attn.num_heads, block_size=1, scale=1.0, dvs=cfg.dvs,
                                 kv_threshold=kv_lif.v_threshold)
        y = add_op(lw.g, _join(p, "attention"), op, p, **qkv)
    else:
        op = ir.SpikingAttention(mode=cfg.attention, heads=attn.num_heads, block_size=cfg.block_size,
                                 scale=float(attn.scale), dvs=cfg.dvs)
        y = add_op(lw.g, _join(p, "attention"), op, p, **qkv)
        y = lw.neuron(attn, p, "attn_lif", y)
        if cfg.dvs:
            y = add_op(lw.g, _join(p, "pool_gate"), ir.Mul(), p, lhs=y, rhs=x_pool)
            y = lw.add(_join(p, "pool_add"), p, y, x_pool, "spike")
    y = lw.conv(attn, p, "proj_conv", y)
    y = lw.bn(attn, p, "proj_bn", y)
    return lw.add(_join(p, "residual"), p, y, identity, "membrane")


def _ms_mlp(lw: _Lowering, mlp: nn.Module, p: str, x: str) -> str:
    _require(mlp, p, MS_MLP_Conv)
    identity = x
    y = lw.neuron(mlp, p, "fc1_lif", x)
    y = lw.conv(mlp, p, "fc1_conv", y)
    y = lw.bn(mlp, p, "fc1_bn", y)
    if mlp.res:  # official ``identity + x``; the branch goes on lhs, the stream on rhs, as in every MS add
        y = lw.add(_join(p, "hidden_residual"), p, y, identity, "membrane")
        identity = y
    y = lw.neuron(mlp, p, "fc2_lif", y)
    y = lw.conv(mlp, p, "fc2_conv", y)
    y = lw.bn(mlp, p, "fc2_bn", y)
    return lw.add(_join(p, "residual"), p, y, identity, "membrane")


def _sdt(lw: _Lowering, model: nn.Module, x: str) -> str:
    cfg = model.config
    x = _ms_sps(lw, model.patch_embed, "patch_embed", x)
    for i, blk in enumerate(model.block):
        p = f"block.{i}"
        _require(blk, p, MS_Block_Conv)
        x = _ms_ssa(lw, blk.attn, _join(p, "attn"), x)
        x = _ms_mlp(lw, blk.mlp, _join(p, "mlp"), x)
    x = add_op(lw.g, "head.spatial_mean", ir.Mean(axes=(1, 2)), "", x=x)
    x = lw.neuron(model, "", "head_lif", x)
    x = lw.linear(model, "", "head", x)
    if not cfg.tet:
        x = add_op(lw.g, "head.time_mean", ir.Mean(time=True), "", x=x)
    return add_op(lw.g, "output", ir.Output(per_step=cfg.tet), "", x=x)


# --- Spikformer -----------------------------------------------------------------------------

def _sps(lw: _Lowering, sps: nn.Module, p: str, x: str) -> str:
    _require(sps, p, SPS)
    for suffix in ["", "1", "2", "3"]:
        x = lw.conv(sps, p, f"proj_conv{suffix}", x)
        x = lw.bn(sps, p, f"proj_bn{suffix}", x)
        x = lw.neuron(sps, p, f"proj_lif{suffix}", x)
        if suffix in ("2", "3"):
            x = lw.maxpool(sps, p, f"maxpool{suffix}", x)
    feat = x
    x = lw.conv(sps, p, "rpe_conv", x)
    x = lw.bn(sps, p, "rpe_bn", x)
    x = lw.neuron(sps, p, "rpe_lif", x)
    x = lw.add(_join(p, "rpe_add"), p, x, feat, "spike")
    return add_op(lw.g, _join(p, "tokens"), ir.Flatten(channels_last=True), p, x=x)


def _linear_bn_lif(lw: _Lowering, module: nn.Module, p: str, name: str, x: str) -> str:
    x = lw.linear(module, p, f"{name}_linear", x)
    x = lw.bn(module, p, f"{name}_bn", x, channel_axis=1)
    return lw.neuron(module, p, f"{name}_lif", x)


def _ssa(lw: _Lowering, attn: nn.Module, p: str, x: str) -> str:
    _require(attn, p, SSA)
    qkv = {n: _linear_bn_lif(lw, attn, p, n, x) for n in ("q", "k", "v")}
    op = ir.SpikingAttention(mode="SSA", heads=attn.num_heads, block_size=1, scale=SSA_SCALE)
    y = add_op(lw.g, _join(p, "attention"), op, p, **qkv)
    y = lw.neuron(attn, p, "attn_lif", y)
    return _linear_bn_lif(lw, attn, p, "proj", y)


def _spikformer(lw: _Lowering, model: nn.Module, x: str) -> str:
    x = _sps(lw, model.patch_embed, "patch_embed", x)
    for i, blk in enumerate(model.block):
        p = f"block.{i}"
        _require(blk, p, Block)
        y = _ssa(lw, blk.attn, _join(p, "attn"), x)
        x = lw.add(_join(p, "attn_residual"), p, x, y, "spike")
        _require(blk.mlp, _join(p, "mlp"), MLP)
        y = _linear_bn_lif(lw, blk.mlp, _join(p, "mlp"), "fc1", x)
        y = _linear_bn_lif(lw, blk.mlp, _join(p, "mlp"), "fc2", y)
        x = lw.add(_join(p, "mlp_residual"), p, x, y, "spike")
    x = add_op(lw.g, "head.token_mean", ir.Mean(axes=(0,)), "", x=x)
    x = add_op(lw.g, "head.time_mean", ir.Mean(time=True), "", x=x)
    x = lw.linear(model, "", "head", x)
    return add_op(lw.g, "output", ir.Output(per_step=False), "", x=x)


FAMILIES = {SpikeDrivenTransformer: _sdt, Spikformer: _spikformer}


def lower(model: nn.Module, encoding: str | None = None) -> nx.DiGraph:
    """Deployment graph of ``model``, shapes inferred and validated (``passes.PIPELINE``).

    ``g.graph["model"]`` holds ``model.config`` as a dict. ``encoding`` says how inputs arrive:
    ``'direct'`` (one frame, repeated T times) or ``'events'`` (a sequence of T frames). The models
    take both; by default DVS models take events and the others direct input.
    """
    rule = FAMILIES.get(type(model))
    if rule is None:
        raise UnsupportedLayer(ROOT, type(model).__name__,
                               f"not a known model family ({', '.join(c.__name__ for c in FAMILIES)})")
    cfg = model.config
    g = new_graph(model=cfg.to_dict())
    frame = (cfg.in_channels, cfg.img_size, cfg.img_size)
    x = add_op(g, "input", ir.Input(shape=frame, timesteps=cfg.timesteps,
                                    encoding=encoding or ("events" if cfg.dvs else "direct")), "")
    rule(_Lowering(g), model, x)
    return run_pipeline(g)
