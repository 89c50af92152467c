"""Validation pass: a graph every later stage may rely on.

Checks, each raising :class:`GraphError` with one line naming the culprit: every node holds an
IR node object; the graph is acyclic; every node's in-edges are exactly its ports; it has one
Output and at least one Input; every edge's shapes agree (the message names both ends and both
shapes); each stored shape equals what the node infers from its inputs; attention block sizes
divide the number of timesteps.
"""
from __future__ import annotations

import networkx as nx

from statten_hw.errors import GraphError

from .graph import OP, SHAPE, inferred_shape, nodes_of, topological_order
from .nodes import Input, Node, Output, SpikingAttention


def validate(g: nx.DiGraph) -> nx.DiGraph:
    for name, data in g.nodes(data=True):
        if not isinstance(data.get(OP), Node):
            raise GraphError(f"node {name!r} has no IR op (attribute {OP!r}: {type(data.get(OP)).__name__})")
        if SHAPE not in data:
            raise GraphError(f"node {name!r} has no shape; run infer_shapes first")
    order = topological_order(g)
    for src, dst, data in g.edges(data=True):
        if "port" not in data:
            raise GraphError(f"edge {src!r} -> {dst!r} has no port")
    for name in order:
        inferred = inferred_shape(g, name)
        if tuple(g.nodes[name][SHAPE]) != inferred:
            raise GraphError(f"node {name!r} stores shape {list(g.nodes[name][SHAPE])} but its inputs give {list(inferred)}")
    outputs, inputs = list(nodes_of(g, Output)), list(nodes_of(g, Input))
    if len(outputs) != 1:
        raise GraphError(f"graph needs exactly one output node, found {outputs}")
    if not inputs:
        raise GraphError("graph has no input node")
    timesteps = {op.timesteps for op in (g.nodes[n][OP] for n in inputs)}
    for name in nodes_of(g, SpikingAttention):
        block = g.nodes[name][OP].block_size
        bad = sorted(t for t in timesteps if t % block)
        if bad:
            raise GraphError(f"attention {name!r}: block size {block} does not divide T = {bad[0]}")
    for src, dst in g.out_edges(outputs[0]):
        raise GraphError(f"output node {src!r} feeds {dst!r}")
    return g
