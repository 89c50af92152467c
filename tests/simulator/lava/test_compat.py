"""Tests for statten_hw.simulator.lava._compat (the Python 3.11 Lava shim)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import subprocess
import sys
import typing

import numpy as np
import pytest

from statten_hw.simulator.lava import _compat

needs_lava = pytest.mark.skipif(
    not _compat.HAS_LAVA, reason=f"lava-nc not importable: {_compat.LAVA_IMPORT_ERROR!r}"
)


# --------------------------------------------------------------------------
# Reference model
# --------------------------------------------------------------------------
def _shift_toward_zero(x: np.ndarray, shift: int) -> np.ndarray:
    return np.sign(x) * np.right_shift(np.abs(x), shift)


def reference_dense_lif(
    spikes: np.ndarray,  # (n_in, T) 0/1
    weights: np.ndarray,  # (n_out, n_in) int, excitatory, <= 255 (no clip/truncation)
    du: int,
    dv: int,
    vth: int,
    bias_mant: int,
    bias_exp: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent numpy model of Dense(PyDenseModelBitAcc) -> LIF(PyLifModelBitAcc).

    Derived from lava-nc 0.10 src/lava/proc/{dense,lif}/models.py:

    Dense: at step t it sends the accumulation computed at step t-1, so
        a[t] = W @ s[t-1]            (a[1] = 0; s[t] is source column t-1)
    LIF (AbstractPyLifModelFixed.subthr_dynamics + PyLifModelBitAcc), with
    ds_offset = 1, dm_offset = 0, decay_unity = 2**12, act_shift = vth_shift = 6:
        u = sgn(u*(4096-(du+1))) * (|u*(4096-(du+1))| >> 12) + (a << 6)   # wrapped to 24 bit
        v = sgn(v*(4096-dv))     * (|v*(4096-dv)|     >> 12) + u + (bias_mant << bias_exp)
        v = clip(v, -(2**23-1), 2**23-1)
        spike = v > (vth << 6);  v[spike] = 0

    Returns (spikes (n_out, T), final u, final v).
    """
    n_in, n_steps = spikes.shape
    n_out = weights.shape[0]
    max_uv = 2**23
    u = np.zeros(n_out, dtype=np.int64)
    v = np.zeros(n_out, dtype=np.int64)
    bias = (bias_mant << bias_exp) if bias_exp >= 0 else (bias_mant >> -bias_exp)
    w = weights.astype(np.int64)
    a_buff = np.zeros(n_out, dtype=np.int64)
    out = np.zeros((n_out, n_steps), dtype=np.int64)
    for t in range(n_steps):
        a_in, a_buff = a_buff, w @ spikes[:, t].astype(np.int64)
        u = _shift_toward_zero(u * (4096 - (du + 1)), 12) + (a_in << 6)
        u = np.where(u > max_uv, u - 2 * max_uv, u)
        u = np.where(u <= -max_uv, u + 2 * max_uv, u)
        v = _shift_toward_zero(v * (4096 - dv), 12) + u + bias
        v = np.clip(v, -max_uv + 1, max_uv - 1)
        s = v > (vth << 6)
        v[s] = 0
        out[:, t] = s
    return out, u, v


# --------------------------------------------------------------------------
# (1) a 2-layer fixed-point run matches the reference
# --------------------------------------------------------------------------
@pytest.mark.lava
@needs_lava
def test_dense_lif_fixed_point_matches_numpy_reference():
    lava = _compat.import_lava()
    n_steps = 12
    rng = np.random.default_rng(1234)
    spikes = (rng.random((4, n_steps)) < 0.5).astype(np.int32)
    weights = np.array(
        [[120, 60, 30, 90], [10, 200, 40, 0], [0, 0, 0, 5]], dtype=np.int32
    )
    params = dict(du=3000, dv=1000, vth=300, bias_mant=4, bias_exp=1)

    expected, u_ref, v_ref = reference_dense_lif(spikes, weights, **params)
    # The chosen network must actually exercise spiking and resetting.
    assert 3 <= expected.sum() < expected.size
    assert expected[2].sum() == 0  # weak neuron stays silent

    src = lava.SourceRingBuffer(data=spikes)
    dense = lava.Dense(weights=weights)
    lif = lava.LIF(shape=(3,), **params)
    sink = lava.SinkRingBuffer(shape=(3,), buffer=n_steps)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)

    try:
        lif.run(
            condition=lava.RunSteps(num_steps=n_steps),
            run_cfg=lava.Loihi2SimCfg(select_tag="fixed_pt"),
        )
        got = np.asarray(sink.data.get()).astype(np.int64)
        u_got = np.asarray(lif.u.get()).astype(np.int64)
        v_got = np.asarray(lif.v.get()).astype(np.int64)
    finally:
        lif.stop()

    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(u_got, u_ref)
    np.testing.assert_array_equal(v_got, v_ref)
    # Lava's runtime processes were joined by stop(): no orphans left behind.
    assert multiprocessing.active_children() == []


# --------------------------------------------------------------------------
# (2) the shim is scoped to lava's own modules
# --------------------------------------------------------------------------
def test_shim_is_installed_once_and_idempotent():
    if sys.version_info < (3, 11):
        assert _compat.install_dataclass_shim() is False
        return
    before = dataclasses._process_class
    assert _compat.install_dataclass_shim() is True
    assert _compat.install_dataclass_shim() is True
    assert dataclasses._process_class is before
    assert getattr(before, "_statten_hw_lava_shim", False)


def test_non_lava_dataclass_with_mutable_default_still_raises():
    with pytest.raises(ValueError, match="mutable default"):

        @dataclasses.dataclass
        class NotLava:  # __module__ is this test module
            xs: list = []  # noqa: RUF012

    ns = {"__module__": "lavatory.plumbing"}  # prefix match is on the package name
    with pytest.raises(ValueError, match="mutable default"):
        dataclasses.dataclass(type("Lookalike", (), {**ns, "__annotations__": {"xs": list}, "xs": []}))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="shim only active on 3.11+")
def test_lava_module_dataclass_gets_per_instance_copies():
    @dataclasses.dataclass(eq=True)
    class Inner:
        n: int = 0

    body = {
        "__module__": "lava.fake.module",
        "__annotations__": {"xs": list, "inner": Inner, "d": dict, "k": typing.ClassVar[list]},
        "xs": [1, 2],
        "inner": Inner(3),  # unhashable: eq=True dataclass -> __hash__ None
        "d": dataclasses.field(default={"a": 1}, repr=False),
        "k": [9],
    }
    cls = dataclasses.dataclass(type("FakeLava", (), body))
    a, b = cls(), cls()
    assert a.xs == [1, 2] and a.inner == Inner(3) and a.d == {"a": 1}
    a.xs.append(3)
    a.inner.n = 7
    a.d["b"] = 2
    assert b.xs == [1, 2] and b.inner == Inner(3) and b.d == {"a": 1}
    assert cls.k == [9]  # ClassVar untouched
    assert [f.name for f in dataclasses.fields(cls)] == ["xs", "inner", "d"]


def test_torch_still_works_after_shim():
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x).relu()

    y = Net()(torch.ones(4, 3))
    assert y.shape == (4, 2)

    @dataclasses.dataclass
    class Cfg:
        shape: tuple = (1, 2)
        tags: list = dataclasses.field(default_factory=list)

    assert Cfg().tags == [] and Cfg().tags is not Cfg().tags
    assert torch.__name__ == "torch"


# --------------------------------------------------------------------------
# (3) lava-dl imports after the shim
# --------------------------------------------------------------------------
@pytest.mark.lava
@needs_lava
def test_lava_dl_netx_and_slayer_import():
    dl = _compat.import_lava_dl()
    assert hasattr(dl.netx, "hdf5") and hasattr(dl.netx.hdf5, "Network")
    assert hasattr(dl.slayer, "neuron") and hasattr(dl.slayer.block, "cuba")


@pytest.mark.lava
@needs_lava
def test_lava_imports_after_the_start_method_was_fixed():
    """Lava's import sets the start method to fork; it must not fail when fork was already chosen
    (tqdm and the event simulator's progress bars fix it first in the CLI)."""

    code = ("import multiprocessing as mp; mp.set_start_method('fork'); "
            "from statten_hw.simulator.lava import _compat; "
            "assert _compat.HAS_LAVA, _compat.LAVA_IMPORT_ERROR")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_require_lava_matches_has_lava():
    if _compat.HAS_LAVA:
        _compat.require_lava()
        assert _compat.LAVA_IMPORT_ERROR is None
    else:
        with pytest.raises(_compat.LavaUnavailableError) as info:
            _compat.require_lava()
        assert info.value.__cause__ is _compat.LAVA_IMPORT_ERROR


def test_cli_without_lava_says_so_in_one_line(tmp_path):
    """Lava is installed apart from the declared dependencies: a machine without it gets one line and
    exit 2 from the commands that need it, not a traceback."""
    code = ("import sys; sys.modules['lava'] = None; from statten_hw.cli import main; "
            f"sys.exit(main(['simulate', '--backend', 'lava', '--samples', '1', '-o', {str(tmp_path / 'o')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("statten-hw: error: Lava (lava-nc 0.10) could not be imported")
