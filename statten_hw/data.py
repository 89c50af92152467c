"""Offline evaluation data: scikit-learn's bundled 8×8 digits, static and as a temporal sequence.

* ``digits``: one 8×8 grey frame per sample, ``[N, 1, 8, 8]`` in [0, 1]; the model repeats it T times.
* ``digits-seq``: the same digit shown row by row over ``T = 8`` steps, ``[N, 8, 1, 8, 8]``: frame t
  holds only row t. No single step shows the digit, so attention across time has work to do.
* ``PATH.npz``: user data with arrays ``x`` and ``y`` (`load_npz`: checked before it is read).

The split is fixed (stratified, seed 0, 25 % test) so every command evaluates on the same samples.
"""
from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from statten_hw.errors import InputError, one_line

SEQ_STEPS = 8
SPLIT_SEED = 0
TEST_FRACTION = 0.25
DATASETS = ("digits", "digits-seq")


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def _split(n: int, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    train, test = train_test_split(idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels)
    return np.sort(train), np.sort(test)


def rows_as_sequence(images: np.ndarray) -> np.ndarray:
    """``[N, 8, 8] -> [N, 8, 1, 8, 8]``: step t shows row t of the image, the rest is zero."""
    n, rows, cols = images.shape
    seq = np.zeros((n, rows, 1, rows, cols), dtype=images.dtype)
    for t in range(rows):
        seq[:, t, 0, t, :] = images[:, t, :]
    return seq


def load_digits_split(name: str = "digits", split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of the fixed train or test split of ``digits`` or ``digits-seq``."""
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; built-in: {', '.join(DATASETS)} (or a .npz file)")
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = _digits_arrays()
    train, test = _split(len(labels), labels)
    idx = train if split == "train" else test
    x = images[idx][:, None] if name == "digits" else rows_as_sequence(images[idx])
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels[idx])


#: Array kinds a data file may hold: booleans, signed and unsigned integers, floating point.
NUMERIC_KINDS = "biuf"
#: What numpy and zipfile raise on a damaged archive: bad zip structure, CRC or sizes, a bad
#: compressed stream, an unsupported zip feature (encryption, a compression method), bad npy headers.
_DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError,
            RuntimeError, OverflowError)
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def load_npz(path) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of a user's ``.npz`` file: ``x`` float32 samples ``[N, C, H, W]`` or ``[N, T, C, H, W]``,
    ``y`` int64 labels ``[N]``.

    The file is untrusted: before numpy reads an array, its ``.npy`` header must declare a numeric
    dtype and exactly as many bytes as the archive holds for it (numpy allocates what a header
    declares before reading: 10^12 elements from a 1 kB file), within the memory available; pickles
    are never loaded. Every problem is one `InputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {'a folder, not a .npz file' if path.is_dir() else 'no such file'}")
    try:
        with zipfile.ZipFile(path) as archive:
            for name in ("x", "y"):
                _check_header(path, archive, name)
        with np.load(path, allow_pickle=False) as data:
            x, y = data["x"], data["y"]
    except _DAMAGED as err:
        raise InputError(f"{path}: not a readable .npz file ({one_line(err, 100)})") from None
    return _checked_arrays(path, x, y)


def _check_header(path: Path, archive: zipfile.ZipFile, name: str) -> None:
    """Refuse array ``name`` of the archive from its header alone (see `load_npz`)."""
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise InputError(f"{path}: missing array {name!r} (need 'x' and 'y', as numpy.savez(path, x=..., y=...) "
                         f"writes them)") from None
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in _HEADER_READERS:
            raise InputError(f"{path}: array {name!r} has .npy format version {version}; readable: 1.0, 2.0")
        shape, _, dtype = _HEADER_READERS[version](f)
        stored = info.file_size - f.tell()
    if dtype.hasobject:
        raise InputError(f"{path}: array {name!r} holds Python objects ({dtype}); only numeric arrays are read "
                         f"(pickled data is never loaded)")
    if dtype.kind not in NUMERIC_KINDS:
        raise InputError(f"{path}: array {name!r} has dtype {dtype}; need numbers (bool, integer or float)")
    declared = math.prod(shape) * dtype.itemsize
    if declared != stored:
        raise InputError(f"{path}: array {name!r} declares shape {list(shape)} ({declared:,} bytes) but holds "
                         f"{stored:,} bytes")
    _check_fits(path, name, declared)


def _check_fits(path: Path, name: str, size: int) -> None:
    from statten_hw.resources import available_memory, format_size

    available = available_memory()
    if size > available:
        raise InputError(f"{path}: array {name!r} needs {format_size(size)}, more than the "
                         f"{format_size(available)} of memory available")


def _checked_arrays(path: Path, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Shapes and values a data set must have: one row per sample, as many labels, finite numbers."""
    for name, a in (("x", x), ("y", y)):
        if a.ndim == 0:
            raise InputError(f"{path}: array {name!r} is a single value (0-d); need one entry per sample")
    if y.ndim != 1:
        raise InputError(f"{path}: y has shape {list(y.shape)}; need one label per sample (1-D)")
    if len(x) != len(y):
        raise InputError(f"{path}: x has {len(x)} samples but y has {len(y)}")
    if len(x) == 0:
        raise InputError(f"{path}: holds no samples (x has shape {list(x.shape)})")
    if x.ndim not in (4, 5):
        raise InputError(f"{path}: x has shape {list(x.shape)}; need [N, C, H, W] frames or [N, T, C, H, W] "
                         f"sequences")
    with np.errstate(invalid="ignore", over="ignore"):  # reported below, as one line
        x32, labels = x.astype(np.float32), y.astype(np.int64)
    if not np.isfinite(x32).all():
        raise InputError(f"{path}: x holds NaN or infinite values (or values beyond float32's range)")
    if not np.array_equal(labels, y) or labels.min() < 0:
        raise InputError(f"{path}: y must hold class labels, integers >= 0")
    return torch.from_numpy(x32), torch.from_numpy(labels)


def load_dataset(spec: str, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    return load_npz(spec) if spec.endswith(".npz") else load_digits_split(spec, split)
