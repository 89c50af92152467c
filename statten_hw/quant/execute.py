"""Integer reference executor: the golden spikes and logits every backend must reproduce.

``run_integer(qgraph, x)`` runs the :class:`~statten_hw.quant.quantize.QuantizedGraph` with int64
torch ops (shifts, comparisons, max, integer sums; conv/linear/attention products through float32 or
float64 kernels, exact because every partial sum is checked to stay in the float type's integer
range); the one float step is the sensor boundary of ``QInput`` (``round(x/scale)``), skipped when ``x`` is already an integer
tensor. Tensors are time-major ``[T, batch, *shape]`` as in ``ir.execute_float``. An op with no
rule raises :class:`UnsupportedLayer` — never skipped.

``run_integer(..., trace_lifs=True)`` also hands back what the simulator's counts need of every LIF's
membrane (`LifTrace`), reduced from its membrane history when it finishes, so nothing replays the
membranes afterwards.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from statten_hw.errors import GraphError, InputError, UnsupportedLayer
from statten_hw.ir.graph import inputs_by_port, topological_order
from statten_hw.models.attention import BLOCKWISE_PRODUCTS

from . import quantize as Q
from .fixed_point import DECAY_BITS, limit, requant, saturate

I64 = torch.int64
NEG = -(1 << 62)  # max-pool padding: below every saturated value


@dataclass(frozen=True)
class LifTrace:
    """What the counts need of one LIF's membrane ``v`` (its state after the reset), reduced when the
    LIF finishes instead of kept: ``int64 [T, ...]`` membranes would be as large as the spikes again.

    ``state_before`` bool ``[T, ...]``: ``v != 0`` before each step (False at step 0), SANA-FE's
    "state can change" (`simulator.event.counts.count_active_updates`); ``membrane_updates``:
    NeuroBench's count, every element at step 0 plus each element whose ``v`` differs from the step
    before; ``outputs``/``spikes``: the output's elements and its non-zero ones (what NeuroBench's
    activation sparsity needs of SDSA's K⊙V neurons, whose spikes are no node's output)."""
    state_before: torch.Tensor
    membrane_updates: int
    outputs: int
    spikes: int


@dataclass(frozen=True)
class IntegerRun:
    """``logits_int`` (int64) stand for ``logits_int · logits_scale``; ``values`` holds every
    node's int64 output (spikes for LIF nodes); ``overflows[node]`` counts saturated elements;
    ``clipped_inputs`` the input values that fell outside the input quantizer's levels (data unlike
    the calibration data, clipped at the sensor boundary); ``lif_traces``
    (``run_integer(..., trace_lifs=True)``, else None): a `LifTrace` per LIF node,
    and per SDSA attention node ``name`` one for its K⊙V neurons under ``"name.kv_lif"``."""
    logits_int: torch.Tensor
    logits_scale: float
    values: dict
    overflows: dict
    lif_traces: dict | None = None
    clipped_inputs: int = 0

    @property
    def logits(self) -> torch.Tensor:
        """Real-valued logits (for reporting; the integer ones decide)."""
        return self.logits_int.to(torch.float64) * self.logits_scale

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits_int.argmax(-1)

    def spikes(self, qgraph: "Q.QuantizedGraph") -> dict[str, torch.Tensor]:
        return {n: self.values[n] for n in qgraph.lif_nodes}


class _Ctx:
    """Per run: the state width, strict mode, overflow counts, clipped inputs and (when not None) the
    LIF traces."""

    def __init__(self, state_bits: int, strict: bool, traces: dict | None = None):
        self.bits, self.strict, self.overflows, self.traces = state_bits, strict, {}, traces
        self.clipped_inputs = 0

    def sat(self, name: str, v: torch.Tensor, quantity: str) -> torch.Tensor:
        """`saturate` and count, after a one-pass range check: values almost always fit, and then
        the four full passes of clip-and-mask are skipped."""
        if v.numel() == 0 or self.fits(name, _peak(v)):
            return v
        v, mask = saturate(v, self.bits, self.strict, layer=name, quantity=quantity)
        self.overflows[name] += int(mask.sum())
        return v

    def fits(self, name: str, bound: float) -> bool:
        """Whether values up to ``bound`` in magnitude fit the state (then no check is needed); registers
        ``name`` among the checked nodes either way."""
        self.overflows.setdefault(name, 0)
        return bound <= limit(self.bits)

    def sat_beyond(self, name: str, v: torch.Tensor, bound: float, quantity: str) -> torch.Tensor:
        """`sat`, skipped when ``bound`` (a proven ``max |v|``) already fits: no pass over ``v`` at all."""
        return v if self.fits(name, bound) else self.sat(name, v, quantity)


def _peak(z: torch.Tensor) -> float:
    """``max |z|`` in one pass over ``z`` (``aminmax``), without the temporary ``z.abs()``."""
    low, high = torch.aminmax(z)
    return max(-float(low), float(high))


def _per_step(fn, x):
    T, B = x.shape[:2]
    y = fn(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])


def _unclipped_levels(op: Q.QInput, x: torch.Tensor) -> torch.Tensor:
    """A floating-point ``x`` as ``round(x / scale)`` (in float64); an integer ``x`` is levels already.
    NaN has no level (it became -2^63, and a sum far past the state); ±inf clips to the extreme levels."""
    if not x.is_floating_point():
        return x
    if torch.isnan(x).any():
        raise InputError(f"input: {int(torch.isnan(x).sum())} NaN value(s); a sensor value must be a number")
    return torch.round(x.to(torch.float64) / op.scale)


def input_levels(op: Q.QInput, x: torch.Tensor) -> torch.Tensor:
    """The sensor boundary, the one float step of an integer run: a floating-point ``x`` becomes
    ``round(x / scale)`` (in float64), an integer ``x`` is taken as levels, and both are clipped into
    ``op.levels``. int64, in the model's input layout."""
    return _unclipped_levels(op, x).clamp(*op.levels).to(I64)


def _input(op: Q.QInput, ins, x, ctx, name):
    raw = _unclipped_levels(op, x)
    low, high = op.levels
    if ctx is not None:  # None: a backend taking the input layout only (Lava's input process)
        ctx.clipped_inputs += int(((raw < low) | (raw > high)).sum())
    x = raw.clamp(low, high).to(I64)
    if op.encoding == "direct":
        return x.unsqueeze(0).repeat(op.timesteps, *([1] * x.dim()))
    return x.transpose(0, 1).contiguous()


#: Integers a float sum holds exactly, per float type: the kernels below pick the cheapest exact one.
EXACT_LIMITS = ((torch.float32, 1 << 24), (torch.float64, 1 << 53))


def exact_dtype(bound: float, device, name: str = "?") -> torch.dtype:
    """The narrowest float type whose sums of non-negative or signed integers up to ``bound`` in
    magnitude are exact (float32 holds every spike-driven sum of 8-bit weights); a GraphError naming
    ``name`` if even float64 could round. On CUDA always float64: cuDNN may pick Winograd or FFT
    convolutions for float32, whose transforms round, and cuBLAS may split sums differently. The
    integer kernels, the event counts and NeuroBench's operation counts all choose by this rule."""
    for dtype, limit in EXACT_LIMITS:
        if bound < limit and (dtype == torch.float64 or torch.device(device).type == "cpu"):
            return dtype
    raise GraphError(f"node {name!r}: integer sums may reach {bound:.3g} >= 2^53, beyond exact float64 kernels")


def _conv_int(z: torch.Tensor, op: Q.QConv2d, peak: float, name: str = "?") -> torch.Tensor:
    """Integer conv2d of ``z`` (``max |z| = peak``) through a float ``conv2d`` of the mantissas: exact
    while every partial sum stays below the float type's integer range (checked from ``peak`` and the
    mantissas' absolute row sums; TF32 off by `run_integer`), and fast on CPU (oneDNN) and CUDA alike,
    where torch has no int64 convolution. The weight exponent and the bias are applied in int64."""
    dtype = exact_dtype(peak * op.mantissa_bound, z.device, name)
    out = F.conv2d(z.to(dtype), _device_mantissa(op, z.device, dtype), stride=op.stride, padding=op.padding,
                   groups=op.groups)
    return _finish(out, op, channel_dims=2, bound=_accumulator_bound(op, peak))


#: Magnitude the weight exponent's shift may reach in int64 with room for the bias.
_SHIFT_ROOM = 1 << 62


def _finish(sums: torch.Tensor, op, channel_dims: int, bound: float) -> torch.Tensor:
    """``(round(sums) << weight_exp) + bias`` in int64; the bias has ``channel_dims`` trailing axes to
    broadcast over (2 for a conv's ``[C, H, W]``, 0 for a linear's last axis). Where ``bound`` (the
    proven ``max |result|``) passes int64, sums are first clipped to ``±2^62 >> weight_exp``: those
    results saturate at the state width anyway, and the shift then cannot wrap."""
    out = sums.round_().to(I64)
    if bound >= _SHIFT_ROOM:
        edge = _SHIFT_ROOM >> op.weight_exp
        out.clamp_(-edge, edge)
    bias = _device_bias(op, out.device).reshape(-1, *([1] * channel_dims))
    return torch.add(bias, out, alpha=1 << op.weight_exp)  # one pass: bias + out · 2**exp


def _accumulator_bound(op, peak: float) -> float:
    """``max |W·z + b|`` over inputs up to ``peak`` in magnitude: what the saturation check can prove."""
    return peak * op.mantissa_bound * (1 << op.weight_exp) + op.bias_bound


#: A synaptic op's mantissas and bias as tensors, per (device, dtype): made once, not on every run.
_DEVICE_TENSORS: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def _on_device(op, what: str, array: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    cache = _DEVICE_TENSORS.setdefault(op, {})
    key = (what, str(device), dtype)
    if key not in cache:
        cache[key] = torch.tensor(array, dtype=dtype, device=device)
    return cache[key]


def _device_mantissa(op, device, dtype) -> torch.Tensor:
    """The op's integer mantissas as a ``dtype`` tensor on ``device``."""
    return _on_device(op, "mantissa", op.mantissa, device, dtype)


def _device_bias(op, device) -> torch.Tensor:
    return _on_device(op, "bias", op.bias, device, I64)


class _no_tf32:
    """cuDNN may run float32 convolutions in TF32 (10-bit mantissa): switched off around exact kernels."""

    def __enter__(self):
        self.saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


def _conv(op, ins, x, ctx, name):
    z = ins["x"]
    peak = _peak(z)
    out = _per_step(lambda z: _conv_int(z, op, peak, name), z)
    return ctx.sat_beyond(name, out, _accumulator_bound(op, peak), "accumulator")


def _linear(op: Q.QLinear, ins, x, ctx, name):
    x = ins["x"]
    peak = _peak(x)
    dtype = exact_dtype(peak * op.mantissa_bound, x.device, name)
    sums = torch.matmul(x.to(dtype), _device_mantissa(op, x.device, dtype).T)
    bound = _accumulator_bound(op, peak)
    return ctx.sat_beyond(name, _finish(sums, op, channel_dims=0, bound=bound), bound, "accumulator")


def lif_integer(X: torch.Tensor, op: Q.QLIF, ctx: _Ctx, name: str, key: str | None = None) -> torch.Tensor:
    """Lava's bit-accurate LIF over ``[T, ...]`` int64 currents (du = 4096: no current memory).

    Memory-bound on large layers and call-bound on small ones, so each step is a few in-place
    kernels: the leak and the input written into the step's row of the membrane history, the
    threshold test into a preallocated mask and the reset. The membrane never exceeds the sum of the
    input magnitudes (the leak and the reset only shrink it), so one range check of the whole input
    usually proves that no step can saturate. With ``ctx.traces`` set, the `LifTrace` (two passes
    over the history) goes there under ``key`` (default ``name``)."""
    checked = not ctx.fits(name, X.shape[0] * _peak(X)) if X.numel() else False
    fired = _Firing(X, op)
    history = torch.zeros((X.shape[0] + 1, *X.shape[1:]), dtype=X.dtype, device=X.device)  # [0]: the initial 0
    states = history.unbind(0)
    for t, x_t in enumerate(X.unbind(0)):
        h = leak_into(states[t + 1], states[t], op.dv).add_(x_t)
        if checked:
            h = states[t + 1].copy_(ctx.sat(name, h, "membrane"))
        fired.fire(h, t)
    spikes = fired.spikes()
    if ctx.traces is not None:
        ctx.traces[key or name] = _trace(history, spikes)
    return spikes


class _Firing:
    """The threshold test and hard reset, one step at a time, into boolean masks ``[T, ...]`` turned
    into int64 spikes once at the end (binary: ``h >= θ``; ternary also -1 where ``h <= -θ``)."""

    def __init__(self, X: torch.Tensor, op: Q.QLIF):
        self.op = op
        self.up = torch.empty(X.shape, dtype=torch.bool, device=X.device)
        self.down = torch.empty_like(self.up) if op.ternary else None

    def fire(self, h: torch.Tensor, t: int) -> None:
        """Spikes of the membrane ``h`` at step ``t``; resets ``h`` in place where it fired."""
        torch.ge(h, self.op.threshold, out=self.up[t])
        if self.down is not None:
            torch.le(h, -self.op.threshold, out=self.down[t])
            h.masked_fill_(self.down[t], 0)
        h.masked_fill_(self.up[t], 0)

    def spikes(self) -> torch.Tensor:
        up = self.up.to(I64)
        return up if self.down is None else up.sub_(self.down.to(I64))


def _trace(history: torch.Tensor, spikes: torch.Tensor) -> LifTrace:
    """The `LifTrace` of a LIF's membrane ``history`` (``[T + 1, ...]``, the state before the first step
    and after each) and its ``spikes``."""
    step = history[0].numel()
    changed = torch.count_nonzero(history[2:] != history[1:-1])
    return LifTrace(history[:-1] != 0, step + int(changed), spikes.numel(), int(torch.count_nonzero(spikes)))


def trace_lif(X: torch.Tensor, op: Q.QLIF, state_bits: int) -> tuple[torch.Tensor, LifTrace]:
    """``(spikes, LifTrace)`` of `lif_integer` on int64 currents ``[T, ...]``, saturating: a LIF of a
    run made without ``trace_lifs`` (or run by the detailed engine), rerun for its counts."""
    ctx = _Ctx(state_bits, strict=False, traces={})
    spikes = lif_integer(X, op, ctx, "lif")
    return spikes, ctx.traces["lif"]


def leak_into(out: torch.Tensor, v: torch.Tensor, dv: int) -> torch.Tensor:
    """`fixed_point.decay` of int64 ``v`` written into ``out`` (``out`` may be ``v``), in one or two
    passes instead of five: Lava's ``sign(p)·(|p| >> 12)`` of ``p = v·(4096-dv)`` is ``p / 4096``
    truncated toward zero, which torch's integer division computes exactly; the ratio is reduced
    first, so tau = 2 (dv = 2048) is a single halving."""
    mult, div = _leak_ratio(dv)
    if mult != 1:
        return torch.mul(v, mult, out=out).div_(div, rounding_mode="trunc")
    if div != 1:
        return torch.div(v, div, rounding_mode="trunc", out=out)
    return out.copy_(v)


def _leak_ratio(dv: int) -> tuple[int, int]:
    """``(4096-dv) / 4096`` in lowest terms."""
    keep, whole = (1 << DECAY_BITS) - dv, 1 << DECAY_BITS
    common = math.gcd(keep, whole)
    return keep // common, whole // common


def _lif(op, ins, x, ctx, name):
    return lif_integer(ins["x"], op, ctx, name)


def _relu(op, ins, x, ctx, name):
    return ins["x"].clamp(min=0)


def _maxpool(op: Q.QMaxPool2d, ins, x, ctx, name):
    (kh, kw), (sh, sw), (ph, pw) = op.kernel, op.stride, op.padding

    def pool(z):
        if z.device.type == "cpu":  # torch has an int64 max_pool2d on the CPU only
            return F.max_pool2d(z, op.kernel, op.stride, op.padding)
        z = F.pad(z, (pw, pw, ph, ph), value=NEG)
        return z.unfold(2, kh, sh).unfold(3, kw, sw).amax((-1, -2))
    return _per_step(pool, ins["x"])


def _flatten(op: Q.QFlatten, ins, x, ctx, name):
    z = ins["x"].flatten(-2)
    return z.transpose(-1, -2) if op.channels_last else z


def _mean(op: Q.QMean, ins, x, ctx, name):
    z = ins["x"]
    if op.axes:
        first, last = 2 + op.axes[0], 2 + op.axes[-1]
        z = z.flatten(first, last).sum(first)
    if op.time:
        z = z.sum(0, keepdim=True)
    if op.mult is not None:
        z = requant(z, op.mult, op.shift)
    return ctx.sat(name, z, "mean")


def _add(op: Q.QAdd, ins, x, ctx, name):
    return ctx.sat(name, requant(ins["lhs"], *op.lhs_rq) + requant(ins["rhs"], *op.rhs_rq), "sum")


def _mul(op, ins, x, ctx, name):
    a, b = ins["lhs"], ins["rhs"]
    cap = limit(ctx.bits)
    # Where |a·b| passes the state (so possibly int64 too), a value just past it saturates alike.
    past = (b != 0) & (a.abs() > cap // b.abs().clamp(min=1))
    return ctx.sat(name, torch.where(past, (cap + 1) * a.sign() * b.sign(), a * b), "product")


def _heads(z, heads):
    T, B, C, H, W = z.shape
    return z.flatten(3).transpose(-1, -2).reshape(T, B, H * W, heads, C // heads).permute(0, 1, 3, 2, 4).contiguous()


def _counts(product, q, k, v) -> torch.Tensor:
    """An attention product of spike/count tensors as exact int64 counts (sf lives in the scale),
    computed in float64 (BLAS on CPU; CUDA has no int64 matmul): spike counts are far below 2^53."""
    return product(*(z.to(torch.float64) for z in (q, k, v))).round().to(I64)


def _dvs_pool(z):
    """``MaxPool3d((1,3,3), 1, (0,1,1))`` over the last two axes of a 5-D int64 tensor."""
    lead = z.shape[:-2]
    z = z.reshape(-1, 1, *z.shape[-2:])
    z = F.pad(z, (1, 1, 1, 1), value=NEG).unfold(2, 3, 1).unfold(3, 3, 1).amax((-1, -2))
    return z.reshape(*lead, *z.shape[-2:])


def _attention(op: Q.QAttention, ins, x, ctx, name):
    if op.mode == "SSA":  # Spikformer: ((Q Kᵀ) · V) as integer counts, sf in the scale
        T, B, N, C = ins["q"].shape
        q, k, v = (ins[n].reshape(T, B, N, op.heads, C // op.heads).permute(0, 1, 3, 2, 4) for n in "qkv")
        out = ctx.sat(name, _counts(lambda a, b, c: torch.matmul(torch.matmul(a, b.transpose(-2, -1)), c), q, k, v),
                      "attention sum")
        return out.transpose(2, 3).reshape(T, B, N, C).contiguous()
    T, B, C, H, W = ins["q"].shape
    q, k, v = (_heads(ins[n], op.heads) for n in "qkv")
    if op.mode == "SDSA":
        kv = k * v
        if op.dvs:
            kv = _dvs_pool(kv)
        kv = lif_integer(ctx.sat(name, kv.sum(dim=-2, keepdim=True), "kv sum"), op.kv_lif, ctx, name, f"{name}.kv_lif")
        out = q * kv
        out = _dvs_pool(out) if op.dvs else out
        return out.transpose(3, 4).reshape(T, B, C, H, W).contiguous()
    product = BLOCKWISE_PRODUCTS[op.mode]
    out = ctx.sat(name, _counts(lambda a, b, c: product(a, b, c, op.block_size, 1), q, k, v), "attention sum")
    return out.transpose(4, 3).reshape(T, B, C, H * W).contiguous().reshape(T, B, C, H, W)


def _output(op: Q.QOutput, ins, x, ctx, name):
    z = ins["x"]
    return z if op.per_step else z.squeeze(0)


EXECUTORS: dict[type, Callable] = {
    Q.QInput: _input, Q.QConv2d: _conv, Q.QLinear: _linear, Q.QLIF: _lif, Q.QReLU: _relu,
    Q.QMaxPool2d: _maxpool, Q.QFlatten: _flatten, Q.QMean: _mean, Q.QAdd: _add, Q.QMul: _mul,
    Q.QAttention: _attention, Q.QOutput: _output,
}


@dataclass(frozen=True)
class _Step:
    """One node of a run: its executor and the nodes feeding each input port."""

    name: str
    op: object
    run: Callable
    inputs: tuple[tuple[str, str], ...]  # (port, source)


#: A quantized graph's steps in dependency order, worked out once per graph (it is frozen): a run
#: then walks a tuple instead of sorting the graph and reading its edges, which costs as much as a
#: small network's kernels.
_PLANS: "weakref.WeakKeyDictionary[object, tuple[_Step, ...]]" = weakref.WeakKeyDictionary()


def execution_plan(qgraph: "Q.QuantizedGraph") -> tuple[_Step, ...]:
    """The `_Step` of every node of ``qgraph`` in dependency order; `UnsupportedLayer` for an op with
    no integer rule."""
    if qgraph not in _PLANS:
        g, steps = qgraph.graph, []
        for name in topological_order(g):
            op = g.nodes[name][Q.QOP]
            run = EXECUTORS.get(type(op))
            if run is None:
                raise UnsupportedLayer(name, type(op).__name__, "no integer executor")
            steps.append(_Step(name, op, run, tuple(inputs_by_port(g, name).items())))
        _PLANS[qgraph] = tuple(steps)
    return _PLANS[qgraph]


@torch.no_grad()
def run_integer(qgraph: "Q.QuantizedGraph", x: torch.Tensor, strict: bool = False,
                device: str | torch.device | None = None, trace_lifs: bool = False) -> IntegerRun:
    """Integer run of ``qgraph`` on the batch ``x`` (model input layout). ``strict``: the first
    value leaving ``state_bits`` raises ``QuantizationOverflow`` instead of saturating. ``device``
    (default: where ``x`` is) runs every kernel there; results are identical on CPU and CUDA.
    ``trace_lifs``: fill ``lif_traces`` (`LifTrace`), for the simulator's and NeuroBench's counts."""
    if device is not None:
        x = x.to(device)
    ctx = _Ctx(qgraph.state_bits, strict, {} if trace_lifs else None)
    values: dict[str, torch.Tensor] = {}
    with _no_tf32():
        for step in execution_plan(qgraph):
            out = step.run(step.op, {port: values[src] for port, src in step.inputs}, x, ctx, step.name)
            if out.dtype != I64:
                raise GraphError(f"node {step.name!r}: integer executor produced {out.dtype}")
            values[step.name] = out
    out_name = qgraph.output_node
    return IntegerRun(values[out_name], qgraph.scale(out_name), values, ctx.overflows, ctx.traces, ctx.clipped_inputs)
