"""Hostile and damaged ``.npz`` data files: one line naming the file and the problem, or a correct load.

* 31 hostile files (0-d arrays, strings, bytes, complex numbers, an object array whose unpickling
  would create a file, no samples, wrong ranks and image sizes, NaN / Inf / beyond float32, labels
  that are NaN, negative, fractional or 2-D, x and y of different lengths, missing arrays, a header
  declaring 10^12 elements in a file of a few hundred bytes, for x and for y, a header declaring
  more than its data, a .npy format version 9, non-zip bytes, a plain .npy renamed, an empty file,
  a zip cut short, a folder) through ``eval --dataset`` and ``simulate --input`` (in-process), and
  ``export --calibration`` for three of them. ``simulate`` writes nothing.
* A valid file, plain and compressed, loads exactly (float32 x, int64 y).
* ``test_mutated_bytes`` (hypothesis, 200 examples): damaged copies of a valid file, plain and
  compressed (bytes set anywhere, in the ``x.npy`` header or data, or in the zip directory; cut
  short; a run deleted; bytes inserted): ``load_npz`` returns checked arrays or raises InputError.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings

from robust_helpers import FilePayload, assert_one_line_error, directory_span, member_span, mutations
from statten_hw.cli import main
from statten_hw.data import load_dataset, load_npz
from statten_hw.errors import InputError

MARKER = "payload-ran"
GOOD_X = np.random.default_rng(0).random((6, 1, 8, 8), dtype=np.float32)
GOOD_Y = np.arange(6) % 10


def _npz(**arrays):
    def build(path: Path) -> None:
        np.savez(path, **arrays)
    return build


def _valid(**changes):
    return _npz(**{"x": GOOD_X, "y": GOOD_Y, **changes})


def _npy(array: np.ndarray, shape: tuple | None = None, version: bytes = b"\x01\x00") -> bytes:
    """``array``'s bytes after a hand-written .npy header declaring ``shape`` (default: its own)."""
    header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False,
              "shape": array.shape if shape is None else shape}
    text = repr(header).encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"  # padded to 64 bytes, as numpy writes it
    return b"\x93NUMPY" + version + len(text).to_bytes(2, "little") + text + array.tobytes()


def _zip(**members: bytes):
    """A hand-built .npz: ``{name}.npy`` members with the given bytes."""
    def build(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(f"{name}.npy", data)
    return build


def _bytes(data: bytes):
    def build(path: Path) -> None:
        path.write_bytes(data)
    return build


def _object_payload(path: Path) -> None:
    """x is an object array whose unpickling would create ``MARKER`` next to the file."""
    x = np.empty(2, dtype=object)
    x[:] = [FilePayload(path.parent / MARKER), 1]
    np.savez(path, x=x, y=np.arange(2))


def _cut_in_half(path: Path) -> None:
    _valid()(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _plain_npy(path: Path) -> None:
    np.save(path.with_suffix(".npy"), GOOD_X)
    path.with_suffix(".npy").rename(path)


def _folder(path: Path) -> None:
    path.mkdir()


HUGE = (10**12,)  # elements declared in a header of a few hundred bytes
CASES = {  # name -> (builder, expected message)
    "0-d x": (_valid(x=np.float32(1.0)), r"array 'x' is a single value \(0-d\)"),
    "0-d y": (_valid(y=np.int64(3)), r"array 'y' is a single value \(0-d\)"),
    "string x": (_valid(x=np.array(["a", "b"])), r"array 'x' has dtype <U1; need numbers"),
    "string y": (_valid(y=np.array(["cat"] * 6)), r"array 'y' has dtype <U3; need numbers"),
    "bytes x": (_valid(x=np.array([b"ab"] * 6)), r"array 'x' has dtype \|S2; need numbers"),
    "complex x": (_valid(x=GOOD_X.astype(np.complex64)), r"array 'x' has dtype complex64; need numbers"),
    "object x that would unpickle a payload": (_object_payload, r"array 'x' holds Python objects \(object\)"),
    "no samples": (_valid(x=GOOD_X[:0], y=GOOD_Y[:0]), r"holds no samples \(x has shape \[0, 1, 8, 8\]\)"),
    "x of rank 2": (_valid(x=GOOD_X.reshape(6, 64)), r"x has shape \[6, 64\]; need \[N, C, H, W\]"),
    "x of rank 6": (_valid(x=GOOD_X[:, None, None]), r"x has shape \[6, 1, 1, 1, 8, 8\]"),
    "16 px images for an 8 px model": (_valid(x=np.zeros((6, 1, 16, 16), np.float32)),
                                       r"data samples have shape \[1, 16, 16\]; the model takes \[1, 8, 8\]"),
    "3 channels for a 1-channel model": (_valid(x=np.zeros((6, 3, 8, 8), np.float32)),
                                         r"data samples have shape \[3, 8, 8\]"),
    "NaN in x": (_valid(x=np.where(GOOD_X > 0.5, np.nan, GOOD_X)), r"x holds NaN or infinite values"),
    "Inf in x": (_valid(x=np.full_like(GOOD_X, -np.inf)), r"x holds NaN or infinite values"),
    "beyond float32": (_valid(x=np.full(GOOD_X.shape, 1e300)), r"beyond float32's range"),
    "NaN label": (_valid(y=np.array([0, 1, np.nan, 3, 4, 5])), r"y must hold class labels, integers >= 0"),
    "negative label": (_valid(y=-GOOD_Y - 1), r"y must hold class labels"),
    "fractional label": (_valid(y=GOOD_Y + 0.5), r"y must hold class labels"),
    "label beyond the model's classes": (_valid(y=np.array([0, 1, 12, 3, 4, 5])),
                                         r"label 12 is beyond the model's 10 classes \(0..9\)"),
    "labels 2-D": (_valid(y=GOOD_Y[:, None]), r"y has shape \[6, 1\]; need one label per sample"),
    "x and y of different lengths": (_valid(y=GOOD_Y[:4]), r"x has 6 samples but y has 4"),
    "missing y": (_npz(x=GOOD_X), r"missing array 'y' \(need 'x' and 'y'"),
    "other names only": (_npz(images=GOOD_X, labels=GOOD_Y), r"missing array 'x'"),
    "10^12 elements declared in x": (_zip(x=_npy(np.zeros(2), HUGE), y=_npy(GOOD_Y)),
                                     r"array 'x' declares shape \[1000000000000\] \(8,000,000,000,000 bytes\)"),
    "10^12 elements declared in y": (_zip(x=_npy(GOOD_X), y=_npy(np.zeros(2, np.int64), HUGE)),
                                     r"array 'y' declares shape \[1000000000000\]"),
    "header declares more than its data": (_zip(x=_npy(GOOD_X, (7, 1, 8, 8)), y=_npy(GOOD_Y)),
                                           r"declares shape \[7, 1, 8, 8\] \(1,792 bytes\) but holds 1,536 bytes"),
    "npy format version 9": (_zip(x=_npy(GOOD_X, version=b"\x09\x00"), y=_npy(GOOD_Y)),
                             r"array 'x' has .npy format version \(9, 0\); readable: 1.0, 2.0"),
    "non-zip bytes": (_bytes(b"these are not the bytes of a zip archive\n" * 3), r"not a readable .npz file"),
    "a plain .npy renamed": (_plain_npy, r"not a readable .npz file \(BadZipFile"),
    "empty file": (_bytes(b""), r"not a readable .npz file"),
    "zip cut in half": (_cut_in_half, r"not a readable .npz file"),
    "a folder": (_folder, r"a folder, not a .npz file"),
}


@pytest.fixture
def hostile(tmp_path):
    def make(case: str) -> Path:
        path = tmp_path / "data.npz"
        CASES[case][0](path)
        return path
    return make


def _arguments(command: str, data: Path, out: Path) -> list[str]:
    return {"eval": ["eval", "--dataset", str(data)],
            "simulate": ["simulate", "--input", str(data), "-o", str(out)],
            "export": ["export", "--format", "onnx", "--calibration", str(data), "-o", str(out)]}[command]


@pytest.mark.parametrize("command", ["eval", "simulate"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_data_is_one_line_error(hostile, tmp_path, capsys, case, command):
    data, out = hostile(case), tmp_path / "out"
    rc = main(_arguments(command, data, out))
    assert_one_line_error(rc, capsys.readouterr().err, rf"^statten-hw: error: {data}: .*{CASES[case][1]}")
    assert not out.exists(), f"{command} wrote {sorted(out.rglob('*'))} before failing"
    assert not (tmp_path / MARKER).exists(), "code from a pickle in the data file ran"


@pytest.mark.parametrize("case", ["object x that would unpickle a payload", "10^12 elements declared in x",
                                  "3 channels for a 1-channel model", "label beyond the model's classes"])
def test_hostile_calibration_data_is_one_line_error(hostile, tmp_path, capsys, case):
    data, out = hostile(case), tmp_path / "out"
    rc = main(_arguments("export", data, out))
    assert_one_line_error(rc, capsys.readouterr().err, rf"^statten-hw: error: {data}: .*{CASES[case][1]}")
    assert not out.exists() and not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_valid_file_loads_exactly(tmp_path, save):
    path = tmp_path / "data.npz"
    save(path, x=GOOD_X.astype(np.float64), y=GOOD_Y.astype(np.uint8))
    x, y = load_dataset(str(path))
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert np.array_equal(x.numpy(), GOOD_X) and np.array_equal(y.numpy(), GOOD_Y)


def _base(save) -> bytes:
    buf = io.BytesIO()
    save(buf, x=GOOD_X, y=GOOD_Y)
    return buf.getvalue()


BASES = {name: _base(save) for name, save in (("plain", np.savez), ("compressed", np.savez_compressed))}


def _regions(base: bytes) -> dict[str, tuple[int, int]]:
    begin, end = member_span(base, "x.npy")
    return {"anywhere": (0, len(base)), "x.npy header": (begin, min(end, begin + 128)), "x.npy": (begin, end),
            "zip directory": directory_span(base)}


DAMAGED = mutations(BASES["plain"], _regions(BASES["plain"])) | mutations(BASES["compressed"],
                                                                           _regions(BASES["compressed"]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=DAMAGED)
def test_mutated_bytes(tmp_path, data):
    path = tmp_path / "damaged.npz"
    path.write_bytes(data)
    try:
        x, y = load_npz(path)
    except InputError as err:
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
        event("refused")
        return
    event("loaded")
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and len(x) == len(y) > 0
    assert x.dim() in (4, 5) and bool(torch.isfinite(x).all()) and bool((y >= 0).all())
