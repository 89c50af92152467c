"""Hostile checkpoints through every command that reads one: one line, exit code 2, nothing written.

30 hostile files x 6 commands (info, eval, export, map, energy, simulate) run in-process through
``statten_hw.cli.main``; 5 of them also through a real process (``python -m statten_hw.cli``,
``python -m statten_hw`` and the ``statten-hw`` script) to check the exit status and that no traceback reaches stderr; 3 with
``--debug``, which must show the traceback instead. The payload files prove that nothing from a
refused pickle runs: unpickling them would create a marker file, which must never appear.
Complements tests/models/test_failcases.py (the loader's own messages, ``info`` only).
"""
from __future__ import annotations

import random
import zipfile

import pytest
import torch
import torchvision

from robust_helpers import (COMMANDS, FilePayload, assert_one_line_error, declared_storage_zip, official_dict,
                            raw_pickle_payload, run_cli)
from statten_hw.cli import main
from statten_hw.defaults import default_checkpoint
from statten_hw.errors import CheckpointError

MARKER = "payload-ran"  # created next to a payload file if its __reduce__ is ever executed


def _saved(mutate, **save_options):
    """A builder: the embedded checkpoint, changed by ``mutate(ckpt, state_dict)``, saved by torch."""
    def build(path):
        ckpt = official_dict()
        changed = mutate(ckpt, ckpt["state_dict"])
        torch.save(ckpt if changed is None else changed, path, **save_options)
    return build


def _set_arg(**values):
    def mutate(ckpt, state):
        for key, value in values.items():
            setattr(ckpt["args"], key, value)
    return _saved(mutate)


def _set_tensor(key, value):
    return _saved(lambda c, sd: sd.__setitem__(key, value(sd[key]) if callable(value) else value))


def _payload_in_args(path, **save_options):
    _saved(lambda c, sd: c.__setitem__("args", FilePayload(path.parent / MARKER)), **save_options)(path)


def _bytes(make):
    return lambda path: path.write_bytes(make(default_checkpoint().read_bytes()))


def _zip(entries: dict):
    def build(path):
        with zipfile.ZipFile(path, "w") as z:
            for name, data in entries.items():
                z.writestr(name, data)
    return build


def _resnet18(path):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)


def _poke(index, value):
    def change(w):
        w = w.clone()
        w.view(-1)[index] = value
        return w
    return change


#: names the refused global, and gives none of torch's advice to allow-list it
REFUSED = r"refused: .*allow-list.*GLOBAL (builtins|io)\.open(?!.*safe_globals)"

# name -> (builder(path), pattern the one-line message must match)
CASES = {
    # code execution
    "payload in args (torch zip)": (_payload_in_args, REFUSED),
    "payload in args (legacy torch format)": (
        lambda p: _payload_in_args(p, _use_new_zipfile_serialization=False), REFUSED),
    "payload as a plain pickle": (lambda p: raw_pickle_payload(p, p.parent / MARKER), REFUSED),
    "whole pickled nn.Module": (lambda p: torch.save(torch.nn.Linear(2, 2), p), r"refused: .*allow-list"),
    # damaged files
    "empty file": (_bytes(lambda b: b""), r"not a readable torch checkpoint"),
    "truncated to the header": (_bytes(lambda b: b[:100]), r"not a readable torch checkpoint"),
    "truncated in the middle": (_bytes(lambda b: b[: len(b) // 2]), r"not a readable torch checkpoint"),
    "last byte missing": (_bytes(lambda b: b[:-1]), r"not a readable torch checkpoint"),
    "random bytes": (lambda p: p.write_bytes(random.Random(0).randbytes(4096)), r"not a readable torch checkpoint"),
    "zip that is not a checkpoint": (_zip({"hello.txt": "not a checkpoint"}), r"not a readable torch checkpoint"),
    "zip with a garbage pickle": (_zip({"archive/data.pkl": b"\x80\x02garbage", "archive/version": "3\n"}),
                                  r"not a readable torch checkpoint"),
    "a folder": (lambda p: p.mkdir(), r"a folder, not a checkpoint file"),
    # values
    "NaN weights": (_set_tensor("head.weight", _poke(3, float("nan"))), r"non-finite values .* in 'head\.weight'"),
    "Inf weights": (_set_tensor("block.0.attn.q_conv.weight", _poke(0, float("inf"))),
                    r"non-finite values .* in 'block\.0\.attn\.q_conv\.weight'"),
    "-Inf BN variance": (_set_tensor("patch_embed.proj_bn.running_var", _poke(0, float("-inf"))),
                         r"non-finite .*'patch_embed\.proj_bn\.running_var'"),
    # absurd shapes (nothing of the declared size is allocated)
    "10^12 elements declared, 16 bytes stored": (
        lambda p: declared_storage_zip(p, 10**12, (10**6, 10**6), (10**6, 1)), r"not a readable.*record size"),
    "10^12-element shape on a 4-element storage": (
        lambda p: declared_storage_zip(p, 4, (10**6, 10**6), (10**6, 1)), r"not a readable torch checkpoint"),
    "10^12 classes from an empty tensor": (_set_tensor("head.weight", torch.empty(10**12, 0)),
                                           r"shape mismatch at 'head\.weight': checkpoint \(1000000000000, 0\)"),
    "MLP narrower than dim": (_set_tensor("block.0.mlp.fc1_conv.weight", lambda w: w[:16]),
                              r"MLP ratio 0 .* must be >= 1"),
    "10^11 blocks from one key": (_set_tensor("block.100000000000.attn.extra", torch.zeros(1)),
                                  r"block 1 is missing \(largest index 100000000000\)"),
    "image size 10^6 in args": (_set_arg(img_size=10**6), r"image size 1000000 px exceeds the limit"),
    "T = 10^7 in args": (_set_arg(time_steps=10**7, chunk_size=1), r"T = 10000000 time steps exceeds the limit"),
    # wrong types
    "int32 weights": (_set_tensor("head.weight", lambda w: w.to(torch.int32)),
                      r"wrong dtype at 'head\.weight': torch\.int32"),
    "complex weights": (_set_tensor("head.weight", lambda w: w.to(torch.complex64)), r"wrong dtype .*complex64"),
    "sparse weights": (_set_tensor("head.weight", lambda w: w.to_sparse()), r"'head\.weight' is torch\.sparse_coo"),
    "image size as text": (_set_arg(img_size="8"), r"args\.img_size must be an integer, got str '8'"),
    "DVS flag as text": (_set_arg(dvs_mode="no"), r"args\.dvs_mode must be true or false, got str 'no'"),
    "args as a list": (_saved(lambda c, sd: c.__setitem__("args", [1, 2])), r"'args' is a list"),
    "integer key": (_saved(lambda c, sd: sd.__setitem__(7, torch.zeros(1))), r"keys must be strings, got int 7"),
    # other models
    "torchvision resnet18 state_dict": (_resnet18, r"unknown architecture: .*keys seen: .*'conv1\.weight'"),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Each case's file, written once, in its own folder (so a payload's marker would land there)."""
    def path(case):
        folder = tmp_path_factory.getbasetemp() / "hostile" / str(sorted(CASES).index(case))
        file = folder / "bad.pth"
        if not folder.exists():
            folder.mkdir(parents=True)
            CASES[case][0](file)
        return file
    return path


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_checkpoint_is_one_line_error(hostile, tmp_path, capsys, case, command):
    ckpt, out = hostile(case), tmp_path / "out"
    rc = main(COMMANDS[command](ckpt, out))
    assert_one_line_error(rc, capsys.readouterr().err, CASES[case][1])
    assert not out.exists(), f"{command} wrote {sorted(out.rglob('*'))} before failing"
    assert not (ckpt.parent / MARKER).exists(), "code from the pickle ran"


@pytest.mark.parametrize("case", ["payload in args (torch zip)", "sparse weights", "10^11 blocks from one key"])
@pytest.mark.parametrize("where", ["before the command", "after the command"])
def test_debug_shows_the_traceback(hostile, case, where):
    argv = ["info", str(hostile(case))]
    with pytest.raises(CheckpointError):
        main(["--debug", *argv] if where == "before the command" else [*argv, "--debug"])


@pytest.mark.parametrize("case, command, entry", [
    ("payload as a plain pickle", "info", "module"),
    ("10^12 elements declared, 16 bytes stored", "map", "script"),
    ("torchvision resnet18 state_dict", "energy", "module"),
    ("truncated in the middle", "export", "script"),
    ("payload in args (torch zip)", "simulate", "package"),
])
def test_real_process_exits_2_without_traceback(hostile, tmp_path, case, command, entry):
    ckpt, out = hostile(case), tmp_path / "out"
    done = run_cli(*COMMANDS[command](ckpt, out), entry=entry)
    assert_one_line_error(done.returncode, done.stderr, CASES[case][1])
    assert not out.exists() and not (ckpt.parent / MARKER).exists()

