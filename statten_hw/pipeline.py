"""One checkpoint to a deployable network: load, lower, quantize, map — shared by every command.

``simulate``, ``sweep`` and the backends (event simulator, Lava, SANA-FE) all start from the same
:class:`Deployment`, so a figure of one backend and a figure of another describe the same integer
network on the same placement.

>>> d = prepare(None, target="loihi2", block_size=2)   # doctest: +SKIP
>>> d.qgraph, d.mapping.totals.cores                    # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

#: Calibration samples taken from the calibration split unless told otherwise.
CALIBRATION_SAMPLES = 256
#: What the integer graph is quantized for: ``graph``, the command's ``--bits``, 24-bit state and
#: Loihi's fraction bits whatever the target; ``target``, the target's own number formats
#: (`statten_hw.quant.precision.target_quantizer`).
PRECISIONS = ("graph", "target")


@dataclass(frozen=True, eq=False)
class Deployment:
    """A loaded model, its quantized integer graph and its mapping on one target with blocks of B.
    A snapshot: what is derived from it (the event network, static metrics) is kept with it."""

    checkpoint: Path
    model: torch.nn.Module
    qgraph: object  # statten_hw.quant.QuantizedGraph
    mapping: object  # statten_hw.mapping.MappingResult
    dataset: str
    precision: str = "graph"  # what the graph was quantized for (`PRECISIONS`)

    @property
    def block_size(self) -> int:
        return self.mapping.block_size

    @property
    def target(self):
        return self.mapping.target

    @cached_property
    def event_network(self):
        """The event simulator's network of this placement (`statten_hw.simulator.event.network`),
        built once: it depends on the graph and the mapping only, and every simulation reads it."""
        from statten_hw.simulator.event.network import build_network

        return build_network(self.qgraph, self.mapping)


def prepare(checkpoint: str | os.PathLike | None, target, block_size: int | None = None, *, bits: int = 8,
            timesteps: int | None = None, dataset: str | None = None,
            calibration_samples: int = CALIBRATION_SAMPLES, use_ema: bool = False,
            fraction_bits: int | None = None, precision: str = "graph") -> Deployment:
    """Load ``checkpoint`` (the embedded default when None), quantize it on ``dataset``'s training split
    (its first ``calibration_samples``) with ``bits``-bit weights, and map it on ``target`` with blocks of
    ``block_size`` (the checkpoint's own B when None); ``fraction_bits``: the quantizer's (its default
    when None); ``precision="target"``: quantize to the target's formats instead (`PRECISIONS`).
    Raises a `StattenError` on any bad input."""
    from statten_hw.data import load_dataset
    from statten_hw.defaults import default_checkpoint
    from statten_hw.evaluate import check_input_shape
    from statten_hw.ir import lower
    from statten_hw.mapping import map_model
    from statten_hw.models import load_checkpoint
    from statten_hw.quant import quantize
    from statten_hw.targets import Target, load_target

    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    model = load_checkpoint(path, use_ema=use_ema, timesteps=timesteps, block_size=block_size)
    dataset = dataset or dataset_for(path)
    calib_x, _ = load_dataset(dataset, split="train")
    check_input_shape(model, calib_x, dataset)
    graph = lower(model, encoding="events" if calib_x.dim() == 5 else None)
    target = target if isinstance(target, Target) else load_target(target)
    settings = quantizer_settings(target, bits, fraction_bits, precision)
    qgraph = quantize(graph, calib_x[:calibration_samples], **settings)
    mapping = map_model(qgraph.float_graph, target, model.config.block_size, weight_bits=qgraph.weight_bits)
    return Deployment(path, model, qgraph, mapping, dataset, precision)


def check_precision(precision: str) -> str:
    from statten_hw.errors import InputError

    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def quantizer_settings(target, bits: int, fraction_bits: int | None, precision: str) -> dict:
    """`quantize`'s keyword arguments for ``precision`` (`PRECISIONS`) on ``target``; ``fraction_bits``
    None: the quantizer's default (or the target's, which it then sets)."""
    from statten_hw.errors import InputError
    from statten_hw.quant.precision import target_quantizer

    if check_precision(precision) == "target":
        if fraction_bits is not None:
            raise InputError("--fraction-bits and quantizing for the target's formats both set the fraction "
                             "bits: give one")
        return target_quantizer(target.precision, bits, target.name)
    return {"weight_bits": bits, **({} if fraction_bits is None else {"fraction_bits": fraction_bits})}


def dataset_for(checkpoint: Path) -> str:
    """The embedded temporal-digits checkpoints take digit rows as a sequence; all others single images."""
    return "digits-seq" if Path(checkpoint).name.startswith("digits_seq_b") else "digits"
