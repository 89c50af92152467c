"""The sweep grid and its content keys (statten_hw/sweep/config.py)."""
from __future__ import annotations

import shutil
from importlib import resources

import pytest
from sweep_nets import save_tiny_checkpoint

from statten_hw.defaults import SEQ_BLOCK_SIZES, seq_checkpoint
from statten_hw.sweep import config as C
from statten_hw.sweep.config import OWN_SERIES, plan
from sweep_fixtures import tiny  # noqa: F401 (pytest fixtures)


def _plan(tiny, block_sizes="1,2,4", targets=("loihi2",), bits=(8,), **kw):
    ckpt, data = tiny
    return plan([str(ckpt)], block_sizes, list(targets), list(bits), dataset=str(data), calibration_samples=8, **kw)


def test_both_precisions_side_by_side_double_the_grid(tiny):
    both = _plan(tiny, targets=("layerwise",), precisions=("graph", "target"))
    assert [c.precision for c in both] == ["graph"] * 3 + ["target"] * 3
    assert len({c.key for c in both}) == 6 and "target's formats" in both[-1].label


def test_grid_is_checkpoint_x_target_x_bits_x_b(tiny):
    configs = _plan(tiny, targets=("loihi2", "layerwise"), bits=(4, 8))
    assert [(c.target, c.bits, c.block_size) for c in configs] == [
        (t, w, b) for t in ("loihi2", "layerwise") for w in (4, 8) for b in (1, 2, 4)]
    assert len({c.key for c in configs}) == 12
    assert all(c.samples == 24 for c in configs)  # the whole .npz when --samples is not given


def test_all_and_own_block_sizes(tiny):
    assert [c.block_size for c in _plan(tiny, block_sizes="all")] == [1, 2, 4]  # divisors of T = 4
    assert [c.block_size for c in _plan(tiny, block_sizes="own")] == [2]       # trained with chunk_size 2


def test_no_checkpoint_sweeps_the_embedded_family_each_at_its_own_b():
    configs = plan([], "own", ["loihi2"], [8], samples=5)
    assert [(c.checkpoint, c.block_size) for c in configs] == [(str(seq_checkpoint(b)), b) for b in SEQ_BLOCK_SIZES]
    assert {c.dataset for c in configs} == {"digits-seq"}
    assert {c.series for c in configs} == {OWN_SERIES}
    assert {c.samples for c in configs} == {5}


def test_samples_are_capped_at_the_test_split(tiny):
    assert {c.samples for c in _plan(tiny, samples=1000)} == {24}
    assert {c.samples for c in _plan(tiny, samples=7)} == {7}


def test_key_is_stable_for_equal_inputs(tiny):
    assert [c.key for c in _plan(tiny)] == [c.key for c in _plan(tiny)]


def test_key_follows_checkpoint_bytes(tiny, tmp_path):
    ckpt = shutil.copy(tiny[0], tmp_path / "same.pth")
    same = plan([str(ckpt)], "2", ["loihi2"], [8], dataset=str(tiny[1]), calibration_samples=8)
    assert same[0].key == _plan(tiny, block_sizes="2")[0].key  # content, not path
    save_tiny_checkpoint(ckpt, seed=1)  # other weights, same file name
    retrained = plan([str(ckpt)], "2", ["loihi2"], [8], dataset=str(tiny[1]), calibration_samples=8)
    assert retrained[0].key != same[0].key


def test_key_follows_target_file_bytes(tiny, tmp_path):
    builtin = resources.files("statten_hw.targets").joinpath("builtin", "loihi2.toml").read_bytes()
    copy = tmp_path / "loihi2.toml"
    copy.write_bytes(builtin)
    as_file = _plan(tiny, targets=(str(copy),))[0].key
    assert as_file == _plan(tiny)[0].key  # the built-in name stands for the same bytes
    copy.write_bytes(builtin + b"\n# edited\n")
    assert _plan(tiny, targets=(str(copy),))[0].key != as_file


@pytest.mark.parametrize("change", [{"bits": (4,)}, {"samples": 10}, {"block_sizes": "2"},
                                    {"precisions": ("target",)}])
def test_key_follows_options(tiny, change):
    base = _plan(tiny, block_sizes="1")[0].key
    changed = dict({"block_sizes": "1"}, **change)
    assert _plan(tiny, **changed)[0].key != base


def test_key_follows_calibration_and_version(tiny, monkeypatch):
    ckpt, data = tiny
    base = _plan(tiny)[0].key
    assert plan([str(ckpt)], "1,2,4", ["loihi2"], [8], dataset=str(data), calibration_samples=9)[0].key != base
    monkeypatch.setattr(C, "__version__", "99.0")
    assert _plan(tiny)[0].key != base


def test_key_follows_the_code(tiny, monkeypatch, tmp_path):
    # an edited checkout under the same version: the digest reads every source file of the packages
    package = tmp_path / "fingerprinted"
    package.mkdir()
    (package / "__init__.py").write_text("RULE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = C.code_digest.__wrapped__(("fingerprinted",))
    assert C.code_digest.__wrapped__(("fingerprinted",)) == before
    (package / "rules.py").write_text("ROUNDING = 'half up'\n")
    with_file = C.code_digest.__wrapped__(("fingerprinted",))
    (package / "rules.py").write_text("ROUNDING = 'half even'\n")
    assert len({before, with_file, C.code_digest.__wrapped__(("fingerprinted",))}) == 3
    base = _plan(tiny)[0].key
    monkeypatch.setattr(C, "code_digest", lambda: "other code")
    assert _plan(tiny)[0].key != base


def test_int_list_keeps_order_and_drops_repeats():
    assert C.int_list("4, 2,4,1", "--bits") == [4, 2, 1]


def test_sanafe_target_is_keyed_by_its_shipped_file(tiny, tmp_path):
    from statten_hw.targets import sanafe

    copy = tmp_path / "loihi.yaml"
    copy.write_bytes(sanafe.shipped_path("loihi").read_bytes())
    assert _plan(tiny, targets=("sanafe:loihi",))[0].key == _plan(tiny, targets=(str(copy),))[0].key
    assert _plan(tiny, targets=("sanafe:loihi",))[0].key != _plan(tiny)[0].key


def test_an_unknown_precision_is_refused_before_anything_runs(tiny):
    from statten_hw.errors import InputError

    with pytest.raises(InputError, match="--precision must be one of graph, target, got 'chip'"):
        _plan(tiny, precisions=("graph", "chip"))
