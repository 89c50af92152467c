"""Shared pieces of the robustness suite: the commands that read a checkpoint, the one-line-error
check, the command line run as a real process, and hostile files built by hand."""
from __future__ import annotations

import argparse
import collections
import io
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

from statten_hw.defaults import default_checkpoint

#: Every command that reads a checkpoint, with the arguments it needs to write into ``out``.
COMMANDS = {
    "info": lambda ckpt, out: ["info", str(ckpt)],
    "eval": lambda ckpt, out: ["eval", str(ckpt)],
    "export": lambda ckpt, out: ["export", str(ckpt), "-o", str(out)],
    "map": lambda ckpt, out: ["map", str(ckpt), "-o", str(out)],
    "energy": lambda ckpt, out: ["energy", str(ckpt), "-o", str(out)],
    "simulate": lambda ckpt, out: ["simulate", str(ckpt), "-o", str(out), "--samples", "1"],
}
CONSOLE_SCRIPT = Path(sys.executable).with_name("statten-hw")


def assert_one_line_error(rc: int, err: str, pattern: str) -> None:
    """Exit code 2 and exactly one stderr line, ``statten-hw: error: ...`` matching ``pattern``."""
    assert rc == 2, f"exit code {rc}, stderr: {err[-2000:]}"
    assert "Traceback" not in err, err[-2000:]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("statten-hw: error: "), err[-2000:]
    assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"


def run_cli(*args: str, script: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command line in a fresh process: ``python -m statten_hw.cli`` or the installed script."""
    argv = [str(CONSOLE_SCRIPT)] if script else [sys.executable, "-m", "statten_hw.cli"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout)


def popen_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "statten_hw.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def official_dict() -> dict:
    """The embedded default checkpoint as the dict ``torch.save`` wrote (args, state_dict, ...)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(default_checkpoint(), weights_only=True)


def scratch_files(folder: Path) -> list[str]:
    """What a finished or interrupted write must not leave in ``folder``: temporaries (hidden files)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp"))


# ---------------------------------------------------------------- hostile pickles and zips

class FilePayload:
    """Unpickling this calls ``open(target, 'w')``: if the file appears, code from the file ran."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


class _DeclaredStorage:
    """Stands for a storage in a hand-written checkpoint pickle (see :func:`declared_storage_zip`)."""


class _DeclaredTensor:
    def __init__(self, size, stride):
        self.size, self.stride = tuple(size), tuple(stride)

    def __reduce__(self):
        # exactly what torch.save writes for a tensor: torch._utils._rebuild_tensor_v2(storage, offset, ...)
        return (torch._utils._rebuild_tensor_v2,
                (_DeclaredStorage(), 0, self.size, self.stride, False, collections.OrderedDict()))


class _StoragePickler(pickle.Pickler):
    def __init__(self, file, numel: int):
        super().__init__(file, protocol=2)
        self.numel = numel

    def persistent_id(self, obj):
        # torch's zip format: ('storage', storage type, record key, location, element count)
        return ("storage", torch.FloatStorage, "0", "cpu", self.numel) if isinstance(obj, _DeclaredStorage) else None


def declared_storage_zip(path: Path, numel: int, size, stride, record: bytes = b"\0" * 16) -> Path:
    """A torch zip checkpoint written by hand whose one tensor *declares* ``numel`` float elements
    and shape ``size`` while its data record holds only ``record``: the file is tiny, and nothing
    of the declared size is ever allocated here."""
    data = io.BytesIO()
    state = {"state_dict": {"head.weight": _DeclaredTensor(size, stride)}}
    _StoragePickler(data, numel).dump(state)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data.getvalue())
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", record)
        z.writestr("archive/version", "3\n")
    return path


def raw_pickle_payload(path: Path, marker: Path) -> Path:
    """A plain pickle (no torch zip container) whose only object is :class:`FilePayload`."""
    path.write_bytes(pickle.dumps({"state_dict": FilePayload(marker)}, protocol=2))
    return path
