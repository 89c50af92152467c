"""Shared pieces of the robustness suite: the commands that read a checkpoint, the one-line-error
check, the command line run as a real process, damaged copies of a file for hypothesis, and
hostile files built by hand."""
from __future__ import annotations

import argparse
import collections
import io
import pickle
import re
import struct
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import torch
from hypothesis import strategies as st

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
#: The three ways to start the command line: the module, the package (``__main__``) and the script.
ENTRY_POINTS = {"module": [sys.executable, "-m", "statten_hw.cli"], "package": [sys.executable, "-m", "statten_hw"],
                "script": [str(CONSOLE_SCRIPT)]}


def assert_one_line_error(rc: int, err: str, pattern: str) -> None:
    """Exit code 2 and exactly one stderr line, ``statten-hw: error: ...`` matching ``pattern``."""
    assert rc == 2, f"exit code {rc}, stderr: {err[-2000:]}"
    assert "Traceback" not in err, err[-2000:]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("statten-hw: error: "), err[-2000:]
    assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"


def run_cli(*args: str, entry: str = "module", timeout: float = 300) -> subprocess.CompletedProcess:
    """The command line in a fresh process, started through ``entry`` (`ENTRY_POINTS`)."""
    return subprocess.run([*ENTRY_POINTS[entry], *args], capture_output=True, text=True, timeout=timeout)


def default_sigint() -> None:
    """``preexec_fn`` of a child that must take Ctrl-C: a shell starts background jobs with SIGINT
    ignored, children inherit that, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_cli(*args: str, **options) -> subprocess.Popen:
    """The command line as a running process (``python -m statten_hw.cli``), its output piped as text
    unless ``options`` (for ``subprocess.Popen``) say otherwise; SIGINT as a terminal gives it."""
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "preexec_fn": default_sigint,
               **options}
    return subprocess.Popen([*ENTRY_POINTS["module"], *args], **options)


def official_dict() -> dict:
    """The embedded default checkpoint as the dict ``torch.save`` wrote (args, state_dict, ...)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(default_checkpoint(), weights_only=True)


def scratch_files(folder: Path) -> list[str]:
    """What a finished or interrupted write must not leave in ``folder``: temporaries (hidden files)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp"))


# ---------------------------------------------------------------- mutated files (hypothesis)

def member_span(base: bytes, name_suffix: str) -> tuple[int, int]:
    """Byte range of a zip member's data: after its local header (30 bytes + name + extra field)."""
    with zipfile.ZipFile(io.BytesIO(base)) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(name_suffix))
    name_len, extra_len = struct.unpack("<HH", base[info.header_offset + 26: info.header_offset + 30])
    begin = info.header_offset + 30 + name_len + extra_len
    return begin, begin + info.compress_size


def directory_span(base: bytes) -> tuple[int, int]:
    """Byte range of a zip's central directory (to its end)."""
    with zipfile.ZipFile(io.BytesIO(base)) as z:
        return z.start_dir, len(base)


@st.composite
def mutations(draw, base: bytes, regions: dict[str, tuple[int, int]]) -> bytes:
    """``base`` damaged within one of ``regions`` (name -> byte range): bytes set, the file cut
    short, a run deleted, or random bytes inserted."""
    data = bytearray(base)
    low, high = regions[draw(st.sampled_from(sorted(regions)))]
    position = st.integers(low, high - 1)
    kind = draw(st.sampled_from(["set", "truncate", "delete", "insert"]))
    if kind == "set":
        for pos, value in draw(st.lists(st.tuples(position, st.integers(0, 255)), min_size=1, max_size=8)):
            data[pos] = value
    elif kind == "truncate":
        del data[draw(position):]
    elif kind == "delete":
        start = draw(position)
        del data[start: start + draw(st.integers(1, 64))]
    else:
        start = draw(position)
        data[start:start] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


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
