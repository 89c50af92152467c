"""Structural connectivity of one projection: which target elements one event reaches, and with what weight.

Every synaptic projection of the deployment graph is one of four kinds; each answers three questions
about the same connectivity, so the fast and the detailed engine cannot disagree on it:

* ``count(E)``: for event indicators ``E [S, *in_shape]``, how many events reach each target element
  (``[S, *out_shape]``): the synaptic operations per target, summed over events;
* ``reach(I)``: for target indicators ``I [K, *out_shape]``, how many targets in ``I`` each input element
  reaches (``[K, *in_shape]``): ``> 0`` says an event must be sent to the core holding ``I``;
* ``targets(e)``: the flat target indices and integer weights of input element ``e``, one by one: the
  detailed engine's definition of what a spike does.

Connectivity is structural (a stored weight is a synapse even when it is 0), as the mapper stores it.
Attention, as the mapper counts it: the neuron of (token, channel) receives its token's q, k and v of
its head, ``d`` inputs each (its row of Q and the K, V rows that update the head's accumulators).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

F64 = torch.float64


@dataclass(frozen=True)
class ConvSynapses:
    """A conv2d: weight ``[C_out, C_in/groups, kh, kw]`` over ``in_shape = (C_in, H, W)``."""

    weight: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def _window(self, like: torch.Tensor) -> torch.Tensor:
        """One all-ones ``kh x kw`` window per group: with every weight a synapse, a target's count
        depends only on its group, so channels are summed first and the window slid once per group."""
        return torch.ones((self.groups, 1, *self.weight.shape[2:]), dtype=like.dtype, device=like.device)

    def count(self, E: torch.Tensor) -> torch.Tensor:
        S, C_in, H, W = E.shape
        G, C_out = self.groups, self.out_shape[0]
        per_group = F.conv2d(E.reshape(S, G, C_in // G, H, W).sum(2), self._window(E), stride=self.stride,
                             padding=self.padding, groups=G)
        _, _, Ho, Wo = per_group.shape
        return per_group[:, :, None].expand(S, G, C_out // G, Ho, Wo).reshape(S, C_out, Ho, Wo)

    def reach(self, I: torch.Tensor) -> torch.Tensor:
        (C_in, H, W), (sh, sw), (ph, pw) = self.in_shape, self.stride, self.padding
        kh, kw = self.weight.shape[2:]
        K, C_out, Ho, Wo = I.shape
        G = self.groups
        pad_out = (H - ((Ho - 1) * sh - 2 * ph + kh), W - ((Wo - 1) * sw - 2 * pw + kw))
        per_group = F.conv_transpose2d(I.reshape(K, G, C_out // G, Ho, Wo).sum(2), self._window(I), stride=self.stride,
                                       padding=self.padding, output_padding=pad_out, groups=G)
        return per_group[:, :, None].expand(K, G, C_in // G, H, W).reshape(K, C_in, H, W)

    def targets(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        C_in, H, W = self.in_shape
        C_out, Ho, Wo = self.out_shape
        c, r = divmod(e, H * W)
        h, w = divmod(r, W)
        per_group_in, per_group_out = C_in // self.groups, C_out // self.groups
        group, c_in_group = divmod(c, per_group_in)
        outs = np.arange(group * per_group_out, (group + 1) * per_group_out)
        idx, wts = [], []
        kh, kw = self.weight.shape[2:]
        for i in range(kh):
            oh, rem_h = divmod(h + self.padding[0] - i, self.stride[0])
            if rem_h or not 0 <= oh < Ho:
                continue
            for j in range(kw):
                ow, rem_w = divmod(w + self.padding[1] - j, self.stride[1])
                if rem_w or not 0 <= ow < Wo:
                    continue
                idx.append(outs * Ho * Wo + oh * Wo + ow)
                wts.append(self.weight[outs, c_in_group, i, j])
        if not idx:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(idx), np.concatenate(wts).astype(np.int64)


@dataclass(frozen=True)
class LinearSynapses:
    """A linear layer on the last axis: weight ``[C_out, C_in]``; leading axes (tokens) pass through."""

    weight: np.ndarray
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def count(self, E: torch.Tensor) -> torch.Tensor:
        return E.sum(-1, keepdim=True).expand(*E.shape[:-1], self.weight.shape[0]).contiguous()

    def reach(self, I: torch.Tensor) -> torch.Tensor:
        return I.sum(-1, keepdim=True).expand(*I.shape[:-1], self.weight.shape[1]).contiguous()

    def targets(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        c_out, c_in = self.weight.shape
        row, c = divmod(e, c_in)
        return row * c_out + np.arange(c_out), self.weight[:, c].astype(np.int64)


@dataclass(frozen=True)
class AttentionSynapses:
    """q, k or v spikes into an attention layer: each reaches the ``d`` neurons of its token and head.

    ``tokens_first``: Spikformer's ``[N, C]`` layout; otherwise ``[C, H, W]`` (channels first)."""

    heads: int
    in_shape: tuple[int, ...]
    tokens_first: bool

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.in_shape

    def _head_sum(self, X: torch.Tensor) -> torch.Tensor:
        S = X.shape[0]
        if self.tokens_first:
            N, C = self.in_shape
            g = X.reshape(S, N, self.heads, C // self.heads)
            return g.sum(-1, keepdim=True).expand_as(g).reshape(X.shape)
        C = self.in_shape[0]
        g = X.reshape(S, self.heads, C // self.heads, -1)
        return g.sum(2, keepdim=True).expand_as(g).reshape(X.shape)

    count = reach = _head_sum

    def targets(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        d = (self.in_shape[-1] if self.tokens_first else self.in_shape[0]) // self.heads
        if self.tokens_first:
            n, c = divmod(e, self.in_shape[-1])
            idx = n * self.in_shape[-1] + (c // d) * d + np.arange(d)
        else:
            plane = math.prod(self.in_shape[1:])
            c, pos = divmod(e, plane)
            idx = ((c // d) * d + np.arange(d)) * plane + pos
        return idx, np.ones(d, np.int64)


@dataclass(frozen=True)
class ElementwiseSynapses:
    """A value delivered to the element of the same index (residual inputs, identity inputs)."""

    in_shape: tuple[int, ...]

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.in_shape

    def count(self, E: torch.Tensor) -> torch.Tensor:
        return E

    reach = count

    def targets(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        return np.array([e]), np.ones(1, np.int64)


Synapses = ConvSynapses | LinearSynapses | AttentionSynapses | ElementwiseSynapses


def fan_out(syn: Synapses) -> torch.Tensor:
    """Targets of every input element (``[*in_shape]``): the reach of all targets at once."""
    return syn.reach(torch.ones((1, *syn.out_shape), dtype=F64))[0]
