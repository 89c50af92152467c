"""Per-layer, per-time-step input firing rates: measured on the float model, or read from a user profile.

The paper's energy model (:mod:`statten_hw.energy.paper`) needs, for every conv or linear layer
whose input is spikes, the firing rate ``s_t`` of that input at each time step ``t``, and, for
every spiking self-attention, the rates ``S_Q, S_K, S_V`` of its query, key and value spikes.

Both come keyed by module path in one flat mapping (:class:`LayerRates`):

* ``"<conv or linear path>"`` (``block.0.attn.q_conv``, ``head``, ...): the rate of its *input*;
* ``"<attention path>.q_lif"`` / ``.k_lif`` / ``.v_lif``: the rate of the Q / K / V *output* of that
  LIF, which is what the attention products consume.

Layers whose input is not spikes (the first conv, fed the direct-coded image; Spikformer's head,
fed the time- and token-averaged stream) cost ``E_MAC`` per operation whatever their input, so they
carry no rate (:attr:`LayerGeometry.analog`).

A *rate* is the number of input events per input site per time step:

    s_t = Σ_{b, sites} |x[t, b, ...]| / (B · sites)

For binary spikes this is the fraction of sites that fire, the ``firing_num.py`` rate of the
official repositories. Where a value counts several events (STAtten's DVS ``x·P + P`` ∈ {0,1,2},
Spikformer's residual stream, which is a sum of spike tensors) each unit is one accumulate, so the
rate may exceed 1. A real-valued operand (A2OS2A's ReLU keys) counts its nonzero sites instead,
since each nonzero operand, not its magnitude, triggers one accumulate.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import torch
from torch import nn

from statten_hw.errors import InputError, UnsupportedLayer, brief
from statten_hw.evaluate import check_input_shape
from statten_hw.models.sdt import MS_SSA_Conv
from statten_hw.models.spikformer import SSA

#: Modules whose work the paper counts as synaptic operations (their weights see every input event).
SYNAPTIC = (nn.Conv2d, nn.Linear)
#: Attention modules; their ``q_lif``/``k_lif``/``v_lif`` outputs give ``S_Q, S_K, S_V``.
ATTENTION = (MS_SSA_Conv, SSA)
QKV = ("q_lif", "k_lif", "v_lif")


@dataclass(frozen=True)
class LayerGeometry:
    """Static shape facts of one conv or linear layer, found by one probe forward pass.

    ``flops`` is the paper's ``F`` for one time step of one sample:

    * conv:   ``F_conv = K_h · K_w · H_out · W_out · (C_in / groups) · C_out``
      (``groups = 1`` in every supported model, giving the paper's ``K·K·H·W·C_in·C_out``);
    * linear: ``F = tokens · C_in · C_out``, with ``tokens`` the rows it maps per step and sample
      (N for Spikformer's token-wise linears, 1 for the SDT head).

    ``steps`` is how many times the layer runs per sample: T for every time-distributed layer
    (inputs ``[T·B, ...]`` or ``[T, B, ...]``, T-major), 1 for a layer fed a time-averaged tensor.
    ``analog`` marks a layer whose input is not spikes: the first layer (direct-coded image or
    event counts) and any layer fed a time-collapsed average.
    """

    name: str
    kind: str
    flops: int
    steps: int
    analog: bool
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


@dataclass(frozen=True)
class AttentionGeometry:
    """One spiking self-attention: its mode and the paper's ``T``, ``N`` (tokens), ``D`` (embedding dim)."""

    name: str
    mode: str
    timesteps: int
    tokens: int
    dim: int
    block_size: int


@dataclass(frozen=True)
class LayerRates:
    """Per-time-step rates keyed as described in the module docstring (read-only).

    ``rates[key][t]`` is ``s_t`` (events per site per step, see the module docstring).
    ``source`` says where they came from: ``"measured"`` (``statten-hw energy`` adds the data and the
    sample count) or the profile's path.
    """

    timesteps: int
    rates: Mapping[str, tuple[float, ...]]
    source: str = "measured"

    def __post_init__(self):
        frozen = {str(k): tuple(float(r) for r in v) for k, v in dict(self.rates).items()}
        object.__setattr__(self, "rates", MappingProxyType(frozen))

    def mean(self, key: str) -> float:
        """Rate averaged over the steps: ``(1/steps) · Σ_t s_t``."""
        values = self.rates[key]
        return sum(values) / len(values)

    def to_profile(self) -> dict[str, list[float]]:
        """The JSON-ready form that :func:`load_rate_profile` reads back."""
        return {k: list(v) for k, v in self.rates.items()}


@dataclass
class _Trace:
    """What one hooked forward saw: per module, its input/output shapes and per-step input rates."""

    timesteps: int
    batch: int
    real_valued: tuple[str, ...] = ()  # the model's `real_valued_inputs`: layers fed a mean, not spikes
    order: list[str] = field(default_factory=list)
    layers: dict[str, dict] = field(default_factory=dict)
    lif_out: dict[str, list[float]] = field(default_factory=dict)


def _event_rate(x: torch.Tensor) -> float:
    """Events per site of ``x`` (see module docstring): mean |x| if integer-valued, else nonzero fraction."""
    x = x.detach().double()
    if x.numel() == 0:
        return 0.0
    if torch.equal(x, x.round()):
        return float(x.abs().mean())
    return float((x != 0).double().mean())


def _per_step(x: torch.Tensor, T: int, B: int) -> tuple[int, list[float]]:
    """Split a layer input into its time steps; returns ``(steps, [s_t])``.

    Inputs are T-major, either flattened ``[T·B, ...]`` or ``[T, B, ...]``. Anything else whose
    leading dimension is the batch (Spikformer's head, fed ``mean_T``) runs once per sample.
    """
    if x.shape[0] == T * B or (x.dim() >= 2 and tuple(x.shape[:2]) == (T, B)):
        steps = x.reshape(T, -1)
        return T, [_event_rate(s) for s in steps]
    if x.shape[0] == B:
        return 1, [_event_rate(x)]
    raise ValueError(f"input of shape {tuple(x.shape)} is neither time-major nor batch-major")


def _trace(model: nn.Module, x: torch.Tensor) -> _Trace:
    """Run ``model(x)`` once with forward hooks on every conv/linear and every attention's Q/K/V LIF."""
    cfg = model.config
    batch = x.shape[0]
    trace = _Trace(cfg.timesteps, batch, tuple(getattr(model, "real_valued_inputs", ())))
    qkv_paths = {
        f"{name}.{q}" for name, m in model.named_modules() if isinstance(m, ATTENTION) for q in QKV
    }

    def on_synaptic(mod, inp, out, name):
        if name in trace.layers:
            raise UnsupportedLayer(name, type(mod).__name__, "runs more than once per forward; the paper counts one call")
        try:
            steps, rates = _per_step(inp[0], trace.timesteps, batch)
        except ValueError as err:
            raise UnsupportedLayer(name, type(mod).__name__, str(err)) from None
        trace.order.append(name)
        trace.layers[name] = {
            "module": mod, "steps": steps, "rates": rates,
            "in_shape": tuple(inp[0].shape), "out_shape": tuple(out.shape),
        }

    def on_qkv(mod, inp, out, name):
        trace.lif_out[name] = [_event_rate(s) for s in out.reshape(trace.timesteps, -1)]

    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, SYNAPTIC):
            hooks.append(module.register_forward_hook(lambda m, i, o, n=name: on_synaptic(m, i, o, n)))
        elif name in qkv_paths:
            hooks.append(module.register_forward_hook(lambda m, i, o, n=name: on_qkv(m, i, o, n)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return trace


def _check_input(model: nn.Module, x: torch.Tensor) -> None:
    """A batch of the model's static frames or of its T-frame sequences: `evaluate.check_input_shape`."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"input batch must be a tensor, got {type(x).__name__}")
    check_input_shape(model, x)


def _flops(mod: nn.Module, in_shape, out_shape, steps: int, batch: int) -> tuple[str, int]:
    if isinstance(mod, nn.Conv2d):
        kh, kw = mod.kernel_size
        h_out, w_out = out_shape[-2:]
        return "conv", kh * kw * h_out * w_out * (mod.in_channels // mod.groups) * mod.out_channels
    tokens = math.prod(out_shape[:-1]) // (steps * batch)
    return "linear", tokens * mod.in_features * mod.out_features


def _geometry_from(trace: _Trace) -> list[LayerGeometry]:
    out = []
    for i, name in enumerate(trace.order):
        rec = trace.layers[name]
        kind, flops = _flops(rec["module"], rec["in_shape"], rec["out_shape"], rec["steps"], trace.batch)
        # The first layer sees the encoded input, a time-collapsed layer or one the model names sees an
        # average: none of them is spikes.
        analog = i == 0 or name in trace.real_valued or (rec["steps"] == 1 and trace.timesteps > 1)
        out.append(LayerGeometry(name, kind, flops, rec["steps"], analog, rec["in_shape"], rec["out_shape"]))
    return out


def _probe(model: nn.Module) -> torch.Tensor:
    return torch.zeros((1, *model.config.input_shape))


def layer_geometry(model: nn.Module) -> list[LayerGeometry]:
    """Every conv/linear that runs, in execution order, from one probe forward on a zero input."""
    return _geometry_from(_trace(model, _probe(model)))


def attention_geometry(model: nn.Module) -> list[AttentionGeometry]:
    """Every spiking self-attention with the paper's ``T``, ``N = H·W`` tokens and ``D = dim``."""
    cfg = model.config
    tokens = cfg.token_grid ** 2
    return [
        AttentionGeometry(name, cfg.attention, cfg.timesteps, tokens, cfg.dim, cfg.block_size)
        for name, m in model.named_modules()
        if isinstance(m, ATTENTION)
    ]


def rate_keys(model: nn.Module) -> dict[str, int]:
    """Every key a rate profile for ``model`` must give, with the number of steps it must list."""
    keys = {g.name: g.steps for g in layer_geometry(model) if not g.analog}
    for att in attention_geometry(model):
        keys.update({f"{att.name}.{q}": att.timesteps for q in QKV})
    return keys


def measure_rates(model: nn.Module, x: torch.Tensor) -> LayerRates:
    """Measure every rate the paper's energy model needs, with forward hooks on the float model.

    ``x`` is one batch ``[B, *model.config.input_shape]``; rates are averaged over the batch, per
    time step. Conv/linear inputs are read at the layer (``[T·B, ...]``, T-major, split by T);
    ``S_Q, S_K, S_V`` at the outputs of the attention's ``q_lif``, ``k_lif``, ``v_lif`` (before
    the DVS max-pool, i.e. the neurons' own firing rates).
    """
    _check_input(model, x)
    trace = _trace(model, x)
    geometry = _geometry_from(trace)
    rates = {g.name: tuple(trace.layers[g.name]["rates"]) for g in geometry if not g.analog}
    rates.update({k: tuple(v) for k, v in trace.lif_out.items()})
    return LayerRates(model.config.timesteps, rates, "measured")


def _finite_number(v) -> bool:
    """A JSON number that is finite: not a bool, NaN or Infinity. Integers stay ints, as ``float()``
    of a 400-digit one would overflow."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return not isinstance(v, float) or math.isfinite(v)


def max_input_rate(model: nn.Module) -> float:
    """The largest input rate a layer of ``model`` can have: Spikformer's residual stream sums the input
    spikes and two spike tensors per block (attention, MLP), DVS's ``x·P + P`` is at most 2, every other
    input is spikes."""
    return float(max(2, 1 + 2 * model.config.depth))


def load_rate_profile(path, model: nn.Module) -> LayerRates:
    """Read a user rate profile ``{key: [s_0, ..., s_{steps-1}]}`` (JSON) for ``model``.

    Keys are those of :func:`rate_keys` (conv/linear input rates and ``<attention>.q_lif`` etc.);
    every key must be present, each list must have one number per step the layer runs: a firing rate
    (``q_lif`` ...) in [0, 1], an input rate in [0, `max_input_rate`] (module docstring: a value that
    sums spike tensors counts each). Any problem raises :class:`InputError` with a one-line message
    naming the file and the key.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise InputError(f"{path}: cannot read rate profile ({err.strerror or err})") from None
    except (ValueError, RecursionError) as err:  # bad JSON or text, an over-long integer, deep nesting
        raise InputError(f"{path}: not valid JSON ({str(err)[:160]})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a rate profile is a JSON object {{layer name: [rate per time step]}}, got {type(data).__name__}")
    if data.get("tool") == "statten-hw" and isinstance(data.get("command"), str):
        raise InputError(f"{path}: a statten-hw {data['command']!r:.40} report, not a rate profile; the simulated "
                         "network's own counts at the paper's costs: statten-hw simulate --target paper45nm")
    expected = rate_keys(model)
    unknown = sorted(set(data) - set(expected))
    if unknown:
        raise InputError(f"{path}: unknown layer {unknown[0]!r:.80} (the model's rate keys are {sorted(expected)})")
    rates = {}
    for key, steps in expected.items():
        if key not in data:
            raise InputError(f"{path}: layer {key!r} has no rates (every one of {len(expected)} keys is required)")
        values = data[key]
        if not isinstance(values, list):
            raise InputError(f"{path}: layer {key!r}: expected a list of {steps} rates, got {type(values).__name__}")
        if len(values) != steps:
            raise InputError(f"{path}: layer {key!r}: expected {steps} rates (one per time step), got {len(values)}")
        top = 1.0 if key.rpartition(".")[2] in QKV else max_input_rate(model)
        for t, v in enumerate(values):
            if not _finite_number(v):
                raise InputError(f"{path}: layer {key!r}: rate at step {t} is not a number: {brief(v)}")
            if not 0.0 <= v <= top:
                raise InputError(f"{path}: layer {key!r}: rate at step {t} is {v!r:.40}, outside [0, {top:g}]")
        rates[key] = tuple(float(v) for v in values)
    return LayerRates(model.config.timesteps, rates, str(path))
