"""Shape inference: give every node its per-timestep output shape (node attribute ``"shape"``)."""
from __future__ import annotations

import networkx as nx

from statten_hw.errors import GraphError

from ..graph import OP, SHAPE, edge_problem, inputs_by_port, port_problem, topological_order


def infer_shapes(g: nx.DiGraph) -> nx.DiGraph:
    """Set ``g.nodes[n]["shape"]`` in topological order; raise :class:`GraphError` on the first
    missing port or disagreeing edge (naming both ends and both shapes)."""
    for name in topological_order(g):
        problem = port_problem(g, name)
        if problem:
            raise GraphError(problem)
        for src in g.predecessors(name):
            problem = edge_problem(g, src, name)
            if problem:
                raise GraphError(problem)
        in_shapes = {port: g.nodes[p][SHAPE] for port, p in inputs_by_port(g, name).items()}
        g.nodes[name][SHAPE] = tuple(g.nodes[name][OP].infer(in_shapes))
    return g
