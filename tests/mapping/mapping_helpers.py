"""Shared helpers of the mapping tests: the official STAtten checkpoint (loaded and lowered once per
session) and small targets built from loihi2 with chosen limits."""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from conftest import official_checkpoint
from statten_hw import load_checkpoint
from statten_hw.ir import lower
from statten_hw.targets import ExecutionStyle, load_target

STATTEN = "statten_cifar_t4_b2"


@lru_cache(maxsize=None)
def statten_model():
    return load_checkpoint(official_checkpoint(STATTEN))


@lru_cache(maxsize=None)
def statten_graph():
    return lower(statten_model())


def small_target(execution: str = "step", mesh=None, **core):
    """loihi2 with ``execution``, its [core] limits replaced by ``core`` and, optionally, its mesh."""
    base = load_target("loihi2")
    return replace(base, execution=ExecutionStyle(execution), core=replace(base.core, **core),
                   mesh=replace(base.mesh, **(mesh or {})))


def write_target_toml(path, **overrides) -> str:
    """A loihi2 copy as a TOML file with ``section__key=value`` overrides (``core__fan_in=16``)."""
    data = load_target("loihi2").to_dict()
    for key, value in overrides.items():
        section, field = key.split("__")
        data[section][field] = value
    lines = ['name = "tiny"', 'description = "test target"', f'execution = "{data["execution"]}"']
    for section in ("mesh", "core", "precision", "timing", "energy"):
        lines.append(f"[{section}]")
        lines += [f"{k} = {v!r}" for k, v in data[section].items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)
