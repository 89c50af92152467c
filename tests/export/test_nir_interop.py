"""NIR across frameworks: our integer NIR runs in snnTorch, snnTorch's NIR runs in statten-hw.

The oracle is always the other framework's own forward pass (snnTorch ``Leaky``: ``m = β·m + I``,
spike ``m > thr``, reset to zero), never our code. Networks are chosen inside the regimes where
the two semantics coincide exactly (``statten_hw.export.nir_interop``): ``β = 0`` with any signs,
``β = 1/2`` with a membrane that cannot go negative (non-negative weights and biases on spikes);
weights are integers or quarters, so every float sum and halving is exact in float32.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from statten_hw.errors import InputError, UnsupportedLayer
from statten_hw.export.nir_export import export_nir, import_nir
from statten_hw.export.nir_interop import SNNTORCH_DT, for_float_consumer, lower_nir
from statten_hw.ir import lower, nodes as ir, run_float, run_pipeline
from statten_hw.ir.graph import add_op, new_graph
from statten_hw.quant import quantize, run_integer
from statten_hw.quant.quantize import QConv2d, QLinear

import snntorch as snn
from snntorch import utils as snn_utils
from snntorch.export_nir import export_to_nir
from snntorch.import_nir import import_from_nir

sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
from ir_nets import small_input, small_model  # noqa: E402

T = 6
F32 = np.float32


def _events(batch: int, shape: tuple, seed: int, rate: float = 0.35) -> torch.Tensor:
    """Binary event frames ``[batch, T, *shape]`` (integer input: the quantizer keeps scale 1)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, T, *shape, generator=gen) < rate).float()


def _snntorch_spikes(net: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run ``net`` step by step on ``x`` ``[batch, T, ...]``; every ``Leaky``'s spikes ``[T, batch, ...]``."""
    seen: dict[str, list] = {}
    hooks = [m.register_forward_hook(lambda mod, i, out, n=n: seen.setdefault(n, []).append(out))
             for n, m in net.named_modules() if isinstance(m, snn.Leaky)]
    snn_utils.reset(net)
    with torch.no_grad():
        for t in range(x.shape[1]):
            net(x[:, t])
    for h in hooks:
        h.remove()
    return {n: torch.stack(s) for n, s in seen.items()}


# --- ours -> snnTorch -------------------------------------------------------------------------

def _plain_conv(rng):
    """conv (mixed signs) -> LIF tau 1 (β = 0) -> conv stride 2 (non-negative) -> LIF tau 2 (β = 1/2)."""
    g = new_graph()
    x = add_op(g, "input", ir.Input(shape=(2, 8, 8), timesteps=T, encoding="events"), "")
    w1 = rng.normal(0, 0.5, (4, 2, 3, 3)).astype(F32)
    x = add_op(g, "conv1", ir.Conv2d(weight=w1, bias=rng.normal(0, 0.2, 4).astype(F32), padding=(1, 1)), "", x=x)
    x = add_op(g, "lif1", ir.LIF(threshold=0.5, tau=1.0), "", x=x)
    w2 = np.abs(rng.normal(0, 0.3, (6, 4, 3, 3))).astype(F32)
    x = add_op(g, "conv2", ir.Conv2d(weight=w2, bias=np.abs(rng.normal(0, 0.1, 6)).astype(F32), stride=(2, 2)), "", x=x)
    x = add_op(g, "lif2", ir.LIF(threshold=1.0, tau=2.0), "", x=x)
    add_op(g, "output", ir.Output(per_step=True), "", x=x)
    return run_pipeline(g)


def _plain_mlp(rng):
    """linear + BN (mixed signs) -> LIF tau 1 -> linear (non-negative, no bias) -> LIF tau 2."""
    g = new_graph()
    x = add_op(g, "input", ir.Input(shape=(12,), timesteps=T, encoding="events"), "")
    x = add_op(g, "fc1", ir.Linear(weight=rng.normal(0, 0.4, (16, 12)).astype(F32)), "", x=x)
    bn = {k: rng.uniform(lo, hi, 16).astype(F32) for k, lo, hi in
          (("gamma", 0.6, 1.4), ("beta", -0.3, 0.3), ("mean", -0.2, 0.2), ("var", 0.5, 1.5))}
    x = add_op(g, "bn1", ir.BatchNorm(**bn), "", x=x)
    x = add_op(g, "lif1", ir.LIF(threshold=0.6, tau=1.0), "", x=x)
    x = add_op(g, "fc2", ir.Linear(weight=np.abs(rng.normal(0, 0.4, (10, 16))).astype(F32)), "", x=x)
    x = add_op(g, "lif2", ir.LIF(threshold=1.0, tau=2.0), "", x=x)
    add_op(g, "output", ir.Output(per_step=True), "", x=x)
    return run_pipeline(g)


@pytest.mark.parametrize("build", [_plain_conv, _plain_mlp], ids=["conv", "mlp"])
def test_our_plain_snn_runs_in_snntorch(build, tmp_path):
    graph = build(np.random.default_rng(0))
    shape = graph.nodes["input"]["op"].shape
    qg = quantize(graph, _events(64, shape, seed=1))
    x = _events(16, shape, seed=2)
    ref = run_integer(qg, x)
    assert sum(ref.overflows.values()) == 0  # snnTorch does not saturate; the comparison needs no clipping
    ours = nir.read(export_nir(qg, tmp_path / "plain.nir"))
    path = tmp_path / "plain_snntorch.nir"
    nir.write(path, for_float_consumer(ours, SNNTORCH_DT))

    net = import_from_nir(nir.read(path))  # snnTorch's own importer, from the file
    leaky = {n: m for n, m in net.named_modules() if isinstance(m, snn.Leaky)}
    assert sorted(leaky) == sorted(qg.lif_nodes)
    for name, m in leaky.items():  # β = 1 - dv/4096 and v >= θ, as snnTorch understood the file
        op = qg.qop(name)
        assert torch.all(m.beta == 1 - op.dv / 4096)
        assert float(m.threshold) < op.threshold
        assert float(np.nextafter(F32(m.threshold), F32(np.inf))) == op.threshold
    assert [qg.qop(n).dv for n in qg.lif_nodes] == [4096, 2048]  # both regimes are exercised
    got = _snntorch_spikes(net, x)
    for name in qg.lif_nodes:
        assert 0 < int(ref.values[name].sum()) < ref.values[name].numel(), name  # spikes, not a silent layer
        assert torch.equal(got[name].to(torch.int64), ref.values[name]), name


def _euler(graph: nir.NIRGraph, x: torch.Tensor, dt: float) -> dict[str, torch.Tensor]:
    """A reader of NIR's own equations, independent of statten-hw: forward Euler at ``dt`` in float32
    along a chain of ``Conv2d``/``Affine``/``IF`` nodes (``v <- v + dt·r·I``, spike ``v > v_threshold``,
    reset to ``v_reset``). ``x``: ``[batch, T, ...]``; returns each IF's spikes ``[T, batch, ...]``."""
    order, step, spikes = ["input"], dict(graph.edges), {}
    while order[-1] in step:
        order.append(step[order[-1]])
    f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    state = {n: 0.0 for n in order}
    for t in range(x.shape[1]):
        h = x[:, t]
        for name in order[1:]:
            node = graph.nodes[name]
            if isinstance(node, nir.Conv2d):
                h = torch.nn.functional.conv2d(h, f32(node.weight), f32(node.bias), stride=tuple(node.stride),
                                               padding=tuple(node.padding))
            elif isinstance(node, nir.Affine):
                h = h @ f32(node.weight).T + f32(node.bias)
            elif isinstance(node, nir.IF):
                v = state[name] + F32(dt) * f32(node.r) * h
                fired = v > f32(node.v_threshold)
                state[name] = torch.where(fired, f32(node.v_reset), v)
                h = fired.float()
                spikes.setdefault(name, []).append(h)
    return {n: torch.stack(s) for n, s in spikes.items()}


@pytest.mark.parametrize("build", [_plain_conv, _plain_mlp], ids=["conv", "mlp"])
def test_a_lif_without_leak_crosses_as_an_if_neuron_with_any_signs(build, tmp_path):
    """Quantized for a target without a decay field, every LIF keeps its membrane (dv = 0). It used to
    be refused (nir.LIF would need tau = inf); it crosses as nir.IF with r = 1/dt, and NIR's equation
    stepped by an independent reader at snnTorch's dt gives the integer reference's spikes, mixed-sign
    weights included (nothing is truncated without a leak)."""
    graph = build(np.random.default_rng(0))
    shape = graph.nodes["input"]["op"].shape
    qg = quantize(graph, _events(64, shape, seed=1), decay_bits=0)
    x = _events(16, shape, seed=2)
    ref = run_integer(qg, x)
    assert sum(ref.overflows.values()) == 0 and {qg.qop(n).dv for n in qg.lif_nodes} == {0}
    path = tmp_path / "if.nir"
    nir.write(path, for_float_consumer(nir.read(export_nir(qg, tmp_path / "ours.nir")), SNNTORCH_DT))
    theirs = nir.read(path)
    assert all(isinstance(theirs.nodes[n], nir.IF) for n in qg.lif_nodes)
    got = _euler(theirs, x, SNNTORCH_DT)
    for name in qg.lif_nodes:
        assert 0 < int(ref.values[name].sum()) < ref.values[name].numel(), name
        assert torch.equal(got[name].to(torch.int64), ref.values[name]), name
    assert any((getattr(qg.qop(n), "weight", np.zeros(1)) < 0).any() for n in qg.graph)  # mixed signs


def test_non_standard_ops_do_not_cross(tmp_path):
    model = small_model("statten")
    x = small_input(model)
    ours = nir.read(export_nir(quantize(lower(model), x), tmp_path / "statten.nir"))
    with pytest.raises(UnsupportedLayer, match="no standard NIR primitive"):
        for_float_consumer(ours, SNNTORCH_DT)
    with pytest.raises(InputError, match="dt must be a positive"):
        for_float_consumer(ours, 0.0)


# --- snnTorch -> ours -------------------------------------------------------------------------

def _conv(cin, cout, k, gen, nonneg=False, stride=1, padding=0) -> torch.nn.Conv2d:
    """Weights and biases in quarters, peak 127/4: the 8-bit quantizer's scale is exactly 1/4."""
    conv = torch.nn.Conv2d(cin, cout, k, stride=stride, padding=padding)
    w = torch.randint(0 if nonneg else -127, 128, conv.weight.shape, generator=gen).float()
    w.view(-1)[0] = 127
    b = torch.randint(0 if nonneg else -16, 17, conv.bias.shape, generator=gen).float()
    conv.weight.data, conv.bias.data = w / 4, b / 4
    return conv


def _leaky(shape, beta, thr):
    # per-neuron tensors: snnTorch 1.0's exporter gives scalar parameters no NIR type and nir 1.0.8 refuses them
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, thr), init_hidden=True,
                     reset_mechanism="zero")


def _csnn(betas, nonneg_middle: bool, thresholds) -> torch.nn.Sequential:
    """1x8x8 -> conv 3x3 -> 4x8x8 -> conv 3x3 s2 -> 6x3x3 -> conv 3x3 (the classifier) -> 3x1x1."""
    gen = torch.Generator().manual_seed(0)
    return torch.nn.Sequential(
        _conv(1, 4, 3, gen, padding=1), _leaky((4, 8, 8), betas[0], thresholds[0]),
        _conv(4, 6, 3, gen, nonneg=nonneg_middle, stride=2), _leaky((6, 3, 3), betas[1], thresholds[1]),
        _conv(6, 3, 3, gen), _leaky((3, 1, 1), betas[2], thresholds[2])).eval()


def _snntorch_file(net, path) -> Path:
    nir.write(path, export_to_nir(net, torch.zeros(1, 8, 8)))  # snnTorch's own exporter
    return path


def test_snntorch_csnn_lowers_and_runs_float_exactly(tmp_path):
    # beta 1/2 everywhere, mixed signs: the float deployment graph follows snnTorch spike for spike
    net = _csnn((0.5, 0.5, 0.5), False, (8.0, 30.0, 20.0))
    x = _events(32, (1, 8, 8), seed=3, rate=0.4)
    want = _snntorch_spikes(net, x)
    g = lower_nir(_snntorch_file(net, tmp_path / "csnn.nir"), SNNTORCH_DT, T)
    lifs = [n for n in g if isinstance(g.nodes[n]["op"], ir.LIF)]
    assert lifs == ["1", "3", "5"] and all(g.nodes[n]["op"].tau == 2.0 for n in lifs)
    got = run_float(g, x, keep=True)
    for name in lifs:
        assert int(want[name].sum()) > 0, name
        assert torch.equal(got[name], want[name]), name


def test_snntorch_csnn_runs_bit_exact_on_the_integer_graph(tmp_path):
    # beta 0 on the mixed-sign layers, beta 1/2 on the non-negative one; its threshold sits just
    # below a multiple of the 1/4 weight scale, so 'm > thr' and the integer 'H >= θ' agree on the
    # fractional membranes beta 1/2 makes (nir_interop docstring)
    below = float(np.nextafter(F32(400.25), F32(-np.inf)))
    net = _csnn((0.0, 0.5, 0.0), True, (16.0, below, 4.0))
    x = _events(32, (1, 8, 8), seed=4, rate=0.4)
    want = _snntorch_spikes(net, x)
    g = lower_nir(_snntorch_file(net, tmp_path / "csnn.nir"), SNNTORCH_DT, T)
    qg = quantize(g, x)
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    for name, conv in zip(("0", "2", "4"), convs):  # the premise: 8-bit quantization is lossless here
        op = qg.qop(name)
        step = 1 << op.weight_exp  # the sums keep weight_exp bits below the 1/4 weight step
        assert isinstance(op, QConv2d) and op.w_scale * step == 0.25
        assert np.array_equal(op.mantissa, (conv.weight.detach().numpy() * 4).astype(np.int64))
        assert np.array_equal(op.bias, (conv.bias.detach().numpy() * 4 * step).astype(np.int64))
    assert [qg.qop(n).dv for n in qg.lif_nodes] == [4096, 2048, 4096]
    run = run_integer(qg, x)
    assert sum(run.overflows.values()) == 0
    for name in qg.lif_nodes:
        assert int(want[name].sum()) > 0, name
        assert torch.equal(run.values[name], want[name].to(torch.int64)), name


def test_snntorch_mlp_with_affine_lowers(tmp_path):
    # snnTorch writes nn.Linear as nir.Affine (nir.Linear without a bias) on a vector input
    gen = torch.Generator().manual_seed(5)
    fc1, fc2 = torch.nn.Linear(10, 8), torch.nn.Linear(8, 4, bias=False)
    fc1.weight.data = torch.randint(-8, 9, (8, 10), generator=gen).float() / 4
    fc1.bias.data = torch.randint(-4, 5, (8,), generator=gen).float() / 4
    fc2.weight.data = torch.randint(-8, 9, (4, 8), generator=gen).float() / 4
    net = torch.nn.Sequential(fc1, _leaky((8,), 0.5, 1.0), fc2, _leaky((4,), 0.5, 0.5)).eval()
    nir.write(tmp_path / "mlp.nir", export_to_nir(net, torch.zeros(10)))
    g = lower_nir(tmp_path / "mlp.nir", SNNTORCH_DT, T)
    x = _events(16, (10,), seed=6, rate=0.5)
    want, got = _snntorch_spikes(net, x), run_float(g, x, keep=True)
    assert isinstance(g.nodes["2"]["op"], ir.Linear) and g.nodes["2"]["op"].bias is None
    for name in ("1", "3"):
        assert int(want[name].sum()) > 0 and torch.equal(got[name], want[name]), name
    assert type(quantize(g, x).qop("0")) is QLinear


def _chain(**nodes) -> nir.NIRGraph:
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])))


def test_foreign_failcases(tmp_path):
    # snnTorch writes nn.Flatten() as nir.Flatten(start_dim=0): [C, H, W] -> [C·H·W] has no IR node
    flat = _chain(input=nir.Input({"input": np.array([2, 3, 3])}),
                  flatten=nir.Flatten({"input": np.array([2, 3, 3])}, start_dim=0, end_dim=-1),
                  output=nir.Output({"output": np.array([18])}))
    with pytest.raises(UnsupportedLayer, match="'flatten' .nir.Flatten.: no statten-hw lowering"):
        lower_nir(flat, SNNTORCH_DT, T)
    with pytest.raises(InputError, match="no such file"):
        lower_nir(tmp_path / "missing.nir", SNNTORCH_DT, T)
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not a readable NIR file"):
        lower_nir(tmp_path / "junk.nir", SNNTORCH_DT, T)
    with pytest.raises(InputError, match="lower_nir"):
        import_nir(_snntorch_file(_csnn((0.5,) * 3, False, (1.0,) * 3), tmp_path / "csnn.nir"))
    leaky = nir.LIF(tau=np.array([2e-4, 1e-4]), r=np.array([2.0, 1.0]), v_leak=np.zeros(2),
                    v_threshold=np.ones(2), v_reset=np.zeros(2))
    mixed = _chain(input=nir.Input({"input": np.array([2])}), lif=leaky, output=nir.Output({"output": np.array([2])}))
    with pytest.raises(UnsupportedLayer, match="'lif'.*tau differs between neurons"):
        lower_nir(mixed, SNNTORCH_DT, T)
    with pytest.raises(InputError, match="dt must be a positive"):
        lower_nir(mixed, -1.0, T)
    vector = {"input": np.array([2])}
    summed = nir.NIRGraph(nodes={"a": nir.Input(vector), "b": nir.Input(vector),
                                 "output": nir.Output({"output": np.array([2])})},
                          edges=[("a", "output"), ("b", "output")])
    with pytest.raises(UnsupportedLayer, match="'output'.*2 producers"):
        lower_nir(summed, SNNTORCH_DT, T)
    ring = _chain(input=nir.Input({"input": np.array([2])}), output=nir.Output({"output": np.array([2])}))
    ring.nodes.update(p=nir.Linear(np.eye(2)), q=nir.Linear(np.eye(2)))
    ring.edges += [("p", "q"), ("q", "p")]
    with pytest.raises(UnsupportedLayer, match="cycle"):
        lower_nir(ring, SNNTORCH_DT, T)


@pytest.mark.parametrize("field, value, problem", [
    ("tau", 0.0, "tau must be positive"), ("tau", np.inf, "tau must be finite"),
    ("v_threshold", np.inf, "v_threshold must be finite"), ("r", np.nan, "r must be finite")])
def test_foreign_lif_parameters_nir_read_accepts_are_refused_naming_the_node(field, value, problem):
    """Found by review: tau = 0 was a ZeroDivisionError, an infinite threshold an OverflowError in quantize."""
    params = dict(tau=np.full(2, 2e-4), r=np.full(2, 2.0), v_leak=np.zeros(2), v_threshold=np.ones(2),
                  v_reset=np.zeros(2)) | {field: np.full(2, value)}
    graph = _chain(input=nir.Input({"input": np.array([2])}), lif=nir.LIF(**params),
                   output=nir.Output({"output": np.array([2])}))
    with pytest.raises(UnsupportedLayer, match=f"'lif'.*{problem}"):
        lower_nir(graph, SNNTORCH_DT, T)


@pytest.mark.parametrize("weight, bias, problem", [
    (np.full((3, 2), np.nan), np.zeros(3), "weight holds NaN"),
    (np.ones((3, 2)), np.zeros(7), "bias: has 7 entries for 3 outputs")])
def test_foreign_affine_values_are_refused_naming_the_node(weight, bias, problem):
    graph = _chain(input=nir.Input({"input": np.array([2])}), fc=nir.Affine(weight=weight, bias=bias),
                   output=nir.Output({"output": np.array([3])}))
    with pytest.raises(UnsupportedLayer, match=f"'fc'.*{problem}"):
        lower_nir(graph, SNNTORCH_DT, T)


def test_ternary_or_wide_threshold_lifs_do_not_cross(tmp_path):
    """A ternary LIF's -1 spikes and a threshold past 2**24 have no float32 nir.LIF meaning."""
    model = small_model("a2os2a")
    qg = quantize(lower(model), small_input(model))
    ours = nir.read(export_nir(qg, tmp_path / "a.nir"))
    lifs = {n: node for n, node in ours.nodes.items() if isinstance(node, nir.LIF)}
    ternary = next(n for n, node in lifs.items() if node.metadata.get("ternary"))
    plain = next(n for n, node in lifs.items() if not node.metadata.get("ternary"))
    only = lambda name: nir.NIRGraph(nodes={name: lifs[name]}, edges=[], metadata=dict(ours.metadata),  # noqa: E731
                                     type_check=False)
    with pytest.raises(UnsupportedLayer, match="ternary LIF"):
        for_float_consumer(only(ternary), SNNTORCH_DT)
    lifs[plain].metadata["threshold"] = (1 << 24) + 1
    with pytest.raises(UnsupportedLayer, match="threshold 16777217 is past 2\\*\\*24"):
        for_float_consumer(only(plain), SNNTORCH_DT)


def _foreign_conv_snn(padding, kernel: int = 3) -> nir.NIRGraph:
    """Input [1, 6, 6] -> Conv2d(2 channels, ``padding``) -> LIF (tau 1, dt 0.5: decay 1/2) -> Output."""
    weight = np.random.default_rng(3).normal(0, 1, (2, 1, kernel, kernel))
    conv = nir.Conv2d(input_shape=(6, 6), weight=weight, stride=1, padding=padding, dilation=1, groups=1,
                      bias=np.zeros(2))
    shape = tuple(int(s) for s in conv.output_type["output"])
    full = lambda v: np.full(shape, v)  # noqa: E731
    lif = nir.LIF(tau=full(1.0), r=full(1.0), v_leak=full(0.0), v_threshold=full(0.5), v_reset=full(0.0))
    return _chain(input=nir.Input({"input": np.array([1, 6, 6])}), conv=conv, lif=lif,
                  output=nir.Output({"output": np.array(shape)}))


@pytest.mark.parametrize("word, pixels", [("valid", 0), ("same", 1)])
def test_padding_given_as_a_word_lowers_as_its_pixel_count(word, pixels):
    """NIR allows ``'valid'``/``'same'`` (PyTorch's meaning); they were refused. Same spikes as the
    explicit pixel counts, on random events."""
    x = _events(4, (1, 6, 6), seed=5)
    by_word, by_count = (lower_nir(_foreign_conv_snn(p), 0.5, T) for p in (word, pixels))
    assert by_word.nodes["conv"]["op"].padding == (pixels, pixels)
    spikes = [run_float(g, x, keep=True)["lif"] for g in (by_word, by_count)]
    assert int(spikes[0].sum()) > 0 and torch.equal(*spikes)


def test_same_padding_of_an_even_kernel_is_refused_naming_it():
    with pytest.raises(UnsupportedLayer, match=r"'conv'.*padding 'same' with kernel \(2, 2\)"):
        lower_nir(_foreign_conv_snn("same", kernel=2), 0.5, T)


def test_numpy_float32_time_step_is_a_time_step():
    """``dt`` read from a file or computed with numpy is ``np.float32``; it was refused as not a number."""
    graph = _foreign_conv_snn(1)
    x = _events(2, (1, 6, 6), seed=6)
    assert torch.equal(run_float(lower_nir(graph, np.float32(0.5), T), x, keep=True)["lif"],
                       run_float(lower_nir(graph, 0.5, T), x, keep=True)["lif"])
