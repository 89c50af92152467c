"""Neuron layers of the official STAtten graph: counts, weights, fan-in, attention inputs."""
from __future__ import annotations

from mapping_helpers import statten_graph
from statten_hw.mapping.layers import fan_out, neuron_layers


def _by_name():
    return {layer.name: layer for layer in neuron_layers(statten_graph())}


def test_every_lif_is_a_layer_and_the_head_is_a_readout():
    layers = _by_name()
    lifs = [n for n, d in statten_graph().nodes(data=True) if d["op"].KIND == "lif"]
    assert set(lifs) | {"head"} == set(layers)
    assert layers["head"].kind == "readout" and layers["head"].neurons == 10


def test_conv_layer_dense_encoding():
    q = _by_name()["block.0.attn.q_lif"]
    # 1x1 conv 64 -> 64 on an 8x8 map: 64 channels (units) of 64 neurons, 64 weights per channel.
    assert (q.neurons, q.units, q.unit_neurons, q.unit_weights, q.fan_in) == (4096, 64, 64, 64, 64)
    assert q.synapse_bytes(8) == 64 * 64  # 8-bit weights, kernel once per channel
    assert q.synapse_bytes(4) == 64 * 32
    assert q.state_bytes(24) == 4096 * 3
    assert q.synapses == ("block.0.attn.q_conv",)
    assert q.sources == (("block.0.attn.shortcut_lif", 64),)


def test_membrane_shortcut_is_one_residual_input():
    s = _by_name()["block.0.attn.shortcut_lif"]
    # rpe_conv (3x3, 64 -> 64): 576 weights per output, plus the residual (maxpool3 shortcut).
    assert (s.unit_weights, s.residual_inputs, s.fan_in) == (576, 1, 577)
    assert s.synapses == ("patch_embed.rpe_conv",)


def test_attention_layer_inputs():
    a = _by_name()["block.0.attn.attn_lif"]
    assert a.kind == "attention" and a.attention.mode == "STAtten"
    assert (a.attention.heads, a.attention.tokens, a.attention.dim, a.attention.head_dim) == (8, 64, 64, 8)
    assert (a.attention.q, a.attention.k, a.attention.v) == ("block.0.attn.q_lif", "block.0.attn.k_lif",
                                                             "block.0.attn.v_lif")
    assert a.units == 8 and a.unit_weights == 0 and a.fan_in == 3 * 8


def test_fan_out_sums_consumers():
    fo = fan_out(neuron_layers(statten_graph()))
    assert fo["block.0.attn.shortcut_lif"] == 3 * 64  # q, k, v 1x1 convs of 64 channels
    assert fo["block.0.attn.q_lif"] == 8  # one q spike feeds the d = 8 outputs of its token and head
    assert fo["head"] == 0
