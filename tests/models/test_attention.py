"""Attention products: block structure and order-of-product equivalences derived from the definitions."""
import pytest
import torch

from statten_hw.models.attention import n_statten, statten, t_statten


def _spikes(seed, T=4, B=2, h=2, N=5, d=3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(T, B, h, N, d, generator=g) < 0.4).float() for _ in range(3)]


def _naive_block(q, k, v, block, scale):
    """Direct definition: for each block, sum over its steps and tokens of k_j v_j, then q_i times it."""
    out = torch.zeros_like(q)
    for start in range(0, q.shape[0], block):
        sl = slice(start, start + block)
        kv = torch.einsum("tbhnd,tbhne->bhde", k[sl], v[sl]) * scale
        out[sl] = torch.einsum("tbhnd,bhde->tbhne", q[sl], kv)
    return out


@pytest.mark.parametrize("block", [1, 2, 4])
def test_statten_equals_blockwise_definition(block):
    q, k, v = _spikes(block)
    assert torch.equal(statten(q, k, v, block, 0.125), _naive_block(q, k, v, block, 0.125))


@pytest.mark.parametrize("block", [1, 2, 4])
def test_cross_time_orders_agree_exactly(block):
    # With a power-of-two scale every intermediate is an exact float, so Q(KᵀV) == (QKᵀ)V.
    q, k, v = _spikes(10 + block)
    assert torch.equal(t_statten(q, k, v, block, 0.25), n_statten(q, k, v, block, 0.25))


def test_cross_time_attention_stays_within_its_token():
    q, k, v = _spikes(3)
    base = t_statten(q, k, v, 2, 1.0)
    k2 = k.clone()
    k2[:, :, :, 1] = 1 - k2[:, :, :, 1]  # change token 1 only
    changed = t_statten(q, k2, v, 2, 1.0)
    keep = [n for n in range(q.shape[3]) if n != 1]
    assert torch.equal(base[:, :, :, keep], changed[:, :, :, keep])
