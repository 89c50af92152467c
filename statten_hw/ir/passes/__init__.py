"""Graph passes. ``PIPELINE`` is the one ordered list of them; each takes and returns the graph."""
from __future__ import annotations

import networkx as nx

from ..validate import validate
from .infer_shapes import infer_shapes

PIPELINE = [infer_shapes, validate]


def run_pipeline(g: nx.DiGraph, passes=PIPELINE) -> nx.DiGraph:
    for step in passes:
        g = step(g)
    return g


__all__ = ["PIPELINE", "infer_shapes", "run_pipeline", "validate"]
