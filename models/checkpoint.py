"""Load checkpoints written by the official training code (or by statten-hw) safely and strictly.

Accepted layouts: timm ``CheckpointSaver`` dicts (``state_dict``, optional ``state_dict_ema``,
``args`` as an ``argparse.Namespace``), MAE style ``{'model': ...}``, and bare state_dicts, with or
without a DDP ``module.`` prefix. Files are read with ``torch.load(weights_only=True)`` and only
``argparse.Namespace`` is allowed through the unpickler: any other pickled object is refused before
anything from the file runs.

Nothing in a file is trusted before it is checked: the training options are type-checked, the
shapes are compared with a model built on the ``meta`` device (no memory) before the real one is
built, and T and the image size are bounded, so a hostile file gets a :class:`CheckpointError`
instead of code execution, a memory blow-up or a traceback.
"""
from __future__ import annotations

import argparse
import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from statten_hw.errors import CheckpointError, ConfigError, brief

from .config import ModelConfig
from .sdt import SpikeDrivenTransformer
from .spikformer import Spikformer

SAFE_GLOBALS = [argparse.Namespace]
#: Present in official state_dicts but unused by the forward pass.
IGNORED_SUFFIXES = ("num_batches_tracked",)
#: Largest T and image side accepted from a checkpoint's ``args`` or an override. Every command
#: that runs the model holds T image-sized activation maps; official models use T <= 16 and
#: 224 px, so a larger value is a corrupt or hostile file, refused before memory runs out.
MAX_TIMESTEPS = 1024
MAX_IMG_SIZE = 1024
#: ... and their product: T input frames of img² pixels (the first layers hold dim/8 channels of
#: each), 16 x 512² at most. Official models: 4 x 224², 16 x 128² (DVS).
MAX_PIXEL_STEPS = 16 * 512 * 512
#: Most blocks accepted. Official models have at most 12; the model is built (on ``meta``) before its
#: keys are compared, which costs time in the depth, so a file of many fake block keys is refused first.
MAX_DEPTH = 128


def read_checkpoint(path) -> dict:
    """``torch.load`` with the allow-list; every failure becomes a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "a folder, not a checkpoint file" if path.is_dir() else "no such file")
    try:
        # torch warns about what a damaged pickle holds; the checks below say it in one line instead
        with torch.serialization.safe_globals(SAFE_GLOBALS), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _unpickler_detail(str(err))
        if "global" not in detail.lower():
            raise CheckpointError(path, f"not a readable torch checkpoint (corrupt pickle: {detail[:120]})") from None
        # torch's next sentence advises allow-listing the object: not advice for a file from elsewhere
        raise CheckpointError(path, "refused: the file holds a pickled object outside the allow-list "
                                    f"(argparse.Namespace only): {detail.split('. ')[0][:200]}") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError, AttributeError, AssertionError,
            ImportError, TypeError, IndexError, KeyError, MemoryError, OverflowError) as err:
        first = str(err).splitlines()[0].split(". ")[0][:160] if str(err).strip() else "truncated or corrupt"
        raise CheckpointError(path, f"not a readable torch checkpoint ({type(err).__name__}: {first})") from None
    if isinstance(obj, torch.nn.Module):
        raise CheckpointError(path, "holds a whole pickled module; save its state_dict instead")
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"top level is a {type(obj).__name__}, expected a dict")
    return obj


def _unpickler_detail(message: str) -> str:
    """The specific part of torch's weights-only refusal; its first lines are generic advice."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else "")
    return lines[0] if lines else "empty message"


def extract_state_dict(ckpt: dict, path, use_ema: bool = False) -> tuple[dict, dict]:
    """Return ``(state_dict, args)``: the weights (prefix-stripped) and the training options."""
    args = _training_args(ckpt.get("args"), path)
    if use_ema and not isinstance(ckpt.get("state_dict_ema"), dict):
        raise CheckpointError(path, "--ema asked for but the checkpoint has no 'state_dict_ema' dict")
    for key in (["state_dict_ema"] if use_ema else []) + ["state_dict", "model"]:
        if isinstance(ckpt.get(key), dict):
            state = ckpt[key]
            break
    else:
        state = ckpt
    not_text = [k for k in state if not isinstance(k, str)]
    if not_text:
        raise CheckpointError(path, f"state_dict keys must be strings, got {brief(not_text[0])}")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(path, f"no tensors found; top-level keys seen: {sorted(map(str, ckpt))[:12]}")
    if len(tensors) != len(state):
        bad = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))[:5]
        raise CheckpointError(path, f"state_dict entries that are not tensors: {bad}")
    sparse = sorted(k for k, v in tensors.items() if v.layout != torch.strided or v.is_nested)
    if sparse:
        raise CheckpointError(path, f"tensor {sparse[0]!r} is {tensors[sparse[0]].layout}, expected a dense tensor")
    elsewhere = sorted(k for k, v in tensors.items() if v.device.type != "cpu")  # meta: shapes without values
    if elsewhere:
        raise CheckpointError(path, f"tensor {elsewhere[0]!r} is on device {tensors[elsewhere[0]].device.type!r}, "
                                    "expected values on the CPU")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors, args


def _training_args(args, path) -> dict:
    """The ``args`` entry as a dict: absent is empty, anything but a Namespace or dict is refused."""
    if args is None:
        return {}
    if isinstance(args, argparse.Namespace):
        return vars(args)
    if isinstance(args, dict):
        return args
    raise CheckpointError(path, f"'args' is a {type(args).__name__}, expected argparse.Namespace or dict")


def _arg_int(args: dict, key: str, default: int, path) -> int:
    value = args.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(path, f"args.{key} must be an integer, got {brief(value)}")
    return value


def _arg_flag(args: dict, key: str, path) -> bool:
    """argparse flags: True/False (or 1/0); absent or None is off. ``bool('no')`` would be on."""
    value = args.get(key)
    if value is None:
        return False
    if not isinstance(value, int) or value not in (0, 1):
        raise CheckpointError(path, f"args.{key} must be true or false, got {brief(value)}")
    return bool(value)


def _arg_str(args: dict, key: str, default: str, path) -> str:
    value = args.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise CheckpointError(path, f"args.{key} must be a string, got {brief(value)}")
    return value


def _shape(state: dict, key: str, path) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(path, f"missing key {key!r}")
    return tuple(state[key].shape)


def _size(state: dict, key: str, axis: int, path) -> int:
    """Length of ``state[key]`` along ``axis``, which must exist and be non-empty."""
    shape = _shape(state, key, path)
    if len(shape) <= axis:
        raise CheckpointError(path, f"{key!r} has shape {shape}, expected at least {axis + 1} dimensions")
    if shape[axis] < 1:
        raise CheckpointError(path, f"{key!r} has shape {shape}: dimension {axis} is empty")
    return shape[axis]


def _depth(state: dict, path) -> int:
    """Number of blocks; their indices must run 0..depth-1, so depth never exceeds the key count."""
    indices = set()
    for key in state:
        if key.startswith("block."):
            index = key.split(".")[1]
            if not (index.isascii() and index.isdigit()):
                raise CheckpointError(path, f"key {key!r}: block index {index!r} is not a number")
            indices.add(int(index))
    if len(indices) > MAX_DEPTH:
        raise CheckpointError(path, f"{len(indices)} blocks exceed the limit of {MAX_DEPTH}")
    if indices != set(range(len(indices))):
        gap = min(set(range(len(indices) + 1)) - indices)
        raise CheckpointError(path, f"block indices must run 0..{len(indices) - 1}: block {gap} is missing "
                                    f"(largest index {max(indices)})")
    return len(indices)


#: Official layouts we recognise but do not build, so their files are named instead of failing later on
#: a "missing key" (the key that tells each apart -> what it is and why it is refused).
UNSUPPORTED_LAYOUTS: dict[str, str] = {
    "downsample1_1.encode_conv.weight": "Spike-driven Transformer v2 (Meta-SpikeFormer): its conv stages and "
                                        "downsampling layers are not supported",
    "stage3.0.attn.q_conv.weight": "QKFormer (ImageNet layout): hierarchical stages are not supported",
    "stage3.0.ssa.q_conv.weight": "QKFormer (CIFAR layout): hierarchical stages are not supported",
}


def detect_family(state: dict, path) -> str:
    for key, what in UNSUPPORTED_LAYOUTS.items():
        if key in state:
            raise CheckpointError(path, f"{what} (key {key!r})")
    q_conv = state.get("block.0.attn.q_conv.weight")
    if isinstance(q_conv, torch.Tensor) and q_conv.dim() == 3:
        raise CheckpointError(path, "Spikformer ImageNet layout (imagenet/model.py: Conv1d 'block.0.attn.q_conv."
                                    "weight' of shape " f"{tuple(q_conv.shape)}) is not supported; Spikformer's "
                                    "CIFAR layout (q_linear) is")
    if "block.0.attn.q_linear.weight" in state:
        return "spikformer"
    if "block.0.attn.q_conv.weight" in state and "patch_embed.proj_conv3.weight" in state:
        return "sdt"
    seen = sorted(state)[:8]
    raise CheckpointError(path, f"unknown architecture: expected SDT/STAtten ('block.0.attn.q_conv.weight') or "
                                f"Spikformer ('block.0.attn.q_linear.weight') keys; keys seen: {seen} ... ({len(state)} keys)")


def _attention(args: dict, path) -> str:
    """STAtten vs SDT v1 by provenance: only the STAtten repo writes ``chunk_size``/``attention_mode``,
    and its model always runs STAtten (``attention_mode`` never reaches ``create_model``).
    statten-hw's own checkpoints name their mode in ``statten_hw_attention``."""
    if "statten_hw_attention" in args:
        return _arg_str(args, "statten_hw_attention", "STAtten", path)
    if "chunk_size" in args or "attention_mode" in args:
        return "STAtten"
    return "SDSA"


def infer_config(state: dict, args: dict, path) -> ModelConfig:
    family = detect_family(state, path)
    dim = _size(state, "patch_embed.proj_conv3.weight", 0, path)
    common = dict(depth=_depth(state, path), dim=dim, num_classes=_size(state, "head.weight", 0, path),
                  in_channels=_size(state, "patch_embed.proj_conv.weight", 1, path),
                  img_size=_arg_int(args, "img_size", 32, path))
    if family == "spikformer":
        hidden = _size(state, "block.0.mlp.fc1_linear.weight", 0, path)
        return ModelConfig(family="spikformer", attention="SSA", heads=_arg_int(args, "num_heads", 8, path),
                           timesteps=_arg_int(args, "time_step", 4, path), block_size=1,
                           mlp_ratio=hidden // dim, **common)
    attention = _attention(args, path)
    hidden = _size(state, "block.0.mlp.fc1_conv.weight", 0, path)
    return ModelConfig(
        family="statten" if attention != "SDSA" else "sdt", attention=attention,
        heads=_size(state, "block.0.attn.talking_heads.weight", 0, path),
        timesteps=_arg_int(args, "time_steps", 4, path),
        block_size=_arg_int(args, "chunk_size", 2, path) if attention != "SDSA" else 1,
        pooling_stat=_arg_str(args, "pooling_stat", "0011", path), mlp_ratio=hidden // dim,
        dvs=_arg_flag(args, "dvs_mode", path), tet=_arg_flag(args, "TET", path), **common)


def _check_bounds(cfg: ModelConfig, path) -> None:
    if cfg.mlp_ratio < 1:  # from args, or a hidden width below dim: the MLP would have no channels
        raise CheckpointError(path, f"MLP ratio {cfg.mlp_ratio} (hidden width / dim) must be >= 1")
    if cfg.timesteps > MAX_TIMESTEPS:
        raise CheckpointError(path, f"T = {cfg.timesteps} time steps exceeds the limit of {MAX_TIMESTEPS}")
    if cfg.img_size > MAX_IMG_SIZE:
        raise CheckpointError(path, f"image size {cfg.img_size} px exceeds the limit of {MAX_IMG_SIZE}")
    if cfg.timesteps * cfg.img_size ** 2 > MAX_PIXEL_STEPS:
        raise CheckpointError(path, f"T x image size² = {cfg.timesteps} x {cfg.img_size}² exceeds the limit of "
                                    f"{MAX_PIXEL_STEPS:,} pixel-steps (16 x 512²)")


def build_model(cfg: ModelConfig) -> torch.nn.Module:
    return Spikformer(cfg) if cfg.family == "spikformer" else SpikeDrivenTransformer(cfg)


#: Floating dtypes a checkpoint's tensors may have: what training writes (float8 types have no
#: finiteness test in torch, and no model is trained in them).
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: Dtypes an integer buffer (BN's num_batches_tracked) may have: those that convert to int64 exactly
#: (a complex one loaded with a warning and its imaginary part dropped; a qint8 one was a traceback).
COUNTER_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_state(model: torch.nn.Module, state: dict, path) -> None:
    """Keys, shapes, dtypes and finiteness of ``state`` against ``model`` (which may live on ``meta``)."""
    expected = model.state_dict()
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith(IGNORED_SUFFIXES))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(path, f"missing keys for {model.config.family}/{model.config.attention}: {missing[:6]}"
                                    f"{' ...' if len(missing) > 6 else ''} ({len(missing)} in all)")
    if unexpected:
        raise CheckpointError(path, f"unexpected keys: {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''} "
                                    f"({len(unexpected)} in all)")
    for key, ref in expected.items():
        got = state.get(key)
        if got is None:  # an ignored counter the file left out
            continue
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(path, f"shape mismatch at {key!r}: checkpoint {tuple(got.shape)}, "
                                        f"model expects {tuple(ref.shape)}")
        if got.is_floating_point() and got.dtype not in FLOAT_DTYPES:
            raise CheckpointError(path, f"unsupported dtype at {key!r}: {got.dtype} (float16, bfloat16, float32 "
                                        "or float64)")
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(path, f"non-finite values (NaN/Inf) in {key!r}")
        if got.is_floating_point() != ref.is_floating_point() or (
                not ref.is_floating_point() and got.dtype not in COUNTER_DTYPES):
            raise CheckpointError(path, f"wrong dtype at {key!r}: {got.dtype}, expected {ref.dtype}")
        if key.endswith("running_var") and (got < 0).any():
            raise CheckpointError(path, f"negative running variance in {key!r}")


def _check_fits_in_memory(model: torch.nn.Module, path) -> None:
    """Refuse a model (on ``meta``) whose tensors, twice over (the model and the checkpoint's tensors
    converted into it), pass the memory a new allocation can get: a 23 KB file of stride-0 tensors
    declaring a 16,384-wide model was killed by the OS at 24 GB instead (review)."""
    from statten_hw.resources import default_memory_limit, format_size

    size = 2 * sum(t.numel() * t.element_size() for t in model.state_dict().values())
    limit, source = default_memory_limit()
    if size > limit:
        raise CheckpointError(path, f"the model it declares needs about {format_size(size)} of memory to load, "
                                    f"more than {source}")


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
    if cfg.family == "spikformer" and args.get("num_heads") is None and overrides.get("heads") is None:
        # SDT's talking_heads weight shows its head count; nothing in a Spikformer's weights does
        raise CheckpointError(path, "a Spikformer's head count is not in its weights and the file has no "
                                    "args.num_heads: load it with load_checkpoint(path, heads=N)")
    _check_bounds(cfg, path)
    with torch.device("meta"):  # shapes only: a file declaring huge layers is refused before allocation
        shapes = build_model(cfg)
        _check_state(shapes, state, path)
    _check_fits_in_memory(shapes, path)
    model = build_model(cfg)
    own = model.state_dict()
    state = {k: v for k, v in own.items() if k.endswith(IGNORED_SUFFIXES)} | state  # counters left out
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    return model.eval()
