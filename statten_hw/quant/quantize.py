"""Quantize a deployment graph into the integer graph every backend must reproduce.

``quantize(g, calibration_x)`` returns a :class:`QuantizedGraph`: a copy of the IR graph in which
BN is folded away and every node holds a frozen integer op (``Q*`` below) under ``"qop"``, every
node its output scale under ``"scale"`` and every edge the scale of the tensor it carries. A value
``q`` (int64) on a tensor of scale ``s`` stands for the real number ``q · s``.

Rules (each with its reason):

* **Input.** Calibration data that is already integer with ``|x| <= 127`` (spike/event frames,
  DVS counts) keeps scale 1: quantizing it would only add error. Real-valued (analog) input is
  quantized to ``INPUT_BITS`` = 8 bits: unsigned ``[0, 255]`` when the calibration data is
  non-negative (images in [0, 1]), else signed ``[-127, 127]``, with ``scale = max|x|/L`` where
  ``L`` is 255 (127) unless the data lives on a coarser grid ``max|x|/L`` (``fixed_point.grid_levels``:
  the digits' ``k/16`` pixels take ``L = 240`` and stay exact; on ``max/255`` every pixel was rounded
  and the first LIF flipped spikes the 16-bit-weight network does not). That conversion
  (``round(x/scale)``, clipped) is the sensor boundary, the only float step of a run.
* **BN folding.** A BN directly after a conv/linear (its only consumer) is folded in float64
  into that layer, ``W' = W·γ/σ``, ``b' = b·γ/σ + β - μ·γ/σ``, *before* weight quantization, so the
  BN becomes the integer bias. A BN anywhere else raises :class:`UnsupportedLayer`.
* **Weights.** Per-layer symmetric ``s_w = max|W'| / (2**(bits-1) - 1)``, ``W_int = round(W'/s_w)``
  (``fixed_point.quantize_symmetric``; 1 bit is a ±1 sign code). The accumulator
  ``W_int ⋆ q_in + b_int`` then has scale ``s_acc = s_w · s_in`` and ``b_int = round(b'/s_acc)``;
  with spike inputs (``s_in = 1``) the LIF integrates the exact integer current
  ``round((W·s + b)/s_w)`` up to weight rounding.
* **Weight exponent.** The sums keep up to ``fraction_bits`` (default 6, Loihi's) bits below the
  weight LSB: ``weight = mantissa << weight_exp`` and ``s_w`` is divided by ``2**weight_exp``, so
  the bias, the LIF state and its threshold are 64x finer than one weight step while the synapses
  still store 8-bit mantissas (``_fraction_bits``: as many as the calibration peak leaves inside
  ``state_bits``). Without them bias rounding and the truncating decay err by half a weight step
  per step, which changed up to 7 % of the digits-seq decisions.
* **LIF.** ``h = v + (x - v)/τ`` becomes integer by holding the membrane in units of ``s_x/τ``
  (``s_x``: the scale of its input): with ``H = τ·h/s_x``, ``X = x/s_x`` the update is
  ``H = V·(1 - 1/τ) + X``, i.e. Lava's ``decay(V, dv) + X`` with ``dv = 4096/τ`` (2048 for τ = 2,
  an exact halving truncated toward zero, the only rounding of the LIF). The threshold becomes
  ``θ_int = ceil(τ·θ/s_x)`` computed in exact rational arithmetic, so ``h >= θ ⇔ H >= θ_int``
  for integer ``H`` (ternary: ``H <= -θ_int`` fires -1). Hard reset to 0 only; soft reset or
  ``v_reset != 0`` raise :class:`UnsupportedLayer`. Lava's ``v > vth`` is ``vth = θ_int - 1``.
  Spikes are exact integers 0/1 (or -1/0/1) of scale 1. Quantized for a target with a narrower
  decay field, ``dv`` is the nearest value that field holds (`decay_on_grid`): the target's own
  leak, not the model's.
* **Membrane streams** (``Add`` of kind 'membrane', the MS shortcut, and a spatial ``Mean`` that
  feeds a LIF) get one scale per stream from calibration, ``s = max|value| / (2**(state_bits-3) - 1)``:
  two bits of headroom so that a LIF fed by the stream (its state settles at ``τ·X``) and data
  beyond the calibration range stay inside ``state_bits``. Each operand is brought to it with an
  integer multiply+shift ``(q·M + 2**(S-1)) >> S`` (``M/2**S ≈ s_in/s``, M of 15 bits).
* **Spike adds** (SEW, kind 'spike') of equal scales are plain integer adds; ``Mul``, ``ReLU``,
  ``MaxPool2d``, ``Flatten`` are exact on integers and multiply/keep scales.
* **Attention** products of spikes are integer counts: ``Σ = Q·(KᵀV)`` (every mode, computed with
  the model's own product order and ``sf = 1``) is kept exact and given the scale
  ``s_q·s_k·s_v·sf``; the following LIF compares against ``ceil(2θ/scale)`` exactly (the exact-
  rational mode: ``Σ·sf >= θ`` decided on integers, no rounding of ``sf``). SDSA's inner K⊙V LIF
  uses the same LIF rule on ``Σ_N K⊙V``.
* **Means.** A mean is an integer sum; the division by the element count goes into the scale
  (``s_in/count``) — or, for a mean feeding a LIF, into the requantization multiplier to its
  calibrated stream scale (else the head LIF's state would grow with the token count).
* **Saturation.** Every non-spike integer tensor (accumulators, streams, LIF state) is kept inside
  ``state_bits`` by ``fixed_point.saturate`` at run time (clipped and counted, or raised in strict mode).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Mapping

import networkx as nx
import numpy as np
import torch

from statten_hw.errors import QuantizationOverflow, UnsupportedLayer
from statten_hw.resources import samples_per_batch
from statten_hw.ir import nodes as ir
from statten_hw.ir.execute_float import peak_live_elements, run_float
from statten_hw.ir.graph import OP, PORT, SHAPE, inputs_by_port, timesteps, topological_order

from .fixed_point import (DECAY_BITS, INPUT_BITS, STATE_BITS, WEIGHT_BITS, ceil_ratio, dv_for_tau, grid_levels,
                          limit, quantize_symmetric, requant_params)

QOP, SCALE = "qop", "scale"
STREAM_HEADROOM_BITS = 2
MIN_STATE_BITS, MAX_STATE_BITS = 4, 48  # the state widths `quantize` takes
FRACTION_BITS = 6  # Loihi's: sums carry up to 6 bits below the weight LSB (``_fraction_bits``)
MAX_FRACTION_BITS = 16  # the most `quantize` takes: every layer's weight_exp lies in 0..16


def _int64(name: str, quantity: str, values) -> np.ndarray:
    """``values`` (already rounded) as int64, or `QuantizationOverflow` naming the layer where one is not
    finite or leaves int64: a cast would wrap it silently (a bias of 3e38 became -2^63)."""
    a = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(a) | (np.abs(a) >= 2.0 ** 63)
    if bad.any():
        raise QuantizationOverflow(name, quantity, float(a[bad].flat[0]), 64)
    return a.astype(np.int64)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.int64, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class QInput:
    """Integer input: ``q = clip(round(x / scale))`` (``exact``: the data is integer, scale 1)."""
    shape: tuple
    timesteps: int
    encoding: str
    scale: float
    bits: int
    signed: bool
    exact: bool

    @property
    def levels(self) -> tuple[int, int]:
        """Lowest and highest integer level: ``[0, 2**bits - 1]`` unsigned, ``±(2**(bits-1) - 1)`` signed."""
        top = limit(self.bits) if self.signed else (1 << self.bits) - 1
        return (-top if self.signed else 0, top)


@dataclass(frozen=True, eq=False)
class QSynapse:
    """Integer weights as Loihi stores them, ``weight = mantissa << weight_exp``: ``weight`` is what
    every backend multiplies with, ``mantissa`` what a synapse stores (``weight_bits`` wide)."""
    weight: np.ndarray
    bias: np.ndarray
    w_scale: float
    weight_exp: int

    @cached_property  # read on every integer run of the layer; the weights are frozen
    def mantissa(self) -> np.ndarray:
        return _frozen(self.weight >> self.weight_exp)

    @cached_property
    def mantissa_bound(self) -> int:
        """``max_o Σ|M[o]|``: with inputs up to ``p`` in magnitude no partial sum of mantissas exceeds ``p``
        times it (how the integer kernels pick an exact float type and skip saturation checks)."""
        return int(np.abs(self.mantissa).reshape(self.weight.shape[0], -1).sum(1).max(initial=0))

    @cached_property
    def bias_bound(self) -> int:
        """``max |bias|``."""
        return int(np.abs(self.bias).max(initial=0))


@dataclass(frozen=True, eq=False)
class QConv2d(QSynapse):
    """``acc = W_int ⋆ q + b_int`` (int64, saturated to state_bits); scale ``w_scale · in_scale``
    (``w_scale`` is the scale of one unit of ``weight``, i.e. of a mantissa step / 2**weight_exp)."""
    stride: tuple
    padding: tuple
    groups: int


@dataclass(frozen=True, eq=False)
class QLinear(QSynapse):
    """``acc = q · W_intᵀ + b_int`` on the last axis; scale ``w_scale · in_scale``."""


@dataclass(frozen=True, eq=False)
class QLIF:
    """Lava-form LIF: ``H = decay(V, dv) + X``, saturate, fire ``H >= threshold`` (ternary also
    ``-1`` at ``H <= -threshold``), hard reset to 0. State unit ``state_scale = in_scale / tau``."""
    threshold: int
    dv: int
    ternary: bool
    state_scale: float


@dataclass(frozen=True, eq=False)
class QReLU:
    """``max(q, 0)``, same scale."""


@dataclass(frozen=True, eq=False)
class QMaxPool2d:
    """Integer max pool (padding never wins), same scale."""
    kernel: tuple
    stride: tuple
    padding: tuple


@dataclass(frozen=True, eq=False)
class QFlatten:
    """``[C,H,W] -> [H·W, C]`` (or ``[C, H·W]``), same scale."""
    channels_last: bool


@dataclass(frozen=True, eq=False)
class QMean:
    """Integer sum over ``axes`` (and time); then ``requant(sum, mult, shift)`` when ``mult`` is set."""
    axes: tuple
    time: bool
    count: int
    mult: int | None = None
    shift: int | None = None


@dataclass(frozen=True, eq=False)
class QAdd:
    """``requant(lhs, *lhs_rq) + requant(rhs, *rhs_rq)``; ``(1, 0)`` is a plain add."""
    kind: str
    lhs_rq: tuple
    rhs_rq: tuple


@dataclass(frozen=True, eq=False)
class QMul:
    """Integer product, scale ``s_lhs · s_rhs``."""


@dataclass(frozen=True, eq=False)
class QAttention:
    """Integer attention counts ``Σ`` (scale ``sf`` times the input scales, kept exact); SDSA
    applies ``kv_lif`` to ``Σ_N K⊙V`` and gates Q with its spikes."""
    mode: str
    heads: int
    block_size: int
    sf: float
    dvs: bool
    kv_lif: QLIF | None = None


@dataclass(frozen=True, eq=False)
class QOutput:
    """Integer logits; real logits ``= q · scale``."""
    per_step: bool


@dataclass(frozen=True, eq=False)
class QuantizedGraph:
    """The integer graph: ``graph`` nodes hold ``"qop"`` and ``"scale"``, edges ``"port"`` and
    ``"scale"``; ``alias`` maps every float-graph node to the integer node carrying its value
    (a folded BN maps to its conv/linear)."""
    graph: nx.DiGraph
    weight_bits: int
    state_bits: int
    alias: Mapping[str, str]
    float_graph: nx.DiGraph = field(repr=False)

    def qop(self, name: str):
        return self.graph.nodes[name][QOP]

    def scale(self, name: str) -> float:
        return self.graph.nodes[name][SCALE]

    @property
    def edge_scales(self) -> dict[tuple[str, str], float]:
        return {(u, v): d[SCALE] for u, v, d in self.graph.edges(data=True)}

    @property
    def lif_nodes(self) -> list[str]:
        return [n for n in topological_order(self.graph) if isinstance(self.qop(n), QLIF)]

    @property
    def output_node(self) -> str:
        return next(n for n in self.graph if isinstance(self.qop(n), QOutput))

    @property
    def input_node(self) -> str:
        """The `QInput` node: the sensor boundary, where float data becomes levels."""
        return next(n for n in self.graph if isinstance(self.qop(n), QInput))


def decay_field(decay_bits: int) -> tuple[int, int]:
    """``(step, largest)`` of the ``dv`` values a ``decay_bits``-bit decay field holds: ``k · 2^(12 - d)``
    for ``0 <= k < 2^d``, so 0..4095 in 12 bits (Loihi's register, `simulator.lava.neurons.MAX_DV`) and
    only 0 (no leak) without a field."""
    step = 1 << max(0, DECAY_BITS - decay_bits)
    return step, (1 << DECAY_BITS) - step


def decay_on_grid(tau: float, decay_bits: int) -> int:
    """The ``dv`` of a ``decay_bits``-bit decay field (`decay_field`) nearest the model's ``4096 / tau``
    (exact rational, ties up)."""
    step, largest = decay_field(decay_bits)
    k = math.floor(Fraction(1 << DECAY_BITS) / (Fraction(tau) * step) + Fraction(1, 2))
    return min(k * step, largest)


def _lif(op: ir.LIF, name: str, in_scale: float, decay_bits: int | None = None) -> QLIF:
    if op.reset != "hard" or op.v_reset != 0:
        raise UnsupportedLayer(name, "lif", f"only hard reset to 0 is quantized (reset {op.reset!r}, "
                                            f"v_reset {op.v_reset})")
    dv = dv_for_tau(op.tau) if decay_bits is None else decay_on_grid(op.tau, decay_bits)
    if not 0 <= dv <= (1 << DECAY_BITS):
        raise UnsupportedLayer(name, "lif", f"tau {op.tau} gives dv {dv} outside 12 bits")
    if not 0 < in_scale < math.inf or not math.isfinite(op.threshold * op.tau / in_scale):
        raise QuantizationOverflow(name, "threshold in input steps", op.threshold * op.tau / in_scale, 64)
    return QLIF(threshold=ceil_ratio(op.threshold * op.tau, in_scale), dv=dv, ternary=op.ternary,
                state_scale=in_scale / op.tau)


def folded_batchnorm(g: nx.DiGraph, name: str) -> str | None:
    """The BN that quantization folds into conv/linear ``name`` (its only consumer), or None."""
    succ = list(g.successors(name))
    if len(succ) != 1 or not isinstance(g.nodes[succ[0]][OP], ir.BatchNorm):
        return None
    bn: ir.BatchNorm = g.nodes[succ[0]][OP]
    want_axis = 0 if isinstance(g.nodes[name][OP], ir.Conv2d) else len(g.nodes[name][SHAPE]) - 1
    if bn.channel_axis != want_axis:
        raise UnsupportedLayer(succ[0], "batchnorm", f"channel axis {bn.channel_axis} is not the output channel "
                                                     f"axis {want_axis} of {name!r}; cannot fold")
    return succ[0]


def _fold(g: nx.DiGraph, name: str, op) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Weight and bias (float64) with a following BN folded in; the BN's name or None."""
    w = op.weight.astype(np.float64)
    b = np.zeros(w.shape[0]) if op.bias is None else op.bias.astype(np.float64)
    bn_name = folded_batchnorm(g, name)
    if bn_name is None:
        return w, b, None
    bn: ir.BatchNorm = g.nodes[bn_name][OP]
    scale = bn.gamma.astype(np.float64) / np.sqrt(bn.var.astype(np.float64) + bn.eps)
    shift = bn.beta.astype(np.float64) - bn.mean.astype(np.float64) * scale
    return w * scale.reshape(-1, *([1] * (w.ndim - 1))), b * scale + shift, bn_name


def _fraction_bits(peak_sum: float, state_bits: int, most: int) -> int:
    """Bits below the weight LSB for a layer's sums (its ``weight_exp``), ``most`` at most.

    With the sum in units of one weight step the LIF's bias rounding and its truncating decay each
    err by up to half a unit per step; on networks whose membranes sit near threshold that moved
    up to 7 % of the digits-seq predictions (``tests/quant/test_embedded_accuracy.py``). Loihi keeps
    6 such bits (its weight exponent and the 6-bit alignment of Lava's fixed-point LIF); we keep as
    many as the calibration peak ``peak_sum`` (in weight steps) leaves inside ``state_bits`` after
    the stream headroom and one bit for the LIF's integration (``τ = 2`` doubles a constant input).
    """
    used = math.ceil(math.log2(peak_sum + 1)) if peak_sum > 0 else 0
    return max(0, min(most, state_bits - 1 - STREAM_HEADROOM_BITS - 1 - used))


def check_fraction_bits(fraction_bits: int) -> None:
    """ValueError unless ``fraction_bits`` is an int in 0..`MAX_FRACTION_BITS`."""
    if not isinstance(fraction_bits, int) or not 0 <= fraction_bits <= MAX_FRACTION_BITS:
        raise ValueError(f"fraction_bits must be an int in 0..{MAX_FRACTION_BITS}, got {fraction_bits!r}")


def _requant_in_int64(name: str, bound: int, rq: tuple[int, int]) -> tuple[int, int]:
    """``rq`` = (M, S) if ``|q| <= bound`` rescales without leaving int64 (``q·M + 2^(S-1)``), else
    `QuantizationOverflow`: the integer executors would wrap silently (a state width near 48 bits)."""
    mult, shift = rq
    product = bound * mult + ((1 << (shift - 1)) if shift else 0)
    if product >= 1 << 63:
        raise QuantizationOverflow(name, "requantization product (state bound x multiplier)", product, 64)
    return rq


def _peak(t: torch.Tensor) -> float:
    p = float(t.detach().abs().max()) if t.numel() else 0.0
    return p if p > 0 else 1.0


def calibration_peaks(graph: nx.DiGraph, x: torch.Tensor, batch_bytes: int | None = None) -> dict[str, float]:
    """``max |value|`` of every node's float output over the calibration batch ``x`` (1.0 where it is
    0 or the node is empty: a scale must not be 0). Only peaks are kept, so the float run drops each
    output once read, and runs ``x`` in as few slices as keep its live outputs under ``batch_bytes``
    (float32 over all steps; `statten_hw.resources.BATCH_BYTES` when None): keeping every node's
    output of 256 samples took 31 MiB per time step of the embedded model, and T = 1024 was killed.
    One slice holds every default run of the embedded model, whose peaks are then those of the whole
    batch; where it takes several, a kernel may sum in another order for another batch size, which
    moves a peak by float rounding."""
    size = samples_per_batch(4 * timesteps(graph) * peak_live_elements(graph), batch_bytes)
    peaks: dict[str, torch.Tensor] = {}

    def observe(name: str, value: torch.Tensor) -> None:
        peak = value.detach().abs().max().double() if value.numel() else torch.zeros((), dtype=torch.float64)
        peaks[name] = torch.maximum(peaks[name], peak) if name in peaks else peak  # a NaN slice: NaN, as unsliced

    for start in range(0, len(x), size):
        run_float(graph, x[start:start + size], observe=observe)
    return {name: _peak(p) for name, p in peaks.items()}


def quantize(graph: nx.DiGraph, calibration_x: torch.Tensor, weight_bits: int = WEIGHT_BITS,
             state_bits: int = STATE_BITS, fraction_bits: int = FRACTION_BITS,
             decay_bits: int | None = None) -> QuantizedGraph:
    """The integer graph of ``graph`` (module docstring: the rules); ``calibration_x`` is a batch
    in the model's input layout, used for the input scale, the membrane-stream scales and each
    layer's weight exponent (at most ``fraction_bits``); with ``decay_bits``, every LIF's decay is
    the nearest a field of that width holds (`decay_on_grid`), else ``round(4096 / tau)``."""
    if not isinstance(state_bits, int) or not MIN_STATE_BITS <= state_bits <= MAX_STATE_BITS:
        raise ValueError(f"state_bits must be an int in {MIN_STATE_BITS}..{MAX_STATE_BITS}, got {state_bits!r}")
    check_fraction_bits(fraction_bits)
    if decay_bits is not None and (not isinstance(decay_bits, int) or decay_bits < 0):
        raise ValueError(f"decay_bits must be None or an int >= 0, got {decay_bits!r}")
    quantize_symmetric(np.zeros(1), weight_bits)  # validates weight_bits
    peaks = calibration_peaks(graph, calibration_x)
    stream_cap = limit(state_bits - STREAM_HEADROOM_BITS)
    qg = nx.DiGraph(**graph.graph)
    alias: dict[str, str] = {}
    steps: dict[str, int] = {}
    scale: dict[str, float] = {}

    def add(name, qop, s, T, **inputs):
        qg.add_node(name, **{QOP: qop, SCALE: float(s), SHAPE: graph.nodes[name][SHAPE],
                             "source": graph.nodes[name].get("source", "")})
        for port, src in inputs.items():
            qg.add_edge(alias[src], name, **{PORT: port, SCALE: scale[alias[src]]})
        alias[name], scale[name], steps[name] = name, float(s), T

    for name in topological_order(graph):
        op = graph.nodes[name][OP]
        ins = inputs_by_port(graph, name)
        src = {p: alias[n] for p, n in ins.items()}
        s_in = {p: scale[n] for p, n in src.items()}
        T = max((steps[n] for n in src.values()), default=None)
        if name in alias:  # a BN already folded into its producer
            continue
        if isinstance(op, ir.Input):
            x = calibration_x.detach().to(torch.float64)
            exact = bool(torch.all(x == x.round())) and float(x.abs().max()) <= 127
            signed = bool((x < 0).any())
            s = 1.0 if exact else _peak(x) / grid_levels(x, limit(INPUT_BITS) if signed else (1 << INPUT_BITS) - 1)
            add(name, QInput(op.shape, op.timesteps, op.encoding, s, INPUT_BITS, signed, exact), s, op.timesteps)
        elif isinstance(op, (ir.Conv2d, ir.Linear)):
            w, b, bn = _fold(graph, name, op)
            w_int, s_w = quantize_symmetric(w, weight_bits)
            peak_sum = peaks[bn or name] / (s_w * s_in["x"])
            if not math.isfinite(peak_sum):
                raise QuantizationOverflow(name, "calibration sum in weight steps", peak_sum, 64)
            exp = _fraction_bits(peak_sum, state_bits, fraction_bits)
            s_w /= 1 << exp
            s_acc = s_w * s_in["x"]
            b_int = _frozen(_int64(name, "integer bias", np.round(b / s_acc)))
            w_int = _frozen(w_int << exp)
            if isinstance(op, ir.Conv2d):
                q = QConv2d(w_int, b_int, s_w, exp, op.stride, op.padding, op.groups)
            else:
                q = QLinear(w_int, b_int, s_w, exp)
            add(name, q, s_acc, T, **ins)
            if bn is not None:
                alias[bn], scale[bn], steps[bn] = name, s_acc, T
        elif isinstance(op, ir.BatchNorm):
            raise UnsupportedLayer(name, "batchnorm", "only a BN right after a conv/linear (its only consumer) "
                                                      "is quantized, by folding")
        elif isinstance(op, ir.LIF):
            add(name, _lif(op, name, s_in["x"], decay_bits), 1.0, T, **ins)
        elif isinstance(op, ir.ReLU):
            add(name, QReLU(), s_in["x"], T, **ins)
        elif isinstance(op, ir.MaxPool2d):
            add(name, QMaxPool2d(op.kernel, op.stride, op.padding), s_in["x"], T, **ins)
        elif isinstance(op, ir.Flatten):
            add(name, QFlatten(op.channels_last), s_in["x"], T, **ins)
        elif isinstance(op, ir.Mean):
            shape = graph.nodes[ins["x"]][SHAPE]
            count = math.prod(shape[a] for a in op.axes) * (T if op.time else 1)
            T_out = 1 if op.time else T
            feeds_lif = any(isinstance(graph.nodes[c][OP], ir.LIF) for c in graph.successors(name))
            if feeds_lif:
                s = peaks[name] / stream_cap
                mult, shift = _requant_in_int64(name, count * limit(state_bits), requant_params(s_in["x"] / count / s))
                add(name, QMean(op.axes, op.time, count, mult, shift), s, T_out, **ins)
            else:
                add(name, QMean(op.axes, op.time, count), s_in["x"] / count, T_out, **ins)
        elif isinstance(op, ir.Add):
            if op.kind == "spike" and s_in["lhs"] == s_in["rhs"]:
                add(name, QAdd(op.kind, (1, 0), (1, 0)), s_in["lhs"], T, **ins)
            else:
                s = peaks[name] / stream_cap
                lhs, rhs = (_requant_in_int64(name, limit(state_bits), requant_params(s_in[port] / s))
                            for port in ("lhs", "rhs"))
                add(name, QAdd(op.kind, lhs, rhs), s, T, **ins)
        elif isinstance(op, ir.Mul):
            add(name, QMul(), s_in["lhs"] * s_in["rhs"], T, **ins)
        elif isinstance(op, ir.SpikingAttention):
            s_qkv = s_in["q"] * s_in["k"] * s_in["v"]
            if op.mode == "SDSA":
                kv = _lif(ir.LIF(threshold=op.kv_threshold), f"{name}.kv_lif", s_in["k"] * s_in["v"], decay_bits)
                add(name, QAttention(op.mode, op.heads, op.block_size, 1.0, op.dvs, kv), s_in["q"], T, **ins)
            else:
                add(name, QAttention(op.mode, op.heads, op.block_size, op.scale, op.dvs), s_qkv * op.scale, T, **ins)
        elif isinstance(op, ir.Output):
            add(name, QOutput(op.per_step), s_in["x"], T, **ins)
        else:
            raise UnsupportedLayer(name, op.KIND, "no integer quantization rule")
    qg.graph["quant"] = {"weight_bits": weight_bits, "state_bits": state_bits, "decay_bits": DECAY_BITS,
                         "fraction_bits": fraction_bits}
    return QuantizedGraph(qg, weight_bits, state_bits, alias, graph)
