"""One exception hierarchy for every user-facing failure.

Each exception builds its own one-line message from structured fields, so the CLI can print it
as is and tests can match on the fields. ``statten_hw.cli.main`` is the only place that catches
them (exit code 2).
"""
from __future__ import annotations

import reprlib


class StattenError(Exception):
    """Base of every error statten-hw reports to a user (one line, no traceback)."""


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother, short.maxlong = 3, 60, 60, 60
    return short


_SHORT_REPR = _short_repr()


def brief(value) -> str:
    """Type and repr of a value read from a user's file, cut to 60 characters, for a message: a
    hostile file's 1 MB string, 400-digit number or list nested 3,000 deep must not become the error
    line (nor a RecursionError: `reprlib` stops at depth 3)."""
    try:
        text = _SHORT_REPR.repr(value)
    except ValueError:  # an int past Python's 4,300-digit string limit
        text = f"of {value.bit_length()} bits" if isinstance(value, int) else "(unprintable)"
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def one_line(err: BaseException, limit: int | None = None) -> str:
    """``Type: message`` of a foreign exception on one line (whitespace collapsed), cut to ``limit``
    characters when given."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if limit is None or len(text) <= limit else text[:limit - 3] + "..."


class CheckpointError(StattenError):
    """A checkpoint file cannot be read, is unsafe, or does not describe a supported model."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(StattenError):
    """A model option is invalid (for example T not divisible by the block size B)."""


class UnsupportedLayer(StattenError):
    """A module has no lowering to the deployment graph."""

    def __init__(self, module_path: str, module_type: str, why: str = "no lowering rule"):
        self.module_path = module_path
        self.module_type = module_type
        super().__init__(f"unsupported layer {module_path!r} ({module_type}): {why}")


class GraphError(StattenError):
    """The deployment graph is malformed (cycle, dangling edge, shape disagreement)."""


class ExportError(StattenError, ValueError):
    """A network cannot be written exactly in the requested format (a value past what the format's
    arithmetic holds, a layer the format has no type for)."""


class QuantizationOverflow(StattenError):
    """An integer state left its declared bit width in strict mode."""

    def __init__(self, layer: str, quantity: str, value: int, bits: int):
        self.layer, self.quantity, self.value, self.bits = layer, quantity, value, bits
        super().__init__(f"layer {layer!r}: {quantity} = {value} overflows {bits}-bit signed range")


class TargetError(StattenError):
    """A target description (TOML or SANA-FE YAML) is missing a field or has a bad value."""

    def __init__(self, source: str, field: str, problem: str):
        self.source, self.field = source, field
        super().__init__(f"{source}: field {field!r}: {problem}")


class MappingError(StattenError):
    """A layer cannot be placed within a per-core or per-system limit."""

    def __init__(self, layer: str, limit: str, used, cap):
        self.layer, self.limit, self.used, self.cap = layer, limit, used, cap
        super().__init__(f"layer {layer!r} does not fit: {limit} needs {used}, limit is {cap}")


class InputError(StattenError):
    """A data file or option given on the command line is invalid."""


class ResourceError(StattenError):
    """A run would need more memory than it may use (``--max-memory``, or the machine's available memory)."""
