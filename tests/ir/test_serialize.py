"""Save/load: every node kind and every lowered network survive the JSON + npz round trip."""
from __future__ import annotations

import json

import pytest
import torch

from ir_examples import EXAMPLES
from ir_nets import small_input, small_model
from statten_hw.errors import GraphError
from statten_hw.ir import load_graph, lower, run_float, save_graph, validate
from statten_hw.ir.graph import add_op, new_graph
from statten_hw.ir.nodes import NODE_KINDS
from statten_hw.ir.serialize import SCHEMA_VERSION


@pytest.mark.parametrize("kind", sorted(NODE_KINDS))
def test_every_kind_round_trips(kind, tmp_path):
    node = EXAMPLES[kind]()
    g = new_graph()
    add_op(g, "n", node, "some.module")
    back = load_graph(save_graph(g, tmp_path / "g")[0].with_suffix(""))
    got = back.nodes["n"]["op"]
    assert type(got) is type(node) and back.nodes["n"]["source"] == "some.module"
    for field, value in node.fields().items():
        other = getattr(got, field)
        if hasattr(value, "dtype"):
            assert other.dtype == value.dtype and other.shape == value.shape and (other == value).all(), field
            assert not other.flags.writeable
        else:
            assert other == value and type(other) is type(value), field


@pytest.mark.parametrize("key", ["statten_dvs_tet", "ssa", "a2os2a"])
def test_lowered_graph_round_trips(key, tmp_path):
    model = small_model(key)
    g = lower(model)
    json_path, npz_path = save_graph(g, tmp_path / key)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([json_path.name, npz_path.name])  # no temp left
    back = validate(load_graph(tmp_path / key))
    assert list(back.nodes) == list(g.nodes)
    assert sorted(back.edges(data="port")) == sorted(g.edges(data="port"))
    assert back.graph == g.graph
    for name in g:
        assert back.nodes[name]["op"].equals(g.nodes[name]["op"]), name
        assert back.nodes[name]["shape"] == g.nodes[name]["shape"]
    x = small_input(model)
    assert torch.equal(run_float(back, x), run_float(g, x))


def test_json_layout(tmp_path):
    json_path, _ = save_graph(lower(small_model("statten")), tmp_path / "g")
    doc = json.loads(json_path.read_text())
    assert doc["schema_version"] == SCHEMA_VERSION
    conv = next(n for n in doc["nodes"] if n["name"] == "patch_embed.proj_conv")
    assert conv["kind"] == "conv2d" and conv["fields"]["weight"] == {"array": conv["fields"]["weight"]["array"]}
    assert {"src": "block.0.attn.q_lif", "dst": "block.0.attn.attention", "port": "q"} in doc["edges"]


def _corrupt(tmp_path, edit):
    json_path, _ = save_graph(lower(small_model("statten")), tmp_path / "g")
    doc = json.loads(json_path.read_text())
    edit(doc)
    json_path.write_text(json.dumps(doc))
    return tmp_path / "g"


def test_wrong_schema_version(tmp_path):
    stem = _corrupt(tmp_path, lambda d: d.update(schema_version=99))
    with pytest.raises(GraphError, match="schema_version 99"):
        load_graph(stem)


def test_unknown_kind(tmp_path):
    stem = _corrupt(tmp_path, lambda d: d["nodes"][1].update(kind="gelu"))
    with pytest.raises(GraphError, match="unknown kind 'gelu'"):
        load_graph(stem)


def test_bad_field_on_load(tmp_path):
    stem = _corrupt(tmp_path, lambda d: next(n for n in d["nodes"] if n["kind"] == "lif")["fields"].update(reset="x"))
    with pytest.raises(GraphError, match="LIF.reset"):
        load_graph(stem)


def test_missing_files(tmp_path):
    with pytest.raises(GraphError, match="cannot read graph"):
        load_graph(tmp_path / "absent")
