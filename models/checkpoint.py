"""Load checkpoints written by the official training code (or by statten-hw) safely and strictly.

Accepted layouts: timm ``CheckpointSaver`` dicts (``state_dict``, optional ``state_dict_ema``,
``args`` as an ``argparse.Namespace``), MAE style ``{'model': ...}``, and bare state_dicts, with or
without a DDP ``module.`` prefix. Files are read with ``torch.load(weights_only=True)`` and only
``argparse.Namespace`` is allowed through the unpickler: any other pickled object is refused before
anything from the file runs.
"""
from __future__ import annotations

import argparse
import pickle
import zipfile
from pathlib import Path

import torch

from statten_hw.errors import CheckpointError, ConfigError

from .config import ModelConfig
from .sdt import SpikeDrivenTransformer
from .spikformer import Spikformer

SAFE_GLOBALS = [argparse.Namespace]
#: Present in official state_dicts but unused by the forward pass.
IGNORED_SUFFIXES = ("num_batches_tracked",)


def read_checkpoint(path) -> dict:
    """``torch.load`` with the allow-list; every failure becomes a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        refused = next((line for line in lines if "GLOBAL" in line or "global" in line), None)
        if refused is None:
            raise CheckpointError(path, f"not a readable torch checkpoint (corrupt pickle: {lines[0][:120] if lines else err})") from None
        raise CheckpointError(path, "refused: the file holds a pickled object outside the allow-list "
                                    f"(argparse.Namespace only): {refused[:200]}") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError, AttributeError,
            ImportError, TypeError, IndexError, KeyError, MemoryError, OverflowError) as err:
        raise CheckpointError(path, f"not a readable torch checkpoint ({type(err).__name__}: "
                                    f"{str(err).splitlines()[0][:160] if str(err) else 'truncated or corrupt'})") from None
    if isinstance(obj, torch.nn.Module):
        raise CheckpointError(path, "holds a whole pickled module; save its state_dict instead")
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"top level is a {type(obj).__name__}, expected a dict")
    return obj


def extract_state_dict(ckpt: dict, path, use_ema: bool = False) -> tuple[dict, dict]:
    """Return ``(state_dict, args)``: the weights (prefix-stripped) and the training options."""
    args = ckpt.get("args")
    args = vars(args) if isinstance(args, argparse.Namespace) else (args if isinstance(args, dict) else {})
    if use_ema and "state_dict_ema" not in ckpt:
        raise CheckpointError(path, "--ema asked for but the checkpoint has no 'state_dict_ema'")
    for key in (["state_dict_ema"] if use_ema else []) + ["state_dict", "model"]:
        if isinstance(ckpt.get(key), dict):
            state = ckpt[key]
            break
    else:
        state = ckpt
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(path, f"no tensors found; top-level keys seen: {sorted(map(str, ckpt))[:12]}")
    if len(tensors) != len(state):
        bad = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))[:5]
        raise CheckpointError(path, f"state_dict entries that are not tensors: {bad}")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors, args


def _shape(state: dict, key: str, path) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(path, f"missing key {key!r}")
    return tuple(state[key].shape)


def detect_family(state: dict, path) -> str:
    if "block.0.attn.q_linear.weight" in state:
        return "spikformer"
    if "block.0.attn.q_conv.weight" in state and "patch_embed.proj_conv3.weight" in state:
        return "sdt"
    seen = sorted(state)[:8]
    raise CheckpointError(path, f"unknown architecture: expected SDT/STAtten ('block.0.attn.q_conv.weight') or "
                                f"Spikformer ('block.0.attn.q_linear.weight') keys; keys seen: {seen} ... ({len(state)} keys)")


def _attention(args: dict) -> str:
    """STAtten vs SDT v1 by provenance: only the STAtten repo writes ``chunk_size``/``attention_mode``,
    and its model always runs STAtten (``attention_mode`` never reaches ``create_model``).
    statten-hw's own checkpoints name their mode in ``statten_hw_attention``."""
    if "statten_hw_attention" in args:
        return args["statten_hw_attention"]
    if "chunk_size" in args or "attention_mode" in args:
        return "STAtten"
    return "SDSA"


def infer_config(state: dict, args: dict, path) -> ModelConfig:
    family = detect_family(state, path)
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("block."))
    head = _shape(state, "head.weight", path)
    conv0 = _shape(state, "patch_embed.proj_conv.weight", path)
    dim = _shape(state, "patch_embed.proj_conv3.weight", path)[0]
    common = dict(depth=depth, dim=dim, num_classes=head[0], in_channels=conv0[1],
                  img_size=int(args.get("img_size") or 32))
    if family == "spikformer":
        return ModelConfig(family="spikformer", attention="SSA", heads=int(args.get("num_heads") or 8),
                           timesteps=int(args.get("time_step") or 4), block_size=1,
                           mlp_ratio=int(args.get("mlp_ratio") or 4), **common)
    attention = _attention(args)
    hidden = _shape(state, "block.0.mlp.fc1_conv.weight", path)[0]
    return ModelConfig(
        family="statten" if attention != "SDSA" else "sdt", attention=attention,
        heads=_shape(state, "block.0.attn.talking_heads.weight", path)[0],
        timesteps=int(args.get("time_steps") or 4),
        block_size=int(args.get("chunk_size") or 2) if attention != "SDSA" else 1,
        pooling_stat=str(args.get("pooling_stat") or "0011"), mlp_ratio=hidden // dim,
        dvs=bool(args.get("dvs_mode", False)), tet=bool(args.get("TET", False)), **common)


def build_model(cfg: ModelConfig) -> torch.nn.Module:
    return Spikformer(cfg) if cfg.family == "spikformer" else SpikeDrivenTransformer(cfg)


def _load_strict(model: torch.nn.Module, state: dict, path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(path, f"missing keys for {model.config.family}/{model.config.attention}: {missing[:6]}"
                                    f"{' ...' if len(missing) > 6 else ''} ({len(missing)} in all)")
    if unexpected:
        raise CheckpointError(path, f"unexpected keys: {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''} "
                                    f"({len(unexpected)} in all)")
    for key, ref in expected.items():
        got = state[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(path, f"shape mismatch at {key!r}: checkpoint {tuple(got.shape)}, "
                                        f"model expects {tuple(ref.shape)}")
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(path, f"non-finite values (NaN/Inf) in {key!r}")
        if got.is_floating_point() != ref.is_floating_point():
            raise CheckpointError(path, f"wrong dtype at {key!r}: {got.dtype}, expected {ref.dtype}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def load_checkpoint(path, use_ema: bool = False, **overrides) -> torch.nn.Module:
    """Load ``path`` into an eval-mode model whose ``model(x)`` equals the official validation output.

    ``overrides`` replace detected options (``timesteps``, ``block_size``, ``img_size``,
    ``pooling_stat``, ``heads``, ``dvs``, ``tet``, ``attention``, ...); the result is ``model.config``.
    """
    ckpt = read_checkpoint(path)
    state, args = extract_state_dict(ckpt, path, use_ema)
    try:
        cfg = infer_config(state, args, path).with_overrides(**overrides)
    except ConfigError as err:
        raise CheckpointError(path, str(err)) from None
    model = build_model(cfg)
    _load_strict(model, state, path)
    return model.eval()
