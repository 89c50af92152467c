"""Neuron layers of the official STAtten graph: counts, weights, fan-in, attention inputs."""
from __future__ import annotations

import sys
from pathlib import Path

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
    # the shortcut (patch_embed.maxpool3 of proj_conv3) is computed on proj_lif3's cores, whose
    # neurons read it; the next block's shortcut, patch_embed.rpe_add, on this layer's own
    assert s.shortcut_sources == ("patch_embed.proj_lif3",)
    assert _by_name()["block.0.mlp.fc1_lif"].shortcut_sources == ("block.0.attn.shortcut_lif",)


def test_attention_layer_inputs():
    a = _by_name()["block.0.attn.attn_lif"]
    assert a.kind == "attention" and a.attention.mode == "STAtten"
    assert (a.attention.heads, a.attention.tokens, a.attention.dim, a.attention.head_dim) == (8, 64, 64, 8)
    assert (a.attention.q, a.attention.k, a.attention.v) == ("block.0.attn.q_lif", "block.0.attn.k_lif",
                                                             "block.0.attn.v_lif")
    assert a.units == 8 and a.unit_weights == 0 and a.fan_in == 3 * 8


def test_fan_out_sums_consumers():
    fo = fan_out(neuron_layers(statten_graph()))
    # q, k, v 1x1 convs of 64 channels, and the residual stream its dendrites compute (patch_embed.rpe_add)
    # to block.0.mlp.fc1_lif, which adds it to its membrane
    assert fo["block.0.attn.shortcut_lif"] == 3 * 64 + 1
    assert fo["block.0.attn.q_lif"] == 8  # one q spike feeds the d = 8 outputs of its token and head
    assert fo["head"] == 0


def test_a_residual_stream_two_dendrites_read_is_computed_once():
    """With an MLP as wide as its input, fc2_lif adds fc1's conv output to the residual stream that
    fc1_lif's dendrite already computes (from the attention projection and the patch shortcut). The
    stream arrives from fc1_lif's cores, so fc2_lif holds no copy of proj_conv's weights and no
    synapses at all: both of its inputs are graded values added element by element."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
    from ir_nets import small_model
    from statten_hw.ir import lower

    layers = {layer.name: layer for layer in neuron_layers(lower(small_model("statten_mlp_res")))}
    fc2 = layers["block.0.mlp.fc2_lif"]
    assert fc2.synapses == () and fc2.unit_weights == 0
    assert fc2.shortcut_sources == ("block.0.mlp.fc1_conv", "block.0.mlp.fc1_lif")
    assert (fc2.residual_inputs, fc2.fan_in) == (2, 2)
    assert layers["block.0.mlp.fc1_lif"].synapses == ("block.0.attn.proj_conv",)
