"""Bad checkpoints and options: each gives a one-line CheckpointError naming the problem."""
from __future__ import annotations

import argparse
import io
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
        torch.save(ckpt, path)
    return make


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
    "T not divisible by B": (_with_state(lambda sd, c: setattr(c["args"], "chunk_size", 3)),
                             "T = 4 is not divisible by the block size B = 3"),
    "not a dict": (lambda p: torch.save([torch.zeros(1)], p), "top level is a list"),
}


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
