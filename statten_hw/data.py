"""Offline evaluation data: scikit-learn's bundled 8×8 digits, static and as a temporal sequence.

* ``digits``: one 8×8 grey frame per sample, ``[N, 1, 8, 8]`` in [0, 1]; the model repeats it T times.
* ``digits-seq``: the same digit shown row by row over ``T = 8`` steps, ``[N, 8, 1, 8, 8]``: frame t
  holds only row t. No single step shows the digit, so attention across time has work to do.
* ``PATH.npz``: user data with arrays ``x`` and ``y``.

The split is fixed (stratified, seed 0, 25 % test) so every command evaluates on the same samples.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from statten_hw.errors import InputError

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


def load_npz(path) -> tuple[torch.Tensor, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            x, y = data["x"], data["y"]
    except KeyError as err:
        raise InputError(f"{path}: missing array {err} (need 'x' and 'y')") from None
    except (ValueError, OSError) as err:
        raise InputError(f"{path}: not a readable .npz file ({err})") from None
    if len(x) != len(y):
        raise InputError(f"{path}: x has {len(x)} samples but y has {len(y)}")
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))


def load_dataset(spec: str, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    return load_npz(spec) if spec.endswith(".npz") else load_digits_split(spec, split)
