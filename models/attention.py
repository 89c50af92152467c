"""Spiking self-attention of the SDT/STAtten backbone (``module/ms_conv.py``, ``MS_SSA_Conv``).

Every mode takes head-split tensors ``q, k, v`` of shape ``[T, B, h, N, d]`` and returns the
same shape. The official operation order is kept exactly (it decides ties at the threshold):

* ``STAtten`` (block-wise spatio-temporal): group ``B_blk`` consecutive steps, token order
  ``(t_in_block, n)``; ``KV = Kᵀ V`` (integer counts), ``KV * sf``, then ``Q · KV``.
* ``SDSA`` (SDT v1): ``Q ⊙ LIF_0.5(Σ_N K ⊙ V)``; no scale.
* ``T_STAtten`` (cross-time, per token): inside a block, for every token n,
  ``Q_n · ((K_nᵀ V_n) * sf)`` with ``K_n, V_n`` of shape ``[B_blk, d]``; cost ``T·N·d²``.
* ``N_STAtten`` (cross-token order, per token): ``((Q_n K_nᵀ) * sf) · V_n``, a ``B_blk × B_blk``
  score per token; cost ``T·B_blk·N·d``. Same exact value as T_STAtten, other product order.
* ``A2OS2A``: binary Q, ReLU K, ternary V, ``SN(Q · (Kᵀ V) * sf)`` block-wise like STAtten.

``sf`` follows STAtten: ``1/H`` for static input, ``1/(H²·B_blk)`` for DVS input.
"""
from __future__ import annotations

import torch


def _group(z: torch.Tensor, block: int) -> torch.Tensor:
    """``[T,B,h,N,d] -> [T/block, B, h, block*N, d]`` with token index ``t_in_block*N + n``."""
    T, B, h, N, d = z.shape
    nb = T // block
    return z.view(nb, block, B, h, N, d).permute(0, 2, 3, 1, 4, 5).reshape(nb, B, h, block * N, d)


def _ungroup(z: torch.Tensor, T: int, block: int) -> torch.Tensor:
    nb, B, h, _, d = z.shape
    N = z.shape[3] // block
    return z.reshape(nb, B, h, block, N, d).permute(0, 3, 1, 2, 4, 5).reshape(T, B, h, N, d)


def statten(q, k, v, block: int, scale: float) -> torch.Tensor:
    """Block-wise STAtten product (official vectorised form, bit-exact with it)."""
    T = q.shape[0]
    kv = torch.matmul(_group(k, block).transpose(-2, -1), _group(v, block)) * scale
    return _ungroup(torch.matmul(_group(q, block), kv), T, block)


def _per_token(z: torch.Tensor, block: int) -> torch.Tensor:
    """``[T,B,h,N,d] -> [T/block, B, h, N, block, d]``: the block's steps of each token."""
    T, B, h, N, d = z.shape
    return z.view(T // block, block, B, h, N, d).permute(0, 2, 3, 4, 1, 5)


def _from_per_token(z: torch.Tensor) -> torch.Tensor:
    nb, B, h, N, block, d = z.shape
    return z.permute(0, 4, 1, 2, 3, 5).reshape(nb * block, B, h, N, d)


def t_statten(q, k, v, block: int, scale: float) -> torch.Tensor:
    """Cross-time attention per token: ``Q_n · ((K_nᵀ V_n) * sf)``."""
    kv = torch.matmul(_per_token(k, block).transpose(-2, -1), _per_token(v, block)) * scale
    return _from_per_token(torch.matmul(_per_token(q, block), kv))


def n_statten(q, k, v, block: int, scale: float) -> torch.Tensor:
    """Cross-time attention per token, score first: ``((Q_n K_nᵀ) * sf) · V_n``."""
    qk = torch.matmul(_per_token(q, block), _per_token(k, block).transpose(-2, -1)) * scale
    return _from_per_token(torch.matmul(qk, _per_token(v, block)))


BLOCKWISE_PRODUCTS = {"STAtten": statten, "A2OS2A": statten, "T_STAtten": t_statten, "N_STAtten": n_statten}
