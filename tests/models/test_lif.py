"""The LIF follows spikingjelly's MultiStepLIFNode arithmetic, checked against hand-derived values."""
import torch

from statten_hw.models.lif import MultiStepLIF, MultiStepTernary


def test_constant_input_charges_halfway_each_step():
    # x = 1.5, th = 1: h0 = 0.75 (no spike), h1 = 0.75 + (1.5-0.75)/2 = 1.125 -> spike, reset to 0,
    # h2 = 0.75 again: the pattern 0,1,0,1 follows from the charge equation alone.
    out = MultiStepLIF()(torch.full((4, 1), 1.5))
    assert out.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_tie_spikes():
    # h0 = 0.5 * 1.0 = 0.5 exactly: equal to the 0.5 threshold, and ">=" makes it spike.
    assert MultiStepLIF(v_threshold=0.5)(torch.ones(1, 1)).item() == 1.0


def test_surrogate_gradient_flows():
    x = torch.full((3, 2), 1.9, requires_grad=True)
    MultiStepLIF()(x).sum().backward()
    assert torch.all(x.grad != 0)


def test_ternary_fires_both_signs():
    # +4 and -4: h0 = +-2 crosses +-1 at once.
    out = MultiStepTernary()(torch.tensor([[4.0, -4.0, 0.2]]))
    assert out.flatten().tolist() == [1.0, -1.0, 0.0]
