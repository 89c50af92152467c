"""Bad checkpoints and options: each gives a one-line CheckpointError naming the problem."""
from __future__ import annotations

import argparse
import io
import sys
import warnings
import zipfile

import pytest
import torch

from conftest import official_checkpoint
from statten_hw import load_checkpoint
from statten_hw.cli import main
from statten_hw.errors import CheckpointError


class _Payload:
    """Unpickling this would create a file: proof that nothing from a refused file runs."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def _official_dict():
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(official_checkpoint("statten_cifar_t4_b2"), weights_only=True)


def _write(tmp_path, make):
    path = tmp_path / "bad.pth"
    make(path)
    return path


def _with_state(mutate):
    def make(path):
        ckpt = _official_dict()
        mutate(ckpt["state_dict"], ckpt)
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(20_000)  # pickling a deeply nested value recurses; loading it does not
        try:
            torch.save(ckpt, path)
        finally:
            sys.setrecursionlimit(limit)
    return make


def _qint8(value: float) -> torch.Tensor:
    """A quantized tensor, as an old post-training quantization flow saved them (torch now deprecates
    creating them, with a warning this test does not need to see)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.quantize_per_tensor(torch.tensor(value), 1.0, 0, torch.qint8)


def _zip_not_torch(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "not a checkpoint")


CASES = {
    "missing file": (lambda p: None, "no such file"),
    "random bytes": (lambda p: p.write_bytes(bytes(range(256)) * 40), "not a readable torch checkpoint"),
    "truncated": (lambda p: p.write_bytes(official_checkpoint("sdt_cifar_t4").read_bytes()[:50000]),
                  "not a readable torch checkpoint"),
    "zip not torch": (_zip_not_torch, "not a readable torch checkpoint"),
    "empty file": (lambda p: p.write_bytes(b""), "not a readable torch checkpoint"),
    "unknown architecture": (lambda p: torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, p),
                             r"unknown architecture.*keys seen: \['fc.weight'\]"),
    "missing key": (_with_state(lambda sd, c: sd.pop("block.1.mlp.fc2_conv.bias")),
                    "missing keys.*block.1.mlp.fc2_conv.bias"),
    "unexpected key": (_with_state(lambda sd, c: sd.__setitem__("block.0.attn.extra.weight", torch.zeros(1))),
                       "unexpected keys.*block.0.attn.extra.weight"),
    "shape mismatch": (_with_state(lambda sd, c: sd.__setitem__("head.bias", torch.zeros(11))),
                       r"shape mismatch at 'head.bias'"),
    "NaN weights": (_with_state(lambda sd, c: sd["block.0.attn.q_conv.weight"].fill_(float("nan"))),
                    r"non-finite.*block.0.attn.q_conv.weight"),
    "wrong dtype": (_with_state(lambda sd, c: sd.__setitem__("head.weight", torch.zeros(10, 64, dtype=torch.int32))),
                    r"wrong dtype at 'head.weight'"),
    "float8 weights": (_with_state(lambda sd, c: sd.__setitem__("head.weight", sd["head.weight"].to(torch.float8_e4m3fn))),
                       r"unsupported dtype at 'head.weight': torch.float8_e4m3fn"),  # was a traceback (review)
    "complex counter": (_with_state(lambda sd, c: sd.__setitem__("patch_embed.proj_bn.num_batches_tracked",
                                                                 torch.tensor(3 + 1j))),
                        r"wrong dtype at 'patch_embed.proj_bn.num_batches_tracked': torch.complex64, expected "
                        r"torch.int64"),  # loaded with a torch warning, its imaginary part dropped
    "quantized counter": (_with_state(lambda sd, c: sd.__setitem__(
        "patch_embed.proj_bn.num_batches_tracked", _qint8(3.0))),
        r"wrong dtype at 'patch_embed.proj_bn.num_batches_tracked': torch.qint8, expected torch.int64"),  # traceback
    "T not divisible by B": (_with_state(lambda sd, c: setattr(c["args"], "chunk_size", 3)),
                             "T = 4 is not divisible by the block size B = 3"),
    "not a dict": (lambda p: torch.save([torch.zeros(1)], p), "top level is a list"),
    # Found by review: each of these was a traceback, a minutes-long build or a 1 MB error line.
    "negative BN variance": (_with_state(lambda sd, c: sd["block.0.attn.q_bn.running_var"].__setitem__(0, -0.5)),
                             r"negative running variance in 'block.0.attn.q_bn.running_var'"),
    "meta tensor": (_with_state(lambda sd, c: sd.__setitem__("head.weight", torch.empty(10, 64, device="meta"))),
                    r"tensor 'head.weight' is on device 'meta'"),
    "args nested 3000 deep": (_with_state(lambda sd, c: setattr(c["args"], "img_size", _nested(3000))),
                              r"args.img_size must be an integer, got list \[\[\[\[\.\.\.\]\]\]\]"),
    "1 MB pooling string": (_with_state(lambda sd, c: setattr(c["args"], "pooling_stat", "0" * 10**6)),
                            r"pooling_stat must be four 0/1 characters, got str '0+\.\.\.0*'$"),
    "many fake blocks": (_with_state(lambda sd, c: sd.update({f"block.{i}.x": torch.zeros(1) for i in range(2, 5000)})),
                         "5000 blocks exceed the limit of 128"),
    "T x image too large": (_with_state(lambda sd, c: (setattr(c["args"], "time_steps", 1024),
                                                      setattr(c["args"], "img_size", 1024),
                                                      setattr(c["args"], "chunk_size", 1))),
                            r"T x image size² = 1024 x 1024² exceeds the limit"),
    "Spikformer without its head count": (lambda p: torch.save(_spikformer_state(), p),
                                           r"head count is not in its weights.*heads=N"),
    # Official layouts that are recognised but not built: named, not a "missing key" further on.
    "Spikformer ImageNet layout": (lambda p: torch.save({"state_dict": _spikformer_imagenet_state()}, p),
                                   r"Spikformer ImageNet layout .*shape \(64, 64, 1\)\) is not supported"),
    "QKFormer": (lambda p: torch.save({"state_dict": {"patch_embed1.proj_conv.weight": torch.zeros(48, 3, 3, 3),
                                                      "stage3.0.ssa.q_conv.weight": torch.zeros(384, 384, 1)}}, p),
                 r"QKFormer \(CIFAR layout\).*not supported \(key 'stage3.0.ssa.q_conv.weight'\)"),
    "Spike-driven Transformer v2": (lambda p: torch.save({"state_dict": {
        "downsample1_1.encode_conv.weight": torch.zeros(64, 3, 7, 7)}}, p), r"Spike-driven Transformer v2"),
}


def _spikformer_imagenet_state() -> dict:
    """Spikformer's CIFAR weights in the ImageNet file's layout (reference section 5, keys file): q/k/v/proj
    are Conv1d ``[C, C, 1]`` named ``*_conv`` (q/k/v without bias), the MLP Conv2d ``[C', C, 1, 1]``."""
    state = {}
    for key, value in _spikformer_state().items():
        layer = key.rsplit(".", 2)[-2] if key.count(".") >= 2 else ""
        if layer.endswith("_linear"):
            if key.endswith("bias") and layer in ("q_linear", "k_linear", "v_linear"):
                continue
            key = key.replace("_linear.", "_conv.")
            if key.endswith("weight"):
                value = value[..., None] if ".attn." in key else value[..., None, None]
        state[key] = value
    return state


def _nested(depth: int) -> list:
    outer = inner = []
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


def _spikformer_state() -> dict:
    """A bare Spikformer state_dict (no args): ``torch.save(model.state_dict())``."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(official_checkpoint("spikformer_cifar_t4"), weights_only=True)["state_dict"]


def test_bare_spikformer_loads_with_the_head_count_given(tmp_path):
    path = tmp_path / "bare.pth"
    torch.save(_spikformer_state(), path)
    assert load_checkpoint(path, heads=4).config.heads == 4


def test_state_dict_without_batch_counters_loads_as_torch_would(tmp_path):
    """``num_batches_tracked`` is unused by the forward pass; converted state dicts often drop it, and
    ``nn.Module.load_state_dict`` accepts that. The logits are the same."""
    ckpt = _official_dict()
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if not k.endswith("num_batches_tracked")}
    torch.save(ckpt, tmp_path / "no_counters.pth")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(load_checkpoint(tmp_path / "no_counters.pth")(x),
                           load_checkpoint(official_checkpoint("statten_cifar_t4_b2"))(x))


def test_statten_scale_follows_the_input_size_as_the_official_code_does():
    """The official forward takes H from the tensor it is given (scale 1/H), not from ``args.img_size``:
    a 32 px model fed 64 px input computes what the same weights loaded for 64 px compute."""
    path = official_checkpoint("statten_cifar_t4_b2")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(load_checkpoint(path)(x), load_checkpoint(path, img_size=64)(x))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_checkpoint_is_refused(tmp_path, case):
    make, message = CASES[case]
    path = _write(tmp_path, make)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_pickle_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    ckpt = _official_dict()
    ckpt["args"] = _Payload(str(marker))
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="allow-list"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["missing file", "truncated", "unknown architecture", "T not divisible by B"])
def test_cli_prints_one_line_and_exits_2(tmp_path, capsys, case):
    make, message = CASES[case]
    path = _write(tmp_path, make)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("statten-hw: error:") and "Traceback" not in err


def test_cli_block_size_override_checked(capsys):
    assert main(["info", str(official_checkpoint("statten_cifar_t4_b2")), "-B", "3"]) == 2
    assert "not divisible" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["info"], ["eval", "--dataset"], ["map", "--target"]])
def test_a_newline_in_a_path_keeps_the_error_on_one_line(tmp_path, capsys, command):
    """A path the user gave with a newline in it split the error line in two (review)."""
    path = tmp_path / "no\nsuch.pth"
    args = [*command, str(path)] if command != ["eval", "--dataset"] else ["eval", "--dataset", f"{path}.npz"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no[newline]such" in err


def test_torchs_allocation_failure_is_the_one_line_out_of_memory_error(capsys, monkeypatch):
    """torch's CPU allocator raises RuntimeError, not MemoryError (export --batch 100000000; review)."""
    import statten_hw.cli as cli

    def allocate(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] . DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 25600000000 bytes.")

    monkeypatch.setattr(cli, "cmd_info", allocate)  # build_parser binds it when main calls it
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert err == "statten-hw: error: out of memory (the model, data or target is larger than this machine holds)\n"


def test_a_model_larger_than_the_memory_is_refused_before_it_is_built(monkeypatch):
    """The size comes from the declared shapes (on meta): twice the embedded model's parameter and buffer
    bytes, counted here from its own state_dict, against 80 % of what is available (review: a 23 KB file
    of stride-0 tensors declaring a 16,384-wide model was killed by the OS at 24 GB)."""
    import statten_hw.resources as resources
    from statten_hw.defaults import default_checkpoint
    from statten_hw.errors import CheckpointError
    from statten_hw.models import load_checkpoint

    model = load_checkpoint(default_checkpoint())
    need = 2 * sum(t.numel() * t.element_size() for t in model.state_dict().values())
    monkeypatch.setattr(resources, "available_memory", lambda: int(need / 0.8) - 8)
    with pytest.raises(CheckpointError, match=r"needs about .* to load, more than 80% of the"):
        load_checkpoint(default_checkpoint())
    monkeypatch.setattr(resources, "available_memory", lambda: int(need / 0.8) + 8)
    assert load_checkpoint(default_checkpoint()).config == model.config
