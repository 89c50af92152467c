"""Float ONNX export: onnxruntime reproduces the PyTorch logits within 1e-5, with no spike flipped."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from conftest import official_checkpoint, official_expected
from statten_hw import load_checkpoint
from statten_hw.export import export_float_onnx, output_name, run_float_onnx
from statten_hw.export import onnx_float
from statten_hw.models import ModelConfig, build_model
from statten_hw.models.lif import MultiStepLIF, MultiStepTernary

TOL = 1e-5


def _lif_outputs(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PyTorch logits and the output of every spiking module that runs, by module path."""
    spikes, handles = {}, []
    for path, mod in model.named_modules():
        if isinstance(mod, (MultiStepLIF, MultiStepTernary)):
            handles.append(mod.register_forward_hook(lambda _m, _i, out, path=path: spikes.__setitem__(path, out)))
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        for h in handles:
            h.remove()
    return y, spikes


def _check_graph(path, model, batch: int) -> onnx.ModelProto:
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    # Unrolled and self-contained: standard ops only (the LIF autograd.Function was traced through), no loops.
    ops = {n.op_type for n in proto.graph.node}
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}
    assert not ops & {"Loop", "Scan", "If"}, ops
    assert "GreaterOrEqual" in ops  # the spike threshold
    (inp,) = proto.graph.input
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert dims == [batch, *model.config.input_shape]
    assert proto.graph.output[0].name == output_name(model.config)
    return proto


def _compare(model, x, tmp_path, name="model"):
    """Export (plain and with spike outputs), run both in onnxruntime; return (max logit diff, flipped spikes)."""
    batch = x.shape[0]
    path = export_float_onnx(model, tmp_path / f"{name}.onnx", batch_size=batch)
    assert path == tmp_path / f"{name}.onnx" and path.is_file()
    _check_graph(path, model, batch)
    ref, ref_spikes = _lif_outputs(model, x)
    (got,) = run_float_onnx(path, x)
    assert got.shape == tuple(ref.shape)
    diff = float(np.abs(got - ref.numpy()).max())

    spath = export_float_onnx(model, tmp_path / f"{name}.spikes.onnx", batch_size=batch, with_spikes=True)
    session_outputs = [o.name for o in onnx.load(str(spath)).graph.output]
    outs = dict(zip(session_outputs, run_float_onnx(spath, x)))
    assert np.array_equal(outs[output_name(model.config)], got)  # the probe does not change the graph
    names = {n[len(onnx_float.SPIKES_PREFIX):]: n for n in session_outputs[1:]}
    assert set(names) == set(ref_spikes)
    flips = sum(int((outs[names[p]] != s.numpy()).sum()) for p, s in ref_spikes.items())
    return diff, flips, ref_spikes


@pytest.mark.slow
def test_official_fixture_onnxruntime_matches_pytorch(official_name, tmp_path):
    name = official_name
    model = load_checkpoint(official_checkpoint(name))
    expected = official_expected(name)
    x = expected["inputs"]
    diff, flips, _ = _compare(model, x, tmp_path, name)
    print(f"{name}: batch {x.shape[0]}, max |onnxruntime - torch| = {diff:.3g}, flipped spikes = {flips}")
    assert flips == 0
    assert diff <= TOL
    # and the file reproduces the official logits (TET: their mean over T)
    (got,) = run_float_onnx(tmp_path / f"{name}.onnx", x)
    logits = got.mean(0) if model.config.tet else got
    assert np.abs(logits - expected["logits"].numpy()).max() <= TOL


SMALL = {
    "STAtten": ("statten", "STAtten", {}),
    "SDSA": ("statten", "SDSA", {}),
    "T_STAtten": ("statten", "T_STAtten", {}),
    "N_STAtten": ("statten", "N_STAtten", {}),
    "A2OS2A": ("statten", "A2OS2A", {}),
    "SSA": ("spikformer", "SSA", {}),
    "STAtten-dvs-tet": ("statten", "STAtten", {"dvs": True, "tet": True, "in_channels": 2}),
    "SDSA-dvs": ("statten", "SDSA", {"dvs": True, "in_channels": 2}),
}


def _small(key: str, seed: int = 0):
    family, attention, extra = SMALL[key]
    options = dict(family=family, attention=attention, depth=1, dim=16, heads=2, timesteps=4, block_size=2,
                   img_size=8, in_channels=1, num_classes=10, pooling_stat="0001")
    options.update(extra)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**options))
    gen = torch.Generator().manual_seed(seed + 1)
    bns = {name: m for name, m in model.named_modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))}
    for name, bn in bns.items():  # affine as in the fixtures; running stats reset for a cumulative calibration
        bn.weight.data = torch.rand(bn.num_features, generator=gen) + 0.6
        bn.bias.data = torch.rand(bn.num_features, generator=gen)
        if name.rsplit(".", 1)[-1] in ("q_bn", "k_bn", "v_bn"):
            bn.bias.data += 0.8  # denser Q, K, V so that the tiny nets' attention LIF fires too
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(_small_input(model.config, 8, gen))
    for bn in bns.values():  # then randomized around the calibration, so that every LIF fires but none saturates
        n = bn.num_features
        bn.running_mean += torch.randn(n, generator=gen) * 0.2 * bn.running_var.sqrt()
        bn.running_var *= torch.rand(n, generator=gen) * 0.6 + 0.7
        bn.momentum = 0.1
    model.eval()
    return model, _small_input(model.config, 2, gen)


def _small_input(cfg: ModelConfig, batch: int, gen: torch.Generator) -> torch.Tensor:
    if cfg.dvs:  # event counts 0..6
        return torch.poisson(torch.full((batch, *cfg.input_shape), 1.5), generator=gen).clamp(max=6)
    return torch.randn(batch, *cfg.input_shape, generator=gen)


@pytest.mark.parametrize("key", list(SMALL))
def test_random_small_net_every_attention_mode(key, tmp_path):
    model, x = _small(key)
    diff, flips, spikes = _compare(model, x, tmp_path, key)
    print(f"{key}: max |onnxruntime - torch| = {diff:.3g}, flipped spikes = {flips}")
    silent = [p for p, s in spikes.items() if not s.abs().sum()]
    assert not silent, f"LIFs that never fire make the test weak: {silent}"
    assert flips == 0
    assert diff <= TOL


def test_export_leaves_no_file_when_the_exporter_fails(tmp_path, monkeypatch):
    model, _ = _small("STAtten")

    def boom(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", boom)
    target = tmp_path / "out" / "model.onnx"
    with pytest.raises(RuntimeError, match="exporter exploded"):
        export_float_onnx(model, target)
    assert not target.exists()
    assert not target.parent.exists() or not any(target.parent.iterdir())  # no temporary left either

    # an older file at the target is left as it was
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="exporter exploded"):
        export_float_onnx(model, target)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]


def test_invalid_graph_is_not_written(tmp_path, monkeypatch):
    """The checker runs before the write: a model that fails it leaves no file."""
    model, _ = _small("STAtten")

    def reject(*args, **kwargs):
        raise onnx.checker.ValidationError("bad graph")

    monkeypatch.setattr(onnx.checker, "check_model", reject)
    target = tmp_path / "model.onnx"
    with pytest.raises(onnx.checker.ValidationError):
        export_float_onnx(model, target)
    assert list(tmp_path.iterdir()) == []


def test_export_keeps_model_mode_and_hooks(tmp_path):
    model, x = _small("A2OS2A")
    model.train()
    model.head.eval()  # a mixed state must come back exactly
    flags = {name: m.training for name, m in model.named_modules()}
    export_float_onnx(model, tmp_path / "m.onnx", batch_size=2, with_spikes=True)
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert all(not m._forward_hooks for m in model.modules())
    # eval semantics are exported whatever the mode the model was in
    model.eval()
    with torch.no_grad():
        ref = model(x)
    assert np.abs(run_float_onnx(tmp_path / "m.onnx", x)[0] - ref.numpy()).max() <= TOL


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(batch_size=1.0), dict(opset=16)])
def test_bad_arguments(bad, tmp_path):
    model, _ = _small("STAtten")
    with pytest.raises(ValueError):
        export_float_onnx(model, tmp_path / "m.onnx", **bad)
    with pytest.raises(TypeError):
        export_float_onnx(torch.nn.Linear(2, 2), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
