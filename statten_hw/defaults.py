"""The embedded models that ship inside the package (see default_models/README.md)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "digits_statten.pth"
SEQ_BLOCK_SIZES = (1, 2, 4, 8)


def embedded_path(name: str = DEFAULT_MODEL) -> Path:
    return Path(str(resources.files("statten_hw") / "default_models" / name))


def default_checkpoint() -> Path:
    """The checkpoint used when a command is given none: a small STAtten trained on digits."""
    return embedded_path(DEFAULT_MODEL)


def seq_checkpoint(block_size: int) -> Path:
    """The temporal-digits model trained with STAtten block size ``block_size``."""
    return embedded_path(f"digits_seq_b{block_size}.pth")
