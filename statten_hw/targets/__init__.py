"""Hardware targets: a TOML file per chip (or energy model) loaded into a frozen `Target`.

>>> from statten_hw.targets import load_target
>>> load_target("loihi2").cores_per_chip
128
"""
from statten_hw.targets.loader import BUILTIN_TARGETS, list_targets, load_target, parse_target
from statten_hw.targets.schema import CoreLimits, Energy, ExecutionStyle, Mesh, Precision, Target, Timing

__all__ = [
    "BUILTIN_TARGETS", "list_targets", "load_target", "parse_target",
    "Target", "Mesh", "CoreLimits", "Precision", "Timing", "Energy", "ExecutionStyle",
]
