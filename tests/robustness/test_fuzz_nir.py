"""Fuzzing the NIR importer (hypothesis): ``import_nir`` gives a graph that runs, or one StattenError line.

Bases: the integer STAtten and SDSA networks of tests/ir/ir_nets.py (SDSA nests a LIF inside its
attention op), exported by ``export_nir``. Each example reads a base with ``nir.read``, edits the
graph object, writes it back with ``nir.write`` (edits that NIR itself cannot write are rejected)
and imports it:

* ``test_perturbed_graph`` (60 examples, 1-3 edits each): a node's metadata entry set to another
  value (text, JSON of any type, numbers) or deleted; one field of a node's ``qop`` JSON set to
  any JSON value; the graph's ``format``, bit widths or ``order`` changed (names dropped,
  repeated, invented); an edge dropped or invented; a node's ``inputs`` port re-pointed; a
  node's ``shape`` changed; weights made fractional, NaN, huge or cut; a node removed.

A graph that imports must also run on the network's real input (``run_integer``) with nothing
but a StattenError. Bytes-level corruption of the HDF5 container is not fuzzed here: HDF5 2.0.0
itself crashes (SIGSEGV) on about 1 % of randomly damaged files, below anything Python can catch.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import nir
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, event, given, settings
from hypothesis import strategies as st

from statten_hw.errors import StattenError
from statten_hw.export.nir_export import as_text, export_nir, import_nir
from statten_hw.ir import lower
from statten_hw.quant import quantize, run_integer

sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
from ir_nets import small_input, small_model  # noqa: E402

NETWORKS = ("statten", "sdsa")
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                           | st.text(max_size=6), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=2), max_leaves=6)
META_VALUES = st.one_of(JSON_VALUES.map(json.dumps), st.text(max_size=12), st.integers(-5, 2**40),
                        st.floats(allow_nan=True), st.sampled_from(["QLIF", "QAttention", "QOutput", "[]", "{}"]))


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """network -> (graph as nir.read gives it, its input batch), and a scratch file."""
    folder = tmp_path_factory.mktemp("fuzz_nir")
    out = {}
    for key in NETWORKS:
        model = small_model(key)
        x = small_input(model)
        path = export_nir(quantize(lower(model), x), folder / f"{key}.nir")
        out[key] = (nir.read(path), x)
    return out, folder / "perturbed.nir"


def _json(meta: dict, key: str, kind: type):
    """The JSON under ``meta[key]``, or an empty ``kind`` where an earlier edit made it something else."""
    try:
        value = json.loads(as_text(meta.get(key, "")))
    except ValueError:
        return kind()
    return value if isinstance(value, kind) else kind()


def perturb(graph: nir.NIRGraph, draw) -> None:
    """One edit of the graph object, of a kind listed in the module docstring."""
    names = sorted(graph.nodes)
    name = draw(st.sampled_from(names))
    node, meta = graph.nodes[name], graph.nodes[name].metadata
    kind = draw(st.sampled_from(["meta", "drop meta", "qop", "graph meta", "order", "edge", "inputs", "shape",
                                 "weight", "node"]))
    if kind == "meta" and meta:
        meta[draw(st.sampled_from(sorted(meta)))] = draw(META_VALUES)
    elif kind == "drop meta" and meta:
        del meta[draw(st.sampled_from(sorted(meta)))]
    elif kind == "qop" and "qop" in meta:
        fields = _json(meta, "qop", dict) or {"invented": 1}
        fields[draw(st.sampled_from(sorted(fields)) | st.text(max_size=4))] = draw(JSON_VALUES)
        meta["qop"] = json.dumps(fields)
    elif kind == "graph meta":
        graph.metadata[draw(st.sampled_from(["format", "weight_bits", "state_bits", "decay_bits"]))] = draw(META_VALUES)
    elif kind == "order":
        order = _json(graph.metadata, "order", list) or ["ghost"]
        edit = draw(st.sampled_from(["drop", "repeat", "invent"]))
        order = order[1:] if edit == "drop" else order + [order[0] if edit == "repeat" else "ghost"]
        graph.metadata["order"] = json.dumps(order)
    elif kind == "edge" and graph.edges:
        if draw(st.booleans()):
            graph.edges.pop(draw(st.integers(0, len(graph.edges) - 1)))
        else:
            graph.edges.append((name, draw(st.sampled_from(names))))
    elif kind == "inputs" and "inputs" in meta:
        ports = _json(meta, "inputs", dict)
        ports[draw(st.sampled_from(sorted(ports) + ["x", "q", "lhs", "zz"]))] = draw(st.sampled_from(names + ["ghost"]))
        meta["inputs"] = json.dumps(ports)
    elif kind == "shape" and "shape" in meta:
        meta["shape"] = json.dumps(draw(st.lists(st.integers(-1, 10**7), max_size=5)))
    elif kind == "weight" and hasattr(node, "weight"):
        w = np.asarray(node.weight, dtype=np.float64)
        node.weight = draw(st.sampled_from([w + 0.5, w * np.nan, w * 1e300, w[..., :1], w.ravel()]))
    elif kind == "node" and len(names) > 2:
        del graph.nodes[name]
        graph.edges[:] = [(u, v) for u, v in graph.edges if name not in (u, v)]


@settings(max_examples=60, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(network=st.sampled_from(NETWORKS), edits=st.integers(1, 3), data=st.data())
def test_perturbed_graph(bases, network, edits, data):
    graphs, scratch = bases
    base, x = graphs[network]
    graph = copy.deepcopy(base)
    for _ in range(edits):
        perturb(graph, data.draw)
    try:
        nir.write(scratch, graph)
    except Exception:  # noqa: BLE001 - an edit NIR's own writer refuses is not a file anyone can hand us
        assume(False)
    try:
        qgraph = import_nir(scratch)
    except StattenError as err:
        assert "\n" not in str(err), str(err)
        event(f"refused: {str(err).split(': ', 2)[1][:30]}")
        return
    event("imported")
    try:
        run_integer(qgraph, x[:1])
    except StattenError as err:
        assert "\n" not in str(err), str(err)
