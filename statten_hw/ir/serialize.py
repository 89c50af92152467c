"""Save and load the deployment graph: ``<stem>.json`` (structure) + ``<stem>.npz`` (arrays).

The JSON holds ``schema_version``, the graph attributes, every node (name, kind, source, shape,
fields) and every edge (src, dst, port). A field holding an array is written as
``{"array": key}`` with the array stored under ``key`` in the npz. Nodes are rebuilt only through
``nodes.NODE_KINDS``, so every field passes its node's checks again on load. Both files are
written to a temporary name and moved into place with ``os.replace`` (npz first, so a JSON on
disk never points at a missing array file).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import networkx as nx
import numpy as np

from statten_hw.errors import GraphError
from statten_hw.reports.files import atomic_write_bytes, atomic_write_text

from .graph import OP, PORT, SHAPE, SOURCE, new_graph
from .nodes import NODE_KINDS

SCHEMA_VERSION = 1


def _paths(path_stem) -> tuple[Path, Path]:
    stem = Path(path_stem)
    return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".npz")


def jsonable(value, encode_object=None):
    """``value`` as plain JSON types: tuples and lists become lists, numpy scalars Python numbers,
    dicts are converted value by value. ``encode_object(v)`` may turn an object only the caller
    knows into a dict (it returns None for everything else)."""
    custom = encode_object(value) if encode_object else None
    if custom is not None:
        return {k: jsonable(v, encode_object) for k, v in custom.items()}
    if isinstance(value, dict):
        return {k: jsonable(v, encode_object) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [jsonable(v, encode_object) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def save_graph(g: nx.DiGraph, path_stem) -> tuple[Path, Path]:
    """Write ``g`` to ``<path_stem>.json`` and ``<path_stem>.npz``; return both paths."""
    json_path, npz_path = _paths(path_stem)
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for index, (name, data) in enumerate(g.nodes(data=True)):
        op = data[OP]
        fields = {}
        for field, value in op.fields().items():
            if isinstance(value, np.ndarray):
                key = f"{index}.{field}"
                arrays[key] = value
                fields[field] = {"array": key}
            else:
                fields[field] = jsonable(value)
        shape = data.get(SHAPE)
        nodes.append({"name": name, "kind": op.KIND, "source": data.get(SOURCE, ""),
                      "shape": None if shape is None else list(shape), "fields": fields})
    edges = [{"src": u, "dst": v, "port": d[PORT]} for u, v, d in g.edges(data=True)]
    doc = {"schema_version": SCHEMA_VERSION, "graph": g.graph, "nodes": nodes, "edges": edges}
    try:
        text = json.dumps(doc, indent=1, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise GraphError(f"graph cannot be written as JSON: {err}") from None
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(npz_path, buffer.getvalue())
    atomic_write_text(json_path, text)
    return json_path, npz_path


def load_graph(path_stem) -> nx.DiGraph:
    """Rebuild the graph written by :func:`save_graph` (nodes through ``NODE_KINDS``)."""
    json_path, npz_path = _paths(path_stem)
    try:
        doc = json.loads(json_path.read_text())
    except (OSError, ValueError, RecursionError) as err:
        raise GraphError(f"{json_path}: cannot read graph ({type(err).__name__}: {err})") from None
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise GraphError(f"{json_path}: schema_version {doc.get('schema_version')!r}, this reader knows {SCHEMA_VERSION}")
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as err:
        raise GraphError(f"{npz_path}: cannot read arrays ({type(err).__name__}: {err})") from None
    g = new_graph(**doc.get("graph", {}))
    for entry in doc["nodes"]:
        cls = NODE_KINDS.get(entry["kind"])
        if cls is None:
            raise GraphError(f"{json_path}: node {entry['name']!r} has unknown kind {entry['kind']!r}; "
                             f"known: {sorted(NODE_KINDS)}")
        fields = {}
        for field, value in entry["fields"].items():
            if isinstance(value, dict):
                if value.get("array") not in arrays:
                    raise GraphError(f"{npz_path}: array {value.get('array')!r} of node {entry['name']!r} is missing")
                value = arrays[value["array"]]
            fields[field] = value
        try:
            op = cls(**fields)
        except (TypeError, ValueError) as err:
            raise GraphError(f"{json_path}: node {entry['name']!r} ({entry['kind']}): {err}") from None
        g.add_node(entry["name"], **{OP: op, SOURCE: entry.get("source", "")})
        if entry.get("shape") is not None:
            g.nodes[entry["name"]][SHAPE] = tuple(entry["shape"])
    for edge in doc["edges"]:
        if edge["src"] not in g or edge["dst"] not in g:
            raise GraphError(f"{json_path}: edge {edge['src']!r} -> {edge['dst']!r} names a missing node")
        g.add_edge(edge["src"], edge["dst"], **{PORT: edge["port"]})
    return g
