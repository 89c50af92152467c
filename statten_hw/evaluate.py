"""Accuracy of a loaded model on a data set, batched, with a progress bar."""
from __future__ import annotations

import torch
from tqdm import tqdm

from statten_hw.data import DATASETS
from statten_hw.errors import InputError


def check_input_shape(model: torch.nn.Module, x: torch.Tensor, source: str | None = None) -> None:
    """Refuse data whose sample shape the model cannot take, naming both shapes (and ``source``,
    the data set's name or file, when given)."""
    cfg = model.config
    frame = (cfg.in_channels, cfg.img_size, cfg.img_size)
    sample = tuple(x.shape[1:])
    if sample not in (frame, (cfg.timesteps, *frame)):
        where = f"{source}: " if source else ""
        hint = (" (the built-in data sets are 8x8 digits: give this model's own data as PATH.npz, arrays x and y)"
                if source in DATASETS else "")
        raise InputError(f"{where}data samples have shape {list(sample)}; the model takes {list(frame)} "
                         f"(static) or {[cfg.timesteps, *frame]} (a sequence of T frames){hint}")


def check_data(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, source: str | None = None) -> None:
    """`check_input_shape`, and labels the model can predict: a label beyond its classes would only
    ever count as wrong, and an accuracy of 0 % is no way to learn that the file is another task's."""
    check_input_shape(model, x, source)
    classes = model.config.num_classes
    if len(y) and int(y.max()) >= classes:
        where = f"{source}: " if source else ""
        raise InputError(f"{where}label {int(y.max())} is beyond the model's {classes} classes (0..{classes - 1})")


#: Bytes the model's forward takes per value the float graph holds at once (`peak_live_elements`):
#: float32, times 2 for what the modules keep beside it (measured: 128 samples of the embedded model at
#: T = 1024 peaked at 5.3 GB, 2.2x the graph's live values).
FORWARD_BYTES_PER_VALUE = 8


def batch_for(model: torch.nn.Module, x: torch.Tensor, most: int = 128) -> int:
    """Samples per forward: ``most``, fewer where a long T would take more than
    `statten_hw.resources.BATCH_BYTES` (the kernel kills a process that runs out, with no message).
    The size comes from the lowered graph; a model that does not lower (one in training mode) gets
    ``most``."""
    from statten_hw.errors import StattenError
    from statten_hw.ir import lower
    from statten_hw.ir.execute_float import peak_live_elements
    from statten_hw.resources import samples_per_batch

    try:
        live = peak_live_elements(lower(model, encoding="events" if x.dim() == 5 else None))
    except StattenError:
        return most
    return min(most, samples_per_batch(FORWARD_BYTES_PER_VALUE * model.config.timesteps * live))


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int | None = None,
            progress: bool = False) -> torch.Tensor:
    """Class predictions, ``batch_size`` samples per forward (`batch_for` when None); TET per-step
    logits are averaged over T as the official ``validate()`` does."""
    check_input_shape(model, x)
    batch_size = batch_for(model, x) if batch_size is None else batch_size
    preds = []
    for start in tqdm(range(0, len(x), batch_size), desc="eval", disable=not progress, leave=False):
        logits = model(x[start:start + batch_size])
        if model.config.tet:
            logits = logits.mean(0)
        preds.append(logits.argmax(-1))
    return torch.cat(preds)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, progress: bool = False) -> float:
    return float((predict(model, x, progress=progress) == y).float().mean())
