"""Spiking self-attention as Lava processes, with STAtten's B-step block buffer.

`SpikingAttention` (STAtten, A2OS2A, T_STAtten, N_STAtten, SSA) holds Q, K, V of the current block
of ``block_size`` steps; when the block's last step arrives it computes every head's integer counts
and emits them one step at a time, so its output for step ``t`` leaves ``B - 1`` steps after its
input for ``t`` did (the latency `schedule` adds). Per head, with ``d = C / heads`` and the block's
rows ``(t, n)``:

* STAtten, A2OS2A: ``Y = Q · (Kᵀ V)`` over the block's ``B·N`` rows;
* T_STAtten: per token n, ``Y_n = Q_n · (K_nᵀ V_n)`` over the block's B steps;
* N_STAtten: per token n, ``Y_n = (Q_n K_nᵀ) · V_n``;
* SSA (Spikformer, B = 1, tokens ``[N, C]``): ``Y = (Q Kᵀ) · V``.

The scale ``sf`` lives in the graph's scales (the following LIF threshold), so the counts are exact
integers, saturated to ``state_bits``. SDSA (SDT v1) is three processes around a real Lava neuron:
`SdsaKV` sends ``sat(Σ_N K ⊙ V)`` per channel, a ``LIFReset`` turns it into spikes, and `SdsaGate`
sends ``Q ⊙ spikes``; with ``dvs`` both max-pool 3×3 over each head's (token, channel) plane as the
official DVS model does.
"""
from __future__ import annotations

import numpy as np

from .graded import GradedProcess, PyGradedModel, graded_in, model_for, sat
from .processes import max_pool


def _t(z: np.ndarray) -> np.ndarray:
    """Swap the last two axes."""
    return np.swapaxes(z, -1, -2)


def split_heads(z: np.ndarray, heads: int) -> np.ndarray:
    """``[..., C, H, W]`` maps to ``[..., heads, N, d]`` (channel ``head·d + j``, token ``h·W + w``)."""
    c, n = z.shape[-3], z.shape[-2] * z.shape[-1]
    return _t(z.reshape(*z.shape[:-3], heads, c // heads, n))


def merge_heads(y: np.ndarray, shape: tuple) -> np.ndarray:
    """Inverse of `split_heads` for maps: ``[..., heads, N, d]`` to ``[..., C, H, W]``."""
    return _t(y).reshape(*y.shape[:-3], *shape)


def split_token_heads(z: np.ndarray, heads: int) -> np.ndarray:
    """``[..., N, C]`` tokens to ``[..., heads, N, d]``."""
    n, c = z.shape[-2:]
    return np.swapaxes(z.reshape(*z.shape[:-2], n, heads, c // heads), -2, -3)


def merge_token_heads(y: np.ndarray) -> np.ndarray:
    h, n, d = y.shape[-3:]
    return np.swapaxes(y, -2, -3).reshape(*y.shape[:-3], n, h * d)


def block_product(mode: str, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Counts of one block: ``q, k, v`` are ``[B, heads, N, d]``; returns the same shape."""
    if mode in ("STAtten", "A2OS2A"):
        B, h, N, d = q.shape
        rows = [np.swapaxes(z, 0, 1).reshape(h, B * N, d) for z in (q, k, v)]  # row index t·N + n
        y = rows[0] @ (_t(rows[1]) @ rows[2])
        return np.swapaxes(y.reshape(h, B, N, d), 0, 1)
    qn, kn, vn = (z.transpose(1, 2, 0, 3) for z in (q, k, v))  # [h, N, B, d]: each token's block steps
    if mode == "T_STAtten":
        y = qn @ (_t(kn) @ vn)
    elif mode == "N_STAtten":
        y = (qn @ _t(kn)) @ vn
    else:
        raise ValueError(f"no block-wise product for attention mode {mode!r}")
    return y.transpose(2, 0, 1, 3)


class SpikingAttention(GradedProcess):
    """``mode``, ``heads``, ``block_size``, ``state_bits``; ports q, k, v of one shape."""

    PORTS = ("q", "k", "v")


@model_for(SpikingAttention)
class PySpikingAttentionModel(PyGradedModel):
    q = graded_in()
    k = graded_in()
    v = graded_in()

    def __init__(self, proc_params):
        super().__init__(proc_params)
        p = self.proc_params
        self.block = p["block_size"]
        self.buffer: dict[str, list] = {port: [None] * self.block for port in "qkv"}
        self.results = np.zeros((self.block, *self.out_shape), np.int64)

    def run_spk(self):
        t = self.local_step()
        for port in "qkv":
            self.buffer[port][t % self.block] = self.read(port)
        if t >= 0 and t % self.block == self.block - 1:
            self.results = self._compute(*(np.stack(self.buffer[port]) for port in "qkv"))
        t_out = t - (self.block - 1)
        self.send(self.results[t_out % self.block] if t_out >= 0 else np.zeros_like(self.results[0]))

    def _compute(self, q, k, v) -> np.ndarray:
        """``[B, *shape]`` block of q, k, v to ``[B, *shape]`` saturated counts."""
        p = self.proc_params
        if p["mode"] == "SSA":
            qh, kh, vh = (split_token_heads(z, p["heads"]) for z in (q, k, v))
            return sat(merge_token_heads((qh @ _t(kh)) @ vh), p["state_bits"])
        qh, kh, vh = (split_heads(z, p["heads"]) for z in (q, k, v))
        return sat(merge_heads(block_product(p["mode"], qh, kh, vh), self.out_shape), p["state_bits"])


def dvs_pool(z: np.ndarray) -> np.ndarray:
    """3×3 stride-1 max pool (padding never wins) over the last two axes (token, channel)."""
    return max_pool(z, (3, 3), (1, 1), (1, 1))


class SdsaKV(GradedProcess):
    """``heads``, ``dvs``, ``state_bits``; ports k, v (maps ``[C, H, W]``), output ``[C]``."""

    PORTS = ("k", "v")


@model_for(SdsaKV)
class PySdsaKVModel(PyGradedModel):
    k = graded_in()
    v = graded_in()

    def run_spk(self):
        p = self.proc_params
        kv = split_heads(self.read("k"), p["heads"]) * split_heads(self.read("v"), p["heads"])  # [h, N, d]
        if p["dvs"]:
            kv = dvs_pool(kv)
        self.send(sat(kv.sum(-2).reshape(-1), p["state_bits"]))  # channel c = head·d + j


class SdsaGate(GradedProcess):
    """``heads``, ``dvs``; ports q (maps) and kv (the K⊙V neurons' spikes ``[C]``)."""

    PORTS = ("q", "kv")


@model_for(SdsaGate)
class PySdsaGateModel(PyGradedModel):
    q = graded_in()
    kv = graded_in()

    def run_spk(self):
        p = self.proc_params
        q = split_heads(self.read("q"), p["heads"])  # [h, N, d]
        gate = self.read("kv").reshape(q.shape[0], 1, q.shape[-1])
        out = q * gate
        if p["dvs"]:
            out = dvs_pool(out)
        self.send(merge_heads(out, self.out_shape))


ATTENTION_MODELS = {SpikingAttention: PySpikingAttentionModel, SdsaKV: PySdsaKVModel, SdsaGate: PySdsaGateModel}
