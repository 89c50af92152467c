"""Shape inference: give every node its per-timestep output shape (node attribute ``"shape"``)."""
from __future__ import annotations

import networkx as nx

from ..graph import SHAPE, inferred_shape, topological_order


def infer_shapes(g: nx.DiGraph) -> nx.DiGraph:
    """Set ``g.nodes[n]["shape"]`` in topological order; raise :class:`GraphError` on the first
    missing port or disagreeing edge (naming both ends and both shapes)."""
    for name in topological_order(g):
        g.nodes[name][SHAPE] = inferred_shape(g, name)
    return g
