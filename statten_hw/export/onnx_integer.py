"""Export the *integer* network (``quant.QuantizedGraph``) to ONNX, bit-exact with ``run_integer``.

``export_integer_onnx(qgraph, path, batch_size)`` builds the graph directly with ``onnx.helper`` (no
tracing), unrolled over the T time steps (no ``Loop``/``Scan``, no state), one ONNX subgraph per
integer node, mirroring ``statten_hw.quant.execute`` rule by rule. Every tensor is ``int64`` and
time-major ``[T, batch, *shape]`` inside the graph, as in the reference executor.

**Input.** The graph input ``"input_int"`` (int64, static shape ``[batch, *model input shape]``) is
the *already quantized* input: the only float step of an integer run, the sensor boundary
``clip(round(x / scale))`` of ``QInput``, happens outside the graph, exactly as ``run_integer`` does
it. :func:`quantize_input` is that step (it re-implements the documented rule of ``QInput``;
the tests check ``run_integer(qg, quantize_input(qg, x))`` equals ``run_integer(qg, x)`` on every node).

**Outputs.** ``"logits_int"`` ``[batch, K]`` (``"logits_int_per_step"`` ``[T, batch, K]`` for a
per-step output node), int64, the output node's integer values (real logits ``= q · scale``, the scale
is stored in the metadata ``statten_hw.logits_scale``). ``with_spikes=True`` adds every LIF node's
spikes (``[T, batch, *shape]``, int64) as ``"spikes:<node>"``.

**Exactness.**

* Conv/Linear/attention products are integer matrix products. The ONNX ``MatMul`` type list includes
  ``int64`` and onnxruntime's CPU provider has that kernel, so the default ``arithmetic="int64"``
  computes them exactly in int64 (convolution as im2col: ``Slice`` of the zero-padded input per
  kernel offset, ``Concat``, one ``MatMul``; grouped convs use a block-diagonal weight matrix, exact
  zeros). ``arithmetic="double"`` instead casts the operands to float64 for ``MatMul`` and back with
  ``Cast`` — exact because every operand is an integer and every partial sum is bounded by
  ``terms · max|a| · max|b| < 2**53``; that bound is derived from ``weight_bits``/``state_bits`` at
  export time and the export refuses (``ValueError``) otherwise. (onnxruntime has no ``Conv`` kernel for
  int64 or double, hence im2col.) Int64 products are checked against ``2**63`` the same way.
* LIF leak: Lava's ``sign(p)·(|p| >> 12)`` with ``p = V·(4096 - dv)`` is ``Div(p, 4096)`` on int64:
  ONNX/onnxruntime integer ``Div`` truncates toward zero (tested on negative values). Saturation is
  ``Clip`` to ``±(2**(state_bits-1) - 1)``, firing ``GreaterOrEqual`` (ternary also ``LessOrEqual``),
  hard reset ``Where``.
* Requantization ``(q·M + 2**(S-1)) >> S`` (arithmetic shift = floor) is a floor division:
  ``Div(Where(a < 0, a - (2**S - 1), a), 2**S)``.
* Max pools (onnxruntime has no int64 ``MaxPool``) run in float64 — exact, every pooled value is an
  integer below ``2**53`` in magnitude (saturated to ``state_bits <= 48``); ONNX's implicit ``-inf``
  padding never wins, like the executor's ``-2**62``.

Run the file with :func:`run_integer_onnx` (onnxruntime CPU, graph optimizations off, via
``onnx_float.ort_session``). The model is checked with ``onnx.checker.check_model(full_check=True)``
and written atomically (a failed export leaves no file).
"""
from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import numpy as np
import torch

from statten_hw.errors import ExportError, UnsupportedLayer
from statten_hw.ir.graph import SHAPE, inputs_by_port, topological_order
from statten_hw.quant.fixed_point import DECAY_BITS, limit
from statten_hw.quant.execute import input_levels
from statten_hw.reports.files import atomic_write_bytes

from .onnx_float import OPSET, SPIKES_PREFIX, ort_session

Q = importlib.import_module("statten_hw.quant.quantize")  # the module: ``statten_hw.quant`` re-exports the function

INPUT_NAME = "input_int"
ARITHMETIC = ("int64", "double")
_EXACT_BITS = {"int64": 63, "double": 53}


def output_name(qgraph: "Q.QuantizedGraph") -> str:
    """``logits_int`` ``[B, K]``, or ``logits_int_per_step`` ``[T, B, K]`` for a per-step output node."""
    return "logits_int_per_step" if qgraph.qop(qgraph.output_node).per_step else "logits_int"


def input_shape(qgraph: "Q.QuantizedGraph", batch_size: int = 1) -> tuple[int, ...]:
    """Static shape of the graph input: ``[B, *shape]`` (direct encoding) or ``[B, T, *shape]`` (events)."""
    op = qgraph.qop(qgraph.input_node)
    lead = (batch_size,) if op.encoding == "direct" else (batch_size, op.timesteps)
    return (*lead, *op.shape)


def quantize_input(qgraph: "Q.QuantizedGraph", x) -> torch.Tensor:
    """The sensor boundary of ``QInput``: `quant.execute.input_levels`, the reference's own (the ONNX
    graph clips its input the same way). Returns int64 in the model input layout — the graph's input."""
    return input_levels(qgraph.qop(qgraph.input_node), torch.as_tensor(x))


class _Builder:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self, arithmetic: str):
        self.nodes, self.inits, self.n = [], [], 0
        self.arithmetic = arithmetic
        self.exact_bits = _EXACT_BITS[arithmetic]
        self._consts: dict = {}

    def fresh(self, hint: str) -> str:
        self.n += 1
        return f"{hint}#{self.n}"

    def const(self, value, dtype=np.int64, hint="c") -> str:
        from onnx import numpy_helper

        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 16 else None
        if key is not None and key in self._consts:
            return self._consts[key]
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(arr, name))
        if key is not None:
            self._consts[key] = name
        return name

    def op(self, op_type: str, inputs, hint: str = "", out: str | None = None, **attrs) -> str:
        from onnx import helper

        out = out or self.fresh(f"{hint or op_type}")
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.fresh(f"{hint}/{op_type}"), **attrs))
        return out

    # --- helpers -------------------------------------------------------------------------------
    def reshape(self, x, shape, hint=""):
        return self.op("Reshape", [x, self.const(list(shape))], hint)

    def transpose(self, x, perm, hint=""):
        return self.op("Transpose", [x], hint, perm=list(perm))

    def clip(self, x, cap, hint=""):
        return self.op("Clip", [x, self.const(-cap), self.const(cap)], hint)

    def slice(self, x, starts, ends, axes, steps=None, hint=""):
        ins = [x, self.const(starts), self.const(ends), self.const(axes)]
        if steps is not None:
            ins.append(self.const(steps))
        return self.op("Slice", ins, hint)

    def check(self, bound: int, what: str, bits: int | None = None):
        bits = self.exact_bits if bits is None else bits
        if bound >= 1 << bits:
            raise ExportError(f"{what}: values up to {bound} (>= 2**{bits}) would not be exact in "
                             f"{'float64' if bits == 53 else 'int64'}; refusing to export")

    def matmul(self, a, b, terms: int, bound_a: int, bound_b: int, hint="", b_const: np.ndarray | None = None):
        """Exact integer ``a @ b`` (``b_const``: a constant right operand, int64 array)."""
        self.check(terms * bound_a * bound_b, f"{hint} matmul ({terms} terms of {bound_a}·{bound_b})")
        if self.arithmetic == "int64":
            rhs = self.const(b_const, hint=f"{hint}.w") if b_const is not None else b
            return self.op("MatMul", [a, rhs], hint)
        from onnx import TensorProto

        da = self.op("Cast", [a], hint, to=TensorProto.DOUBLE)
        if b_const is not None:
            db = self.const(b_const.astype(np.float64), np.float64, hint=f"{hint}.w")
        else:
            db = self.op("Cast", [b], hint, to=TensorProto.DOUBLE)
        return self.op("Cast", [self.op("MatMul", [da, db], hint)], hint, to=TensorProto.INT64)

    def floor_shift(self, a, shift: int, hint=""):
        """``a >> shift`` (arithmetic, i.e. floor division by ``2**shift``) on int64."""
        if shift == 0:
            return a
        d = 1 << shift
        neg = self.op("Less", [a, self.const(0)], hint)
        adj = self.op("Where", [neg, self.op("Sub", [a, self.const(d - 1)], hint), a], hint)
        return self.op("Div", [adj, self.const(d)], hint)

    def requant(self, q, mult: int, shift: int, bound: int, hint=""):
        self.check(bound * mult + (1 << max(shift - 1, 0)), f"{hint} requant", bits=63)
        prod = self.op("Mul", [q, self.const(mult)], hint) if mult != 1 else q
        if shift == 0:
            return prod
        return self.floor_shift(self.op("Add", [prod, self.const(1 << (shift - 1))], hint), shift, hint)

    def maxpool(self, x, kernel, stride, pads, hint=""):
        """Exact max pool of an int64 NCHW tensor (float64 MaxPool; |values| < 2**53 checked by caller)."""
        from onnx import TensorProto

        d = self.op("Cast", [x], hint, to=TensorProto.DOUBLE)
        p = self.op("MaxPool", [d], hint, kernel_shape=list(kernel), strides=list(stride), pads=list(pads))
        return self.op("Cast", [p], hint, to=TensorProto.INT64)

    def lif(self, X, T: int, op: "Q.QLIF", cap: int, hint: str) -> str:
        """Lava's bit-accurate LIF unrolled over axis 0 of ``X`` (``T`` steps)."""
        from onnx import TensorProto

        self.check(cap * (1 << DECAY_BITS), f"{hint} decay", bits=63)
        factor = (1 << DECAY_BITS) - op.dv
        zero, thr = self.const(0), self.const(op.threshold)
        v, spikes = None, []
        for t in range(T):
            x_t = self.slice(X, [t], [t + 1], [0], hint=f"{hint}.t{t}")
            if v is None:  # V starts at 0 and decay(0) = 0
                h = x_t
            else:
                prod = self.op("Mul", [v, self.const(factor)], f"{hint}.t{t}")
                dec = self.op("Div", [prod, self.const(1 << DECAY_BITS)], f"{hint}.t{t}")  # truncates toward 0
                h = self.op("Add", [dec, x_t], f"{hint}.t{t}")
            h = self.clip(h, cap, f"{hint}.t{t}")
            fire = self.op("GreaterOrEqual", [h, thr], f"{hint}.t{t}")
            s = self.op("Cast", [fire], f"{hint}.t{t}", to=TensorProto.INT64)
            if op.ternary:
                neg = self.op("LessOrEqual", [h, self.const(-op.threshold)], f"{hint}.t{t}")
                s = self.op("Sub", [s, self.op("Cast", [neg], f"{hint}.t{t}", to=TensorProto.INT64)], f"{hint}.t{t}")
                fire = self.op("Or", [fire, neg], f"{hint}.t{t}")
            if t + 1 < T:
                v = self.op("Where", [fire, zero, h], f"{hint}.t{t}")
            spikes.append(s)
        return spikes[0] if T == 1 else self.op("Concat", spikes, hint, axis=0)


def _conv(b: _Builder, x, op: "Q.QConv2d", T, B, in_shape, out_shape, bound, hint):
    C, H, W = in_shape
    O, Ho, Wo = out_shape
    w = np.asarray(op.weight, dtype=np.int64)
    _, Cg, kh, kw = w.shape
    (sh, sw), (ph, pw), G = op.stride, op.padding, op.groups
    z = b.reshape(x, [T * B, C, H, W], hint)
    if ph or pw:
        z = b.op("Pad", [z, b.const([0, 0, ph, pw, 0, 0, ph, pw]), b.const(0)], hint)
    patches = []
    for i in range(kh):
        for j in range(kw):
            if (kh, kw, sh, sw) == (1, 1, 1, 1):
                patches.append(z)
            else:
                patches.append(b.slice(z, [i, j], [i + sh * (Ho - 1) + 1, j + sw * (Wo - 1) + 1], [2, 3],
                                       [sh, sw], hint=hint))
    cols = patches[0] if len(patches) == 1 else b.op("Concat", patches, hint, axis=1)  # [N, kh*kw*C, Ho, Wo]
    cols = b.reshape(cols, [T * B, kh * kw * C, Ho * Wo], hint)
    # weight matrix [O, kh*kw*C], column (i*kw + j)*C + c; block-diagonal over groups (exact zeros)
    wmat = np.zeros((O, kh * kw, C), dtype=np.int64)
    og = O // G
    for g in range(G):
        blk = w[g * og:(g + 1) * og]  # [og, Cg, kh, kw]
        wmat[g * og:(g + 1) * og, :, g * Cg:(g + 1) * Cg] = blk.transpose(0, 2, 3, 1).reshape(og, kh * kw, Cg)
    wmat = wmat.reshape(O, kh * kw * C)
    # [O, K] @ [N, K, L]: the constant is the left operand; MatMul broadcasts it over N
    terms = Cg * kh * kw
    b.check(terms * int(np.abs(w).max(initial=0)) * bound, f"{hint} conv ({terms} terms)")
    if b.arithmetic == "int64":
        y = b.op("MatMul", [b.const(wmat, hint=f"{hint}.w"), cols], hint)
    else:
        from onnx import TensorProto

        dc = b.op("Cast", [cols], hint, to=TensorProto.DOUBLE)
        y = b.op("MatMul", [b.const(wmat.astype(np.float64), np.float64, hint=f"{hint}.w"), dc], hint)
        y = b.op("Cast", [y], hint, to=TensorProto.INT64)
    y = b.op("Add", [y, b.const(np.asarray(op.bias, dtype=np.int64).reshape(O, 1), hint=f"{hint}.b")], hint)
    return b.reshape(y, [T, B, O, Ho, Wo], hint)


def _heads(b: _Builder, z, T, B, C, H, W, heads, hint):
    """``[T,B,C,H,W] -> [T,B,h,N,d]`` (executor's ``_heads``)."""
    z = b.reshape(z, [T, B, C, H * W], hint)
    z = b.transpose(z, [0, 1, 3, 2], hint)
    z = b.reshape(z, [T, B, H * W, heads, C // heads], hint)
    return b.transpose(z, [0, 1, 3, 2, 4], hint)


def _dvs_pool(b: _Builder, z, lead_shape, N, d, hint):
    z = b.reshape(z, [-1, 1, N, d], hint)
    z = b.maxpool(z, (3, 3), (1, 1), (1, 1, 1, 1), hint)
    return b.reshape(z, [*lead_shape, N, d], hint)


def _attention(b: _Builder, ins, op: "Q.QAttention", T, B, shape, bounds, cap, hint):
    bq, bk, bv = bounds
    if op.mode == "SSA":
        N, C = shape
        h, d = op.heads, C // op.heads
        q, k, v = (b.transpose(b.reshape(ins[n], [T, B, N, h, d], hint), [0, 1, 3, 2, 4], hint) for n in "qkv")
        kt = b.transpose(k, [0, 1, 2, 4, 3], hint)
        qk = b.matmul(q, kt, d, bq, bk, hint)
        out = b.clip(b.matmul(qk, v, N, d * bq * bk, bv, hint), cap, hint)
        out = b.transpose(out, [0, 1, 3, 2, 4], hint)
        return b.reshape(out, [T, B, N, C], hint), cap
    C, H, W = shape
    h, d, N = op.heads, C // op.heads, H * W
    q, k, v = (_heads(b, ins[n], T, B, C, H, W, h, hint) for n in "qkv")
    if op.mode == "SDSA":
        b.check(bk * bv, f"{hint} K*V", bits=63)
        kv = b.op("Mul", [k, v], hint)
        if op.dvs:
            kv = _dvs_pool(b, kv, [T, B, h], N, d, hint)
            b.check(bk * bv, f"{hint} DVS pool", bits=53)
        kv = b.clip(b.op("ReduceSum", [kv, b.const([3])], hint, keepdims=1), cap, hint)  # [T,B,h,1,d]
        kv = b.lif(kv, T, op.kv_lif, cap, f"{hint}.kv_lif")
        out = b.op("Mul", [q, kv], hint)
        if op.dvs:
            out = _dvs_pool(b, out, [T, B, h], N, d, hint)
        out = b.transpose(out, [0, 1, 2, 4, 3], hint)
        return b.reshape(out, [T, B, C, H, W], hint), bq
    if op.mode not in ("STAtten", "A2OS2A", "T_STAtten", "N_STAtten"):
        raise UnsupportedLayer(hint, "attention", f"no ONNX integer rule for attention mode {op.mode!r}")
    blk = op.block_size
    if T % blk:
        raise UnsupportedLayer(hint, "attention", f"T={T} is not a multiple of block_size {blk}")
    nb = T // blk
    if op.mode in ("STAtten", "A2OS2A"):
        def group(z):  # [T,B,h,N,d] -> [nb,B,h,blk*N,d]
            z = b.reshape(z, [nb, blk, B, h, N, d], hint)
            return b.reshape(b.transpose(z, [0, 2, 3, 1, 4, 5], hint), [nb, B, h, blk * N, d], hint)
        qg, kg, vg = group(q), group(k), group(v)
        kv = b.matmul(b.transpose(kg, [0, 1, 2, 4, 3], hint), vg, blk * N, bk, bv, hint)
        out = b.matmul(qg, kv, d, bq, blk * N * bk * bv, hint)  # [nb,B,h,blk*N,d]
        out = b.reshape(out, [nb, B, h, blk, N, d], hint)
        out = b.reshape(b.transpose(out, [0, 3, 1, 2, 4, 5], hint), [T, B, h, N, d], hint)
    else:
        def per_token(z):  # [T,B,h,N,d] -> [nb,B,h,N,blk,d]
            return b.transpose(b.reshape(z, [nb, blk, B, h, N, d], hint), [0, 2, 3, 4, 1, 5], hint)
        qt, kt, vt = per_token(q), per_token(k), per_token(v)
        if op.mode == "T_STAtten":
            kv = b.matmul(b.transpose(kt, [0, 1, 2, 3, 5, 4], hint), vt, blk, bk, bv, hint)
            out = b.matmul(qt, kv, d, bq, blk * bk * bv, hint)
        else:
            qk = b.matmul(qt, b.transpose(kt, [0, 1, 2, 3, 5, 4], hint), d, bq, bk, hint)
            out = b.matmul(qk, vt, blk, d * bq * bk, bv, hint)
        out = b.reshape(b.transpose(out, [0, 4, 1, 2, 3, 5], hint), [T, B, h, N, d], hint)
    out = b.clip(out, cap, hint)
    out = b.transpose(out, [0, 1, 2, 4, 3], hint)  # [T,B,h,d,N]
    return b.reshape(out, [T, B, C, H, W], hint), cap


def build_integer_onnx(qgraph: "Q.QuantizedGraph", batch_size: int = 1, *, with_spikes: bool = False,
                       arithmetic: str = "int64", opset: int = OPSET):
    """The ``onnx.ModelProto`` of :func:`export_integer_onnx` (checked, not written)."""
    import onnx
    from onnx import TensorProto, helper

    if not isinstance(qgraph, Q.QuantizedGraph):
        raise TypeError(f"export_integer_onnx needs a QuantizedGraph, got {type(qgraph).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if arithmetic not in ARITHMETIC:
        raise ValueError(f"arithmetic must be one of {ARITHMETIC}, got {arithmetic!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < OPSET:
        raise ValueError(f"opset must be an int >= {OPSET}, got {opset!r}")
    g, B = qgraph.graph, batch_size
    cap = limit(qgraph.state_bits)
    b = _Builder(arithmetic)
    b.check(cap, "state_bits", bits=53)  # max pools run in float64
    val, steps, bound = {}, {}, {}
    outputs = []
    for name in topological_order(g):
        op = g.nodes[name][Q.QOP]
        shape = tuple(g.nodes[name][SHAPE])
        src = inputs_by_port(g, name)
        ins = {p: val[s] for p, s in src.items()}
        T = max((steps[s] for s in src.values()), default=None)
        x_shape = tuple(g.nodes[src["x"]][SHAPE]) if "x" in src else None
        bx = bound[src["x"]] if "x" in src else None
        if isinstance(op, Q.QInput):
            T = op.timesteps
            low, bnd = op.levels
            # the sensor boundary, in the file itself: integer levels beyond the input's bits are clipped
            # as the reference clips them (DVS event counts above 255, for example)
            x = b.op("Clip", [INPUT_NAME, b.const(low), b.const(bnd)], name)
            if op.encoding == "direct":
                y = b.op("Expand", [b.op("Unsqueeze", [x, b.const([0])], name)] + [b.const([T, B, *op.shape])], name)
            else:
                y = b.transpose(x, [1, 0, *range(2, 2 + len(op.shape))], name)
        elif isinstance(op, Q.QConv2d):
            y = b.clip(_conv(b, ins["x"], op, T, B, x_shape, shape, bx, name), cap, name)
            bnd = cap
        elif isinstance(op, Q.QLinear):
            w = np.asarray(op.weight, dtype=np.int64)
            b.check(w.shape[1] * int(np.abs(w).max(initial=0)) * bx, f"{name} linear")
            y = b.matmul(ins["x"], None, w.shape[1], 1, 1, name, b_const=np.ascontiguousarray(w.T))
            y = b.clip(b.op("Add", [y, b.const(np.asarray(op.bias, dtype=np.int64), hint=f"{name}.b")], name), cap, name)
            bnd = cap
        elif isinstance(op, Q.QLIF):
            y, bnd = b.lif(ins["x"], T, op, cap, name), 1
        elif isinstance(op, Q.QReLU):
            y, bnd = b.op("Clip", [ins["x"], b.const(0)], name), bx
        elif isinstance(op, Q.QMaxPool2d):
            C, H, W = x_shape
            z = b.reshape(ins["x"], [T * B, C, H, W], name)
            (ph, pw) = op.padding
            z = b.maxpool(z, op.kernel, op.stride, (ph, pw, ph, pw), name)
            y, bnd = b.reshape(z, [T, B, *shape], name), bx
            b.check(bx, f"{name} max pool", bits=53)
        elif isinstance(op, Q.QFlatten):
            C = x_shape[0]
            z = b.reshape(ins["x"], [T, B, C, -1], name)
            y, bnd = (b.transpose(z, [0, 1, 3, 2], name) if op.channels_last else z), bx
        elif isinstance(op, Q.QMean):
            z, n = ins["x"], 1
            if op.axes:
                axes = list(range(2 + op.axes[0], 2 + op.axes[-1] + 1))
                n = math.prod(x_shape[a - 2] for a in axes)
                z = b.op("ReduceSum", [z, b.const(axes)], name, keepdims=0)
            if op.time:
                n *= T
                z = b.op("ReduceSum", [z, b.const([0])], name, keepdims=1)
                T = 1
            b.check(n * bx, f"{name} sum", bits=63)
            if op.mult is not None:
                z = b.requant(z, op.mult, op.shift, n * bx, name)
            y, bnd = b.clip(z, cap, name), cap
        elif isinstance(op, Q.QAdd):
            lhs = b.requant(ins["lhs"], *op.lhs_rq, bound[src["lhs"]], name)
            rhs = b.requant(ins["rhs"], *op.rhs_rq, bound[src["rhs"]], name)
            y, bnd = b.clip(b.op("Add", [lhs, rhs], name), cap, name), cap
        elif isinstance(op, Q.QMul):
            b.check(bound[src["lhs"]] * bound[src["rhs"]], f"{name} product", bits=63)
            y, bnd = b.clip(b.op("Mul", [ins["lhs"], ins["rhs"]], name), cap, name), cap
        elif isinstance(op, Q.QAttention):
            y, bnd = _attention(b, ins, op, T, B, shape, [bound[src[p]] for p in "qkv"], cap, name)
        elif isinstance(op, Q.QOutput):
            y, bnd = ins["x"], bx
            if not op.per_step:
                if T != 1:
                    raise UnsupportedLayer(name, "output", f"a non-per-step output needs T = 1, got {T}")
                y = b.op("Squeeze", [y, b.const([0])], name)
            oname = output_name(qgraph)
            b.op("Identity", [y], name, out=oname)
            out_shape = [T, B, *shape] if op.per_step else [B, *shape]
            outputs.insert(0, helper.make_tensor_value_info(oname, TensorProto.INT64, out_shape))
        else:
            raise UnsupportedLayer(name, type(op).__name__, "no ONNX integer export rule")
        val[name], steps[name], bound[name] = y, T, bnd
        if with_spikes and isinstance(op, Q.QLIF):
            sname = SPIKES_PREFIX + name
            b.op("Identity", [y], name, out=sname)
            outputs.append(helper.make_tensor_value_info(sname, TensorProto.INT64, [T, B, *shape]))
    inp = helper.make_tensor_value_info(INPUT_NAME, TensorProto.INT64, list(input_shape(qgraph, B)))
    graph = helper.make_graph(b.nodes, "statten_hw_integer", [inp], outputs, initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="statten-hw")
    source = qgraph.qop(qgraph.input_node)
    meta = {
        "statten_hw.kind": "integer",
        "statten_hw.weight_bits": str(qgraph.weight_bits),
        "statten_hw.state_bits": str(qgraph.state_bits),
        "statten_hw.arithmetic": arithmetic,
        "statten_hw.logits_scale": repr(qgraph.scale(qgraph.output_node)),
        "statten_hw.input": json.dumps({"scale": source.scale, "bits": source.bits, "signed": source.signed,
                                        "rule": "input_int = clip(round(x / scale)) computed outside the graph"}),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    return model


def export_integer_onnx(qgraph: "Q.QuantizedGraph", path, batch_size: int = 1, *, with_spikes: bool = False,
                        arithmetic: str = "int64", opset: int = OPSET) -> Path:
    """Write the integer network ``qgraph`` as ONNX at ``path`` (module docstring); returns ``Path(path)``.

    Input ``"input_int"`` int64 ``[batch_size, *input layout]`` (from :func:`quantize_input`); output
    :func:`output_name` (int64), plus ``"spikes:<LIF node>"`` with ``with_spikes=True``. ``arithmetic``:
    ``"int64"`` (default) or ``"double"`` for the matrix products (exactness bound checked, else
    ``ValueError``). A node with no rule raises ``UnsupportedLayer``. Nothing is written on failure.
    """
    model = build_integer_onnx(qgraph, batch_size, with_spikes=with_spikes, arithmetic=arithmetic, opset=opset)
    return atomic_write_bytes(path, model.SerializeToString())


def run_integer_onnx(model, x_int) -> dict[str, np.ndarray]:
    """Run an exported file (path or bytes) with onnxruntime on the quantized input ``x_int`` (use
    :func:`quantize_input`); returns every output by name."""
    session = ort_session(model)
    if isinstance(x_int, torch.Tensor):
        x_int = x_int.detach().cpu().numpy()
    x_int = np.asarray(x_int)
    if not np.issubdtype(x_int.dtype, np.integer):
        raise TypeError("run_integer_onnx takes the quantized integer input (see quantize_input)")
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {INPUT_NAME: np.ascontiguousarray(x_int, dtype=np.int64)})))
