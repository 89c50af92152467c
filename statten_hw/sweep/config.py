"""The sweep grid, checkpoint × B × target × bits × precision, checked in full before any task starts.

Each `Configuration` has a content key: a SHA-256 over the checkpoint's bytes, the target file's
bytes, the data set, every option that changes a result, the statten-hw version and a digest of
its source code (`code_digest`). The key is what makes a sweep resumable. If the key is the same,
so is the result. A retrained checkpoint, an edited target file or changed code (a new release, or
an edited checkout under the same version) gives a new key, and that configuration is computed again.

Pairing checkpoints with block sizes (``--block-sizes``):

* ``own``: each checkpoint at the B it was trained for (its ``chunk_size``). This is how the
  embedded temporal-digits family is swept: ``digits_seq_bB`` gives the point at B, because each of
  those checkpoints is trained for its own B. A sweep given no checkpoint sweeps that family (and
  ``own`` is the command's default).
* ``all``: every divisor of each checkpoint's T. ``1,2,4``: these B for every checkpoint. Both
  run one set of weights at block sizes it was not trained for; only accuracy shows the cost.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from statten_hw import __version__
from statten_hw.errors import ConfigError, InputError

OWN = "own"
#: The packages whose code computes a sweep's results (models, mapping and simulator install apart).
CODE_PACKAGES = ("statten_hw", "statten_hw.models", "statten_hw.mapping", "statten_hw.simulator")
ALL = "all"
#: ``--engine none``: map and integer accuracy only, no event simulation (quick, static figures).
NO_SIMULATION = "none"
#: What a family sweep of the embedded temporal-digits models looks like on a plot.
OWN_SERIES = "own-B checkpoints"


@dataclass(frozen=True)
class Configuration:
    """One point of the sweep: what a worker needs to compute it, and its content ``key``.

    ``series`` names the line the point belongs to on the plots (a checkpoint, or the own-B family);
    it does not change the result and is not part of the key."""

    checkpoint: str
    target: str
    block_size: int
    bits: int
    dataset: str
    samples: int
    calibration_samples: int
    engine: str
    series: str
    key: str
    precision: str = "graph"  # what the integer graph is quantized for (`statten_hw.pipeline.PRECISIONS`)

    @property
    def label(self) -> str:
        return f"{Path(self.checkpoint).name} B={self.block_size} {self.target} {bits_label(self.bits, self.precision)}"


def bits_label(bits: int, precision: str) -> str:
    """``8-bit``, or ``8-bit (target's formats)`` for a graph quantized for its target's formats."""
    return f"{bits}-bit" + (" (target's formats)" if precision == "target" else "")


def plan(checkpoints: list[str], block_sizes: str, targets: list[str], bits: list[int], *,
         samples: int | None = None, dataset: str | None = None, calibration_samples: int = 256,
         engine: str = "fast", precisions: tuple[str, ...] = ("graph",)) -> list[Configuration]:
    """Every configuration of the grid, or a `StattenError` naming the first bad input.

    No checkpoints: the embedded temporal-digits family (with ``own``, each at its own B). ``samples``: test
    samples per configuration (all of the test split when None). ``engine``: the event simulator's
    engine, or ``none`` to skip simulation. ``precisions``: quantize for the graph, for each target's
    formats, or both side by side (`statten_hw.pipeline.PRECISIONS`)."""
    from statten_hw.defaults import SEQ_BLOCK_SIZES, seq_checkpoint
    from statten_hw.pipeline import check_precision
    from statten_hw.simulator import ENGINES
    from statten_hw.targets import load_target

    checkpoints = checkpoints or [str(seq_checkpoint(b)) for b in SEQ_BLOCK_SIZES]
    for b in bits:
        check_bits(b)
    if not targets:
        raise InputError("--targets: give at least one target")
    if samples is not None:
        check_count("--samples", samples)
    check_count("--calibration-samples", calibration_samples)
    if engine not in (*ENGINES, NO_SIMULATION):
        raise InputError(f"--engine must be one of {', '.join((*ENGINES, NO_SIMULATION))}, got {engine!r}")
    for precision in precisions:
        check_precision(precision)
    if not precisions:
        raise InputError("--precision: no value given")
    loaded = {t: load_target(t) for t in dict.fromkeys(targets)}  # TargetError naming the file and the field
    if "target" in precisions:
        _check_target_formats(loaded, bits)
    target_digests = {t: _target_digest(t) for t in loaded}
    configs = []
    for path in _distinct_files(checkpoints):
        configs += _checkpoint_configs(path, block_sizes, target_digests, bits, samples, dataset, calibration_samples,
                                       engine, tuple(dict.fromkeys(precisions)))
    return configs


def _distinct_files(paths: list[str]) -> list[str]:
    """``paths`` with every file once (as first named): ``a.pth`` and ``./a.pth`` are one checkpoint."""
    seen: dict[str, str] = {}
    for path in paths:
        seen.setdefault(os.path.realpath(path), path)
    return list(seen.values())


def _checkpoint_configs(path: str, spec: str, target_digests: dict[str, str], bits: list[int], samples: int | None,
                        dataset: str | None, calibration_samples: int, engine: str,
                        precisions: tuple[str, ...]) -> list[Configuration]:
    from statten_hw.data import load_dataset
    from statten_hw.evaluate import check_data
    from statten_hw.models import load_checkpoint
    from statten_hw.pipeline import dataset_for

    model = load_checkpoint(path)
    sizes = block_sizes(spec, model.config, path)
    data = dataset or dataset_for(Path(path))
    x, y = load_dataset(data, split="test")
    check_data(model, x, y, data)
    n = len(x) if samples is None else min(samples, len(x))
    common = {"checkpoint_sha256": file_digest(path), "dataset": data,
              "dataset_sha256": file_digest(data) if data.endswith(".npz") else None, "samples": n,
              "calibration_samples": calibration_samples, "engine": engine, "statten_hw": __version__,
              "statten_hw_code": code_digest()}
    series = OWN_SERIES if spec == OWN else Path(path).name
    return [Configuration(checkpoint=str(path), target=target, block_size=b, bits=w, precision=p,
                          dataset=data, samples=n,
                          calibration_samples=calibration_samples, engine=engine, series=series,
                          key=content_key({**common, "target_sha256": digest, "block_size": b, "bits": w,
                                           "precision": p}))
            for target, digest in target_digests.items() for w in bits for p in precisions for b in sizes]


def block_sizes(spec: str, cfg, path) -> list[int]:
    """The B to sweep for one checkpoint (``own``, ``all`` or a list), each checked against its T."""
    if spec == OWN:
        return [cfg.block_size]
    if spec == ALL:
        return [b for b in range(1, cfg.timesteps + 1) if cfg.timesteps % b == 0]
    sizes = int_list(spec, "--block-sizes")
    for b in sizes:
        try:
            cfg.with_overrides(block_size=b)  # the model's own rule (B >= 1, B divides T)
        except ConfigError as err:
            raise InputError(f"{path}: block size {b}: {err}") from None
    return sizes


def int_list(spec: str, option: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]`` (order kept, repeats dropped)."""
    try:
        values = [int(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option} takes integers like 1,2,4, got {spec!r}") from None
    if not values:
        raise InputError(f"{option}: no value given")
    return list(dict.fromkeys(values))


def check_count(option: str, value: int) -> None:
    """Refuse a count option below 1 (samples, workers, shard size, batch), naming the option."""
    if value < 1:
        raise InputError(f"{option} must be >= 1, got {value}")


def check_bits(bits: int) -> None:
    """Refuse weight widths the quantizer refuses, with the quantizer's own range."""
    from statten_hw.quant.fixed_point import quantize_symmetric

    try:
        quantize_symmetric(np.zeros(1), bits)
    except ValueError as err:
        raise InputError(f"--bits {bits}: {err}") from None


def check_fraction_bits(fraction_bits: int) -> None:
    """Refuse what the quantizer refuses for its fraction bits, with its own range."""
    from statten_hw.quant.quantize import check_fraction_bits as quantizer_check

    try:
        quantizer_check(fraction_bits)
    except ValueError as err:
        raise InputError(f"--fraction-bits {fraction_bits}: {err}") from None


def _check_target_formats(targets: dict, bits: list[int]) -> None:
    """Every target's (``{name: Target}``) formats can be quantized for at every width
    (`target_quantizer`'s one-line error)."""
    from statten_hw.quant.precision import target_quantizer

    for name, target in targets.items():
        for b in bits:
            target_quantizer(target.precision, b, name)


def _target_digest(target: str) -> str:
    """SHA-256 of the file of a target that loads: the built-in TOML for a built-in name, the YAML
    shipped with SANA-FE for ``sanafe:<name>``, the user's file otherwise."""
    from statten_hw.targets import BUILTIN_TARGETS, sanafe

    if target in BUILTIN_TARGETS:
        return hashlib.sha256(resources.files("statten_hw.targets").joinpath("builtin", f"{target}.toml")
                              .read_bytes()).hexdigest()
    if target.startswith(sanafe.PREFIX):
        return file_digest(sanafe.shipped_path(target[len(sanafe.PREFIX):]))
    return file_digest(target)


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=None)
def code_digest(packages: tuple[str, ...] = CODE_PACKAGES) -> str:
    """SHA-256 over the path and bytes of every ``.py`` file of ``packages`` (their installed or
    checked-out folders, sorted): a result computed by other code never matches."""
    h = hashlib.sha256()
    for name in packages:
        for root in importlib.import_module(name).__path__:
            for path in sorted(Path(root).rglob("*.py")):
                h.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
                h.update(path.read_bytes())
    return h.hexdigest()


def content_key(fields: dict) -> str:
    """SHA-256 of the fields as canonical JSON (sorted keys), so equal inputs give equal keys."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()
