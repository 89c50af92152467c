"""The deployment graph: a ``networkx.DiGraph`` of node objects and named edges.

Each graph node holds its :mod:`~statten_hw.ir.nodes` object under ``"op"``, the path of the
torch module it came from under ``"source"`` and, once ``infer_shapes`` ran, its per-timestep
output shape under ``"shape"``. Each edge carries the destination ``"port"`` it feeds.
"""
from __future__ import annotations

from typing import Iterator

import networkx as nx

from statten_hw.errors import GraphError

from .nodes import Node, Shape

OP, SOURCE, SHAPE, PORT = "op", "source", "shape", "port"


def new_graph(**attrs) -> nx.DiGraph:
    return nx.DiGraph(**attrs)


def add_op(g: nx.DiGraph, name: str, op: Node, source: str, **inputs: str) -> str:
    """Add node ``name`` computing ``op`` from ``inputs`` (port -> producing node); return ``name``."""
    if name in g:
        raise GraphError(f"node {name!r} already in the graph")
    if not isinstance(op, Node):
        raise GraphError(f"node {name!r}: op must be an IR node, got {type(op).__name__}")
    for port, src in inputs.items():
        if src not in g:
            raise GraphError(f"node {name!r} port {port!r}: producer {src!r} is not in the graph")
    if len(set(inputs.values())) != len(inputs):
        raise GraphError(f"node {name!r}: one producer feeds two ports {sorted(inputs)} (a DiGraph holds one edge per pair)")
    g.add_node(name, **{OP: op, SOURCE: source})
    for port, src in inputs.items():
        g.add_edge(src, name, **{PORT: port})
    return name


def op(g: nx.DiGraph, name: str) -> Node:
    return g.nodes[name][OP]


def topological_order(g: nx.DiGraph) -> list[str]:
    """Nodes in dependency order; ties broken by insertion order (the model's own order)."""
    rank = {n: i for i, n in enumerate(g.nodes)}
    try:
        return list(nx.lexicographical_topological_sort(g, key=rank.__getitem__))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(g)
        raise GraphError(f"graph has a cycle: {' -> '.join(u for u, _ in cycle)} -> {cycle[0][0]}") from None


def inputs_by_port(g: nx.DiGraph, name: str) -> dict[str, str]:
    """``port -> producing node`` for the in-edges of ``name``."""
    return {data[PORT]: src for src, _, data in g.in_edges(name, data=True)}


def nodes_of(g: nx.DiGraph, kind: type[Node]) -> Iterator[str]:
    return (n for n, data in g.nodes(data=True) if isinstance(data[OP], kind))


def timesteps(g: nx.DiGraph) -> int:
    """T of the graph: the most steps any input node runs (a time mean later leaves one step)."""
    return max(data[OP].timesteps for _, data in g.nodes(data=True) if data[OP].KIND == "input")


def fits(pattern: tuple, shape: Shape) -> bool:
    """``shape`` matches ``pattern`` (same rank; ``None`` entries match any size)."""
    return len(pattern) == len(shape) and all(p is None or p == s for p, s in zip(pattern, shape))


def show(pattern: tuple) -> str:
    return "[" + ", ".join("?" if p is None else str(p) for p in pattern) + "]"


def port_problem(g: nx.DiGraph, name: str) -> str | None:
    """Why the in-edges of ``name`` do not match its ``PORTS`` (missing or unknown), or None."""
    ports = inputs_by_port(g, name)
    want = g.nodes[name][OP].PORTS
    missing = [p for p in want if p not in ports]
    extra = sorted(p for p in ports if p not in want)
    if missing or extra:
        return (f"node {name!r} ({g.nodes[name][OP].KIND}) ports {sorted(ports)} do not match {list(want)}: "
                f"missing {missing}, unknown {extra}")
    return None


def edge_problem(g: nx.DiGraph, src: str, dst: str) -> str | None:
    """Why the shape ``src`` produces does not fit what ``dst`` expects on that edge's port, or None."""
    ports = inputs_by_port(g, dst)
    in_shapes = {port: g.nodes[p][SHAPE] for port, p in ports.items()}
    port = g.edges[src, dst]["port"]
    want = g.nodes[dst][OP].expected(port, in_shapes)
    got = in_shapes[port]
    if fits(want, got):
        return None
    return (f"edge {src!r} -> {dst!r} (port {port!r}): {src!r} gives shape {show(got)}, "
            f"{dst!r} ({g.nodes[dst][OP].KIND}) expects {show(want)}")


def inferred_shape(g: nx.DiGraph, name: str) -> Shape:
    """The shape ``name`` produces from its inputs' stored shapes, after checking its ports and every
    in-edge (a :class:`GraphError` names the culprit)."""
    problem = port_problem(g, name) or next(
        (p for src in g.predecessors(name) if (p := edge_problem(g, src, name))), None)
    if problem:
        raise GraphError(problem)
    in_shapes = {port: g.nodes[p][SHAPE] for port, p in inputs_by_port(g, name).items()}
    return tuple(g.nodes[name][OP].infer(in_shapes))
