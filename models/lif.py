"""The spiking neuron of every official spiking transformer.

spikingjelly 0.0.0.0.12 ``MultiStepLIFNode(tau=2.0, decay_input=True, v_reset=0.0)``, forward pass:

    h[t] = v[t-1] + (x[t] - v[t-1]) * 0.5      # charge; this exact expression is bit-exact with it
    s[t] = 1 if h[t] >= v_th else 0            # a tie spikes
    v[t] = h[t] * (1 - s[t])                   # hard reset to 0

with ``v[-1] = 0`` on every call (the official scripts reset the network after each batch). The
backward pass uses spikingjelly's default surrogate, ``Sigmoid(alpha=4)``, so models built here can
be trained as the official ones are.
"""
from __future__ import annotations

import torch
from torch import nn

SURROGATE_ALPHA = 4.0


class _HeavisideSigmoidGrad(torch.autograd.Function):
    """Heaviside step forward (``x >= 0``), derivative of ``sigmoid(alpha * x)`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        sig = torch.sigmoid(SURROGATE_ALPHA * x)
        return grad_output * SURROGATE_ALPHA * sig * (1 - sig)


def spike_fn(x: torch.Tensor) -> torch.Tensor:
    return _HeavisideSigmoidGrad.apply(x)


class MultiStepLIF(nn.Module):
    """Leaky integrate-and-fire over a time-major input ``[T, ...]``; returns spikes ``[T, ...]``.

    The reset is detached from the graph (``detach_reset=True`` in the official code).
    """

    def __init__(self, v_threshold: float = 1.0):
        super().__init__()
        self.v_threshold = float(v_threshold)

    def extra_repr(self) -> str:
        return f"v_threshold={self.v_threshold}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(x[0])
        spikes = []
        for x_t in x:
            h = v + (x_t - v) * 0.5
            s = spike_fn(h - self.v_threshold)
            v = h * (1.0 - s.detach())
            spikes.append(s)
        return torch.stack(spikes)


class MultiStepTernary(nn.Module):
    """Ternary LIF used by A2OS2A for V: fires +1 at ``h >= v_th`` and -1 at ``h <= -v_th``.

    Same charge and hard reset as :class:`MultiStepLIF`; the output takes values in {-1, 0, 1}.
    """

    def __init__(self, v_threshold: float = 1.0):
        super().__init__()
        self.v_threshold = float(v_threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(x[0])
        spikes = []
        for x_t in x:
            h = v + (x_t - v) * 0.5
            s = spike_fn(h - self.v_threshold) - spike_fn(-h - self.v_threshold)
            v = h * (1.0 - s.detach().abs())
            spikes.append(s)
        return torch.stack(spikes)
