"""Read a target TOML file (built-in or the user's) into a validated, frozen `Target`.

Validation walks the schema in `schema.py` and collects every problem before raising, so a user
fixes a broken file in one go: one `TargetError` whose field lists every bad dotted field
(``core.neurons_per_core``) and whose message joins the problems with ``'; '`` on one line.
"""
from __future__ import annotations

import math
import os
import re
import sys
import tomllib
import typing
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from statten_hw.errors import TargetError, brief
from statten_hw.targets.schema import MAX_CORES_PER_CHIP, SECTIONS, TOP_LEVEL, ExecutionStyle, Target, is_required

#: Targets shipped in ``statten_hw/targets/builtin/<name>.toml``, listed here rather than found by
#: scanning the folder, so a missing file is an error and not a silently shorter list.
BUILTIN_TARGETS: tuple[str, ...] = ("loihi2", "layerwise", "paper45nm")

#: Integers are used as numpy int64 counts downstream, and numbers multiply counts of up to that size;
#: TOML allows any size.
INT64_MAX = 2 ** 63 - 1

_Problem = tuple[str, str]  # (dotted field, what is wrong)
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def load_target(name_or_path: str | os.PathLike) -> Target:
    """Load a built-in target by name (``loihi2``, ``layerwise``, ``paper45nm``), a TOML file by path,
    or a SANA-FE architecture: ``sanafe:loihi``, ``sanafe:truenorth`` or a ``.yaml``/``.yml`` path
    (`statten_hw.targets.sanafe`).

    A bare string naming a built-in always means the built-in; anything else is a path.
    Raises `TargetError` naming the file and the field(s) at fault.
    """
    from statten_hw.targets import sanafe

    if isinstance(name_or_path, str) and name_or_path in BUILTIN_TARGETS:
        resource = resources.files("statten_hw.targets").joinpath("builtin", f"{name_or_path}.toml")
        return _load_bytes(resource.read_bytes(), str(resource))
    if sanafe.is_sanafe_target(name_or_path):
        return sanafe.load_sanafe_target(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise TargetError(str(path), "(file)", "no such file and not a built-in target "
                          f"(built-ins: {', '.join(BUILTIN_TARGETS)}, "
                          f"{', '.join(sanafe.PREFIX + n for n in sanafe.SHIPPED)})")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TargetError(str(path), "(file)", f"cannot read: {exc.strerror or exc}") from exc
    return _load_bytes(raw, str(path))


def list_targets() -> list[tuple[str, str]]:
    """(name, description) of every built-in target, in `BUILTIN_TARGETS` order."""
    return [(name, load_target(name).description) for name in BUILTIN_TARGETS]


def parse_target(data: Mapping[str, Any], source: str) -> Target:
    """Validate an already-parsed target (the TOML layout as nested dicts) and build the `Target`.

    ``source`` names where the data came from, for the error message. Every problem is collected;
    if there is any, one `TargetError` lists them all.
    """
    problems: list[_Problem] = []
    allowed = (*TOP_LEVEL, *SECTIONS)
    for key in data:
        if key not in allowed:
            problems.append((_shown(key), f"unknown key or section (expected one of {', '.join(allowed)})"))

    top = _parse_fields(Target, data, "", problems, only=TOP_LEVEL)
    if "execution" in top:
        try:
            top["execution"] = ExecutionStyle(top["execution"])
        except ValueError:
            styles = ", ".join(repr(s.value) for s in ExecutionStyle)
            problems.append(("execution", f"must be one of {styles}, got {top.pop('execution')!r}"))

    sections: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        if section not in data:
            problems.append((section, f"missing section [{section}]"))
            continue
        table = data[section]
        if not isinstance(table, Mapping):
            problems.append((section, f"must be a table [{section}], got {type(table).__name__}"))
            continue
        names = {f.name for f in fields(cls)}
        for key in table:
            if key not in names:
                problems.append((f"{section}.{_shown(key)}",
                                 f"unknown key ([{section}] takes {', '.join(sorted(names))})"))
        values = _parse_fields(cls, table, f"{section}.", problems)
        if len(values) == len(names):
            sections[section] = cls(**values)

    mesh = sections.get("mesh")
    if mesh is not None and mesh.max_chips and mesh.max_chips < mesh.chips:
        problems.append(("mesh.max_chips", f"must be 0 or at least chips_x * chips_y = {mesh.chips}, "
                                           f"got {mesh.max_chips}"))
    if mesh is not None and mesh.cores_per_chip > MAX_CORES_PER_CHIP:
        problems.append(("mesh.cores_per_tile", f"mesh_x * mesh_y * cores_per_tile = {mesh.cores_per_chip:,} cores "
                                                f"per chip; at most {MAX_CORES_PER_CHIP:,}"))
    precision = sections.get("precision")
    if precision is not None and precision.weight_bits_min > precision.weight_bits:
        problems.append(("precision.weight_bits_min", f"must be 0 or at most weight_bits = {precision.weight_bits}, "
                                                      f"got {precision.weight_bits_min}"))
    if problems:
        raise target_error(source, problems)
    return Target(**top, **sections)


def _load_bytes(raw: bytes, source: str) -> Target:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise TargetError(source, "(syntax)", f"not UTF-8 text (byte {exc.start})") from exc
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise TargetError(source, "(syntax)", "invalid TOML: arrays or tables nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _TOML_POSITION.search(message)
        if where:
            message = f"invalid TOML at line {where[1]}, column {where[2]}: {message[:where.start()]}"
        else:
            message = f"invalid TOML: {message}"
        raise TargetError(source, "(syntax)", " ".join(message.split())) from exc
    return parse_target(data, source)


def _parse_fields(cls: type, table: Mapping[str, Any], prefix: str, problems: list[_Problem],
                  only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Check each schema field of ``cls`` present in ``table``; return the good values by name."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):
        if only is not None and f.name not in only:
            continue
        dotted = prefix + f.name
        if f.name not in table:
            if is_required(f):
                problems.append((dotted, f"missing required key ({f.metadata['doc']})"))
            else:
                values[f.name] = f.default
            continue
        value, problem = _check_value(hints[f.name], f.metadata, table[f.name])
        if problem:
            problems.append((dotted, problem))
        else:
            values[f.name] = value
    return values


def _check_value(hint: type, meta: Mapping[str, Any], value: Any) -> tuple[Any, str | None]:
    """Return (converted value, None) or (None, what is wrong). Bools are never numbers here."""
    unit = f" {meta['unit']}" if meta["unit"] else ""
    kind = f" ({meta['unit']})" if meta["unit"] else ""
    if hint not in (int, float):  # str, and the execution style, which is read as a string first
        if not isinstance(value, str):
            return None, f"must be a string, got {brief(value)}"
        if not value.strip():
            return None, "must not be empty"
        return value, None
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        return None, f"must be an integer{kind}, got {brief(value)}"
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"must be a number{kind}, got {brief(value)}"
        if abs(value) > sys.float_info.max or not math.isfinite(value):  # the first test keeps huge ints off float()
            return None, f"must be finite, got {brief(value)}"
        value = float(value)
    if abs(value) > INT64_MAX:  # for a float, after rounding: 2**63 - 1 read as a float is 2**63
        return None, f"must be at most 2**63 - 1 in magnitude, got {brief(value)}"
    if meta["bound"] == "positive" and not value > 0:
        return None, f"must be > 0{unit}, got {value!r}"
    if meta["bound"] == "nonnegative" and not value >= 0:
        return None, f"must be >= 0{unit}, got {value!r}"
    if meta.get("minimum") is not None and value < meta["minimum"]:
        return None, f"must be >= {meta['minimum']}{unit}, got {value!r}"
    if meta["maximum"] is not None and value > meta["maximum"]:
        return None, f"must be <= {meta['maximum']}{unit}, got {value!r}"
    return value, None


def _shown(key: str) -> str:
    """A key from the file as it goes into the one-line message: quoted TOML keys may hold newlines."""
    return key if key.isprintable() and len(key) <= 60 else repr(key[:60])


def target_error(source: str, problems: list[_Problem]) -> TargetError:
    """One error for all problems: single-problem errors keep the plain form."""
    if len(problems) == 1:
        err = TargetError(source, *problems[0])
    else:
        err = TargetError(source, ", ".join(f for f, _ in problems),
                          f"{len(problems)} problems: " + "; ".join(f"{f}: {p}" for f, p in problems))
    err.problems = tuple(problems)
    return err
