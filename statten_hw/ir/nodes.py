"""Node kinds of the deployment graph: one frozen dataclass per operation.

Every tensor is time-major, ``[T, batch, *shape]``; ``shape`` is the per-timestep shape a node
declares (``[C, H, W]`` feature maps, ``[N, C]`` tokens, ``[K]`` logits). The docstrings give the
float semantics (the float reference of ``statten_hw.models``); the integer contract is a later
lowering of the same spec. Arrays are stored read-only; a bad field raises ``ValueError`` naming it.

Each kind declares its input ``PORTS`` (the ``port`` names its in-edges carry), the shape it
expects on a port (``expected``, ``None`` = any size) and its output shape (``infer``).
``NODE_KINDS`` maps a kind name to its class; serialisation rebuilds nodes only through it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Mapping

import numpy as np

Shape = tuple[int, ...]
Pattern = tuple  # of int | None

NODE_KINDS: dict[str, type["Node"]] = {}

ATTENTION_MODES = ("STAtten", "SDSA", "T_STAtten", "N_STAtten", "A2OS2A", "SSA")
ENCODINGS = ("direct", "events")
RESETS = ("hard", "soft")
ADD_KINDS = ("membrane", "spike")
BN_EPS = 1e-5


def register(cls: type["Node"]) -> type["Node"]:
    """Add a node class to ``NODE_KINDS`` under its ``KIND``."""
    if cls.KIND in NODE_KINDS:
        raise ValueError(f"node kind {cls.KIND!r} registered twice")
    NODE_KINDS[cls.KIND] = cls
    return cls


def _bad(node: "Node", field: str, problem: str) -> ValueError:
    return ValueError(f"{type(node).__name__}.{field}: {problem}")


def _pair(node: "Node", field: str) -> None:
    value = getattr(node, field)
    if len(value) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 0 for v in value):
        raise _bad(node, field, f"must be two non-negative ints, got {value!r}")
    object.__setattr__(node, field, tuple(int(v) for v in value))


def _array(node: "Node", field: str, ndim: int, optional: bool = False) -> None:
    value = getattr(node, field)
    if value is None and optional:
        return
    if not isinstance(value, np.ndarray):
        raise _bad(node, field, f"must be a numpy array, got {type(value).__name__}")
    if value.dtype != np.float32:
        raise _bad(node, field, f"must be float32, got {value.dtype}")
    if value.ndim != ndim:
        raise _bad(node, field, f"must have {ndim} dims, got shape {value.shape}")


def _choice(node: "Node", field: str, allowed: tuple) -> None:
    if getattr(node, field) not in allowed:
        raise _bad(node, field, f"must be one of {allowed}, got {getattr(node, field)!r}")


def _positive(node: "Node", field: str) -> None:
    value = getattr(node, field)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise _bad(node, field, f"must be a positive number, got {value!r}")


@dataclass(frozen=True, eq=False)
class Node:
    """Base of every node kind: freezing of arrays and lists, field access, equality by value."""

    KIND: ClassVar[str] = ""
    PORTS: ClassVar[tuple[str, ...]] = ("x",)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = np.array(value, copy=True)
                value.setflags(write=False)
            elif isinstance(value, list):
                value = tuple(value)
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""

    def fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def equals(self, other: "Node") -> bool:
        """Same kind and every field equal (arrays by value, shape and dtype)."""
        if type(other) is not type(self):
            return False
        for name, mine in self.fields().items():
            theirs = getattr(other, name)
            if isinstance(mine, np.ndarray) or isinstance(theirs, np.ndarray):
                if not (isinstance(mine, np.ndarray) and isinstance(theirs, np.ndarray)
                        and mine.dtype == theirs.dtype and np.array_equal(mine, theirs)):
                    return False
            elif mine != theirs:
                return False
        return True

    def expected(self, port: str, in_shapes: Mapping[str, Shape]) -> Pattern:
        """Shape this node needs on ``port`` given all its input shapes (``None`` = any size)."""
        return in_shapes[port]

    def infer(self, in_shapes: Mapping[str, Shape]) -> Shape:
        """Per-timestep output shape; the inputs already match ``expected``."""
        return in_shapes["x"]


@register
@dataclass(frozen=True, eq=False)
class Input(Node):
    """Network input, per-timestep ``shape``, ``timesteps`` steps.

    ``direct``: a static frame ``x`` of a sample ``[batch, *shape]`` is repeated, ``x[t] = x``.
    ``events``: event frames ``[batch, T, *shape]``, ``x[t] = frames[:, t]``.
    """

    KIND: ClassVar[str] = "input"
    PORTS: ClassVar[tuple[str, ...]] = ()
    shape: Shape
    timesteps: int
    encoding: str = "direct"

    def check(self):
        if not self.shape or not all(isinstance(s, (int, np.integer)) and s > 0 for s in self.shape):
            raise _bad(self, "shape", f"must be positive ints, got {self.shape!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if not isinstance(self.timesteps, (int, np.integer)) or self.timesteps < 1:
            raise _bad(self, "timesteps", f"must be an int >= 1, got {self.timesteps!r}")
        _choice(self, "encoding", ENCODINGS)

    def infer(self, in_shapes):
        return self.shape


@register
@dataclass(frozen=True, eq=False)
class Conv2d(Node):
    """2-D convolution applied to every step: ``y[t] = W ⋆ x[t] + b``.

    ``weight [C_out, C_in/groups, kh, kw]``, ``bias [C_out]`` or None; zero padding, dilation 1.
    ``H_out = (H + 2·padding - kh) // stride + 1`` (same for W).
    """

    KIND: ClassVar[str] = "conv2d"
    weight: np.ndarray
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1

    def check(self):
        _array(self, "weight", 4)
        _array(self, "bias", 1, optional=True)
        if self.bias is not None and self.bias.shape[0] != self.weight.shape[0]:
            raise _bad(self, "bias", f"has {self.bias.shape[0]} entries for {self.weight.shape[0]} output channels")
        _pair(self, "stride")
        _pair(self, "padding")
        if min(self.stride) < 1:
            raise _bad(self, "stride", f"must be >= 1, got {self.stride}")
        if not isinstance(self.groups, (int, np.integer)) or self.groups < 1 or self.weight.shape[0] % self.groups:
            raise _bad(self, "groups", f"must be an int >= 1 dividing C_out={self.weight.shape[0]}, got {self.groups!r}")

    def expected(self, port, in_shapes):
        return (self.weight.shape[1] * self.groups, None, None)

    def infer(self, in_shapes):
        _, h, w = in_shapes["x"]
        kh, kw = self.weight.shape[2:]
        return (self.weight.shape[0],
                (h + 2 * self.padding[0] - kh) // self.stride[0] + 1,
                (w + 2 * self.padding[1] - kw) // self.stride[1] + 1)


@register
@dataclass(frozen=True, eq=False)
class Linear(Node):
    """Dense layer on the last axis at every step: ``y[t] = x[t] · Wᵀ + b``; ``weight [out, in]``."""

    KIND: ClassVar[str] = "linear"
    weight: np.ndarray
    bias: np.ndarray | None = None

    def check(self):
        _array(self, "weight", 2)
        _array(self, "bias", 1, optional=True)
        if self.bias is not None and self.bias.shape[0] != self.weight.shape[0]:
            raise _bad(self, "bias", f"has {self.bias.shape[0]} entries for {self.weight.shape[0]} outputs")

    def expected(self, port, in_shapes):
        return (None,) * (len(in_shapes[port]) - 1) + (self.weight.shape[1],)

    def infer(self, in_shapes):
        return in_shapes["x"][:-1] + (self.weight.shape[0],)


@register
@dataclass(frozen=True, eq=False)
class BatchNorm(Node):
    """Inference batch norm over channel axis ``channel_axis`` of the per-step shape.

    Float semantics (``F.batch_norm`` with running stats, kept exactly):
    ``y = (x - mean) / sqrt(var + eps) · gamma + beta``. Folded form: ``y = scale·x + shift`` with
    ``scale = gamma / sqrt(var + eps)`` and ``shift = beta - mean·scale`` (computed in float64,
    returned as float32), the form the integer graph uses as a bias.
    """

    KIND: ClassVar[str] = "batchnorm"
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = BN_EPS
    channel_axis: int = 0

    def check(self):
        for name in ("gamma", "beta", "mean", "var"):
            _array(self, name, 1)
            if getattr(self, name).shape != self.gamma.shape:
                raise _bad(self, name, f"has shape {getattr(self, name).shape}, gamma has {self.gamma.shape}")
        if np.any(self.var < 0):
            raise _bad(self, "var", "has negative entries")
        _positive(self, "eps")
        if not isinstance(self.channel_axis, (int, np.integer)) or self.channel_axis < 0:
            raise _bad(self, "channel_axis", f"must be a non-negative int, got {self.channel_axis!r}")

    @property
    def scale(self) -> np.ndarray:
        return (self.gamma.astype(np.float64) / np.sqrt(self.var.astype(np.float64) + self.eps)).astype(np.float32)

    @property
    def shift(self) -> np.ndarray:
        scale = self.gamma.astype(np.float64) / np.sqrt(self.var.astype(np.float64) + self.eps)
        return (self.beta.astype(np.float64) - self.mean.astype(np.float64) * scale).astype(np.float32)

    def expected(self, port, in_shapes):
        rank = max(len(in_shapes[port]), self.channel_axis + 1)
        pattern = [None] * rank
        pattern[self.channel_axis] = self.gamma.shape[0]
        return tuple(pattern)


@register
@dataclass(frozen=True, eq=False)
class LIF(Node):
    """Leaky integrate-and-fire (spikingjelly ``MultiStepLIFNode``, decay_input), state ``v[-1] = v_reset``.

    ``h[t] = v[t-1] + (x[t] - (v[t-1] - v_reset)) / tau``;
    ``s[t] = [h[t] >= threshold]`` (a tie fires); ternary (A2OS2A's V):
    ``s[t] = [h[t] >= threshold] - [h[t] <= -threshold]``;
    hard reset ``v[t] = h[t]·(1 - |s[t]|) + v_reset·|s[t]|``, soft reset ``v[t] = h[t] - s[t]·threshold``.
    """

    KIND: ClassVar[str] = "lif"
    threshold: float = 1.0
    tau: float = 2.0
    reset: str = "hard"
    v_reset: float = 0.0
    ternary: bool = False

    def check(self):
        _positive(self, "threshold")
        _positive(self, "tau")
        if not self.tau >= 1:
            raise _bad(self, "tau", f"must be >= 1 (a leak, not a gain), got {self.tau!r}")
        _choice(self, "reset", RESETS)
        if not isinstance(self.v_reset, (int, float)) or isinstance(self.v_reset, bool):
            raise _bad(self, "v_reset", f"must be a number, got {self.v_reset!r}")
        if not isinstance(self.ternary, bool):
            raise _bad(self, "ternary", f"must be a bool, got {self.ternary!r}")


@register
@dataclass(frozen=True, eq=False)
class ReLU(Node):
    """``y[t] = max(x[t], 0)`` (A2OS2A's K)."""

    KIND: ClassVar[str] = "relu"


@register
@dataclass(frozen=True, eq=False)
class MaxPool2d(Node):
    """Spatial max pool of ``[C, H, W]`` at every step, padding with -inf.

    ``H_out = (H + 2·padding - kernel) // stride + 1`` (floor mode, dilation 1).
    """

    KIND: ClassVar[str] = "maxpool2d"
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int] = (1, 1)

    def check(self):
        for name in ("kernel", "stride", "padding"):
            _pair(self, name)
        for name in ("kernel", "stride"):
            if min(getattr(self, name)) < 1:
                raise _bad(self, name, f"must be >= 1, got {getattr(self, name)}")
        if any(2 * p > k for p, k in zip(self.padding, self.kernel)):
            raise _bad(self, "padding", f"must be at most half the kernel {self.kernel}, got {self.padding}")

    def expected(self, port, in_shapes):
        return (None, None, None)

    def infer(self, in_shapes):
        c, h, w = in_shapes["x"]
        k, s, p = self.kernel, self.stride, self.padding
        return (c, (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1)


@register
@dataclass(frozen=True, eq=False)
class Mean(Node):
    """Average over consecutive per-step ``axes`` (flattened into one, then averaged), then over
    time when ``time``: ``y = mean_t mean_axes x[t]``. The spatial mean before the head and the
    time mean at the output (after it the tensor has one step)."""

    KIND: ClassVar[str] = "mean"
    axes: tuple[int, ...] = ()
    time: bool = False

    def check(self):
        if not all(isinstance(a, (int, np.integer)) and a >= 0 for a in self.axes):
            raise _bad(self, "axes", f"must be non-negative ints, got {self.axes!r}")
        object.__setattr__(self, "axes", tuple(int(a) for a in self.axes))
        if self.axes and list(self.axes) != list(range(self.axes[0], self.axes[0] + len(self.axes))):
            raise _bad(self, "axes", f"must be consecutive and increasing, got {self.axes}")
        if not isinstance(self.time, bool):
            raise _bad(self, "time", f"must be a bool, got {self.time!r}")
        if not self.axes and not self.time:
            raise _bad(self, "axes", "empty while time is False: the node would average nothing")

    def expected(self, port, in_shapes):
        rank = max(len(in_shapes[port]), (self.axes[-1] + 1) if self.axes else 0)
        return (None,) * rank

    def infer(self, in_shapes):
        shape = in_shapes["x"]
        return tuple(s for i, s in enumerate(shape) if i not in self.axes)


@register
@dataclass(frozen=True, eq=False)
class Flatten(Node):
    """Feature map to tokens at every step: ``[C, H, W] -> [H·W, C]`` (``channels_last``, token
    ``n = h·W + w``) or ``[C, H·W]``."""

    KIND: ClassVar[str] = "flatten"
    channels_last: bool = True

    def check(self):
        if not isinstance(self.channels_last, bool):
            raise _bad(self, "channels_last", f"must be a bool, got {self.channels_last!r}")

    def expected(self, port, in_shapes):
        return (None, None, None)

    def infer(self, in_shapes):
        c, h, w = in_shapes["x"]
        return (h * w, c) if self.channels_last else (c, h * w)


class _ElementwiseBinary:
    """Ports ``lhs`` and ``rhs`` of one shape; the output has that shape too."""

    PORTS: ClassVar[tuple[str, ...]] = ("lhs", "rhs")

    def expected(self, port, in_shapes):
        return in_shapes["lhs"]

    def infer(self, in_shapes):
        return in_shapes["lhs"]


@register
@dataclass(frozen=True, eq=False)
class Add(_ElementwiseBinary, Node):
    """Residual sum ``y[t] = lhs[t] + rhs[t]``. ``kind='membrane'``: the MS shortcut (real-valued
    membrane inputs, SDT/STAtten); ``'spike'``: the SEW shortcut (spike counts, Spikformer)."""

    KIND: ClassVar[str] = "add"
    kind: str = "membrane"

    def check(self):
        _choice(self, "kind", ADD_KINDS)


@register
@dataclass(frozen=True, eq=False)
class Mul(_ElementwiseBinary, Node):
    """Element-wise gate ``y[t] = lhs[t] · rhs[t]`` (STAtten DVS: attention spikes times pooled input)."""

    KIND: ClassVar[str] = "mul"


@register
@dataclass(frozen=True, eq=False)
class SpikingAttention(Node):
    """Spiking self-attention over spike inputs ``q, k, v`` (ports), ``heads`` heads of ``d = C/heads``.

    Inputs are ``[C, H, W]`` maps (tokens ``N = H·W``) or, for ``SSA``, ``[N, C]`` tokens; the
    output has the input shape and is not yet spiking (an LIF follows), except for SDSA.
    Per head, with ``sf = scale`` and ``B = block_size`` consecutive steps grouped:

    * ``STAtten``/``A2OS2A``: over the ``B·N`` rows of a block, ``Y = Q · ((Kᵀ V) · sf)``.
    * ``T_STAtten``: per token n over the block's B steps, ``Y_n = Q_n · ((K_nᵀ V_n) · sf)``.
    * ``N_STAtten``: per token n, ``Y_n = ((Q_n K_nᵀ) · sf) · V_n``.
    * ``SSA`` (Spikformer, one step): ``Y = ((Q Kᵀ) · sf) · V``.
    * ``SDSA`` (SDT v1, no scale): ``Y = Q ⊙ LIF_kv_threshold(Σ_N K ⊙ V)``, a spiking output.

    ``dvs``: the DVS rules of the official code, a 3×3 stride-1 max pool over the (N, d) plane of
    ``K ⊙ V`` and of the SDSA output (the pools of q/k/v maps are separate MaxPool2d nodes).
    """

    KIND: ClassVar[str] = "attention"
    PORTS: ClassVar[tuple[str, ...]] = ("q", "k", "v")
    mode: str
    heads: int
    block_size: int = 1
    scale: float = 1.0
    dvs: bool = False
    kv_threshold: float = 0.5

    def check(self):
        _choice(self, "mode", ATTENTION_MODES)
        for name in ("heads", "block_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise _bad(self, name, f"must be an int >= 1, got {value!r}")
        _positive(self, "scale")
        _positive(self, "kv_threshold")
        if not isinstance(self.dvs, bool):
            raise _bad(self, "dvs", f"must be a bool, got {self.dvs!r}")

    def expected(self, port, in_shapes):
        if port != "q":
            return in_shapes["q"]
        if self.mode == "SSA":
            return (None, _multiple(in_shapes["q"], -1, self.heads))
        return (_multiple(in_shapes["q"], 0, self.heads), None, None)

    def infer(self, in_shapes):
        return in_shapes["q"]


def _multiple(shape: Shape, axis: int, heads: int):
    """The channel count itself when ``heads`` divides it, else a value that cannot match."""
    try:
        c = shape[axis]
    except IndexError:
        return None
    return c if c % heads == 0 else f"multiple of {heads}"


@register
@dataclass(frozen=True, eq=False)
class Output(Node):
    """Network output ``y = x``: logits ``[batch, K]`` (after a time mean), or per-step logits
    ``y[t] = x[t]``, ``[T, batch, K]``, when ``per_step`` (TET training output)."""

    KIND: ClassVar[str] = "output"
    per_step: bool = False

    def check(self):
        if not isinstance(self.per_step, bool):
            raise _bad(self, "per_step", f"must be a bool, got {self.per_step!r}")
