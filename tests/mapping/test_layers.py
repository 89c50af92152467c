"""Neuron layers of the official STAtten graph: counts, weights, fan-in, attention inputs."""
from __future__ import annotations

import sys
from pathlib import Path

from mapping_helpers import small_target, statten_graph
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
    # each sends the shortcut's 64 channels x 8 x 8 tokens of graded values per step
    assert s.shortcut_sources == (("patch_embed.proj_lif3", 64 * 8 * 8),)
    assert _by_name()["block.0.mlp.fc1_lif"].shortcut_sources == (("block.0.attn.shortcut_lif", 64 * 8 * 8),)
    # head_lif (64 neurons after the spatial mean) adds the whole 64 x 8 x 8 residual stream before the mean
    assert _by_name()["head_lif"].shortcut_sources == (("block.1.mlp.fc1_lif", 64 * 8 * 8),)


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
    """With an MLP as wide as its input (official ``identity + fc1(x)``), fc2_lif's dendrite sums fc1's
    conv over fc1_lif's spikes, as with a wider MLP, and adds the residual stream that fc1_lif's dendrite
    already computes (from the attention projection and the patch shortcut). The stream arrives from
    fc1_lif's cores, so fc2_lif holds no copy of proj_conv's weights; fc1's conv is no layer of its own
    (it was a readout accumulator when the lowering put it on the add's shortcut side)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
    from ir_nets import small_model
    from statten_hw.ir import lower

    layers = {layer.name: layer for layer in neuron_layers(lower(small_model("statten_mlp_res")))}
    fc2 = layers["block.0.mlp.fc2_lif"]
    dim, tokens = 16, 4 * 4  # dim 16 on 8 px pooled once
    assert fc2.synapses == ("block.0.mlp.fc1_conv",) and fc2.unit_weights == dim  # a 1x1 conv: dim weights each
    assert fc2.shortcut_sources == (("block.0.mlp.fc1_lif", dim * tokens),)
    assert (fc2.residual_inputs, fc2.fan_in) == (1, dim + 1)
    assert layers["block.0.mlp.fc1_lif"].synapses == ("block.0.attn.proj_conv",)
    assert [name for name, layer in layers.items() if layer.kind == "readout"] == ["head"]


def _graph_builder():
    """A new graph, an ``add(name, op, **inputs)`` that infers shapes, and seeded 1x1 convs
    ``conv(c_in, c_out)``; the graph starts at ``x`` (2 channels, 4 x 4, T = 2) through ``conv_a`` and
    ``lif_a``. ``finish(last)`` ends it with a mean, a linear head and the output and returns the graph."""
    import numpy as np
    from statten_hw.ir import nodes as N
    from statten_hw.ir.graph import SHAPE, add_op, inferred_shape, new_graph

    rng, g = np.random.default_rng(0), new_graph()

    def add(name, op, **inputs):
        add_op(g, name, op, "test", **inputs)
        g.nodes[name][SHAPE] = tuple(op.shape) if isinstance(op, N.Input) else inferred_shape(g, name)

    def conv(c_in, c_out):
        return N.Conv2d(weight=rng.standard_normal((c_out, c_in, 1, 1)).astype(np.float32),
                        bias=np.full(c_out, 0.1, np.float32))

    def finish(last):
        add("mean", N.Mean(axes=(1, 2)), x=last)
        add("head", N.Linear(weight=rng.standard_normal((3, 4)).astype(np.float32), bias=np.zeros(3, np.float32)),
            x="mean")
        add("time_mean", N.Mean(time=True), x="head")
        add("out", N.Output(), x="time_mean")
        return g

    add("x", N.Input(shape=(2, 4, 4), timesteps=2))
    add("conv_a", conv(2, 4), x="x")
    add("lif_a", N.LIF(), x="conv_a")
    return add, conv, finish


def _graph_with_a_shortcut_its_own_walk_computes():
    """lif_a feeds conv_b and conv_c; L reads ``membrane(conv_c, conv_b) + maxpool(conv_b)``: conv_b
    is both a membrane shortcut and, through the pool, part of L's own dendrite."""
    from statten_hw.ir import nodes as N

    add, conv, finish = _graph_builder()
    add("conv_b", conv(4, 4), x="lif_a")
    add("conv_c", conv(4, 4), x="lif_a")
    add("add1", N.Add(kind="membrane"), lhs="conv_c", rhs="conv_b")
    add("pooled", N.MaxPool2d(kernel=(1, 1), stride=(1, 1), padding=(0, 0)), x="conv_b")
    add("add2", N.Add(kind="spike"), lhs="add1", rhs="pooled")
    add("L", N.LIF(), x="add2")
    return finish("L")


def _graph_with_a_conv_two_layers_read():
    """conv_b feeds both lif_b and lif_c directly; their spikes are summed for the head."""
    from statten_hw.ir import nodes as N

    add, conv, finish = _graph_builder()
    add("conv_b", conv(4, 4), x="lif_a")
    add("lif_b", N.LIF(), x="conv_b")
    add("lif_c", N.LIF(), x="conv_b")
    add("both", N.Add(kind="spike"), lhs="lif_b", rhs="lif_c")
    return finish("both")


def test_a_sum_two_layers_read_is_computed_on_the_first_and_arrives_at_the_second():
    """conv_b's sums feed lif_b and lif_c. lif_b's dendrite computes them; lif_c holds no second copy of
    the weights but receives the sums as graded values from lif_b's cores, in the mapper (a 4 x 4 x 4
    shortcut from lif_b) and in the event network (a projection sent from lif_b's cores), where both
    engines count one accumulate (added element by element: no multiply) per non-zero sum and step,
    counted from the integer run."""
    import torch
    from statten_hw.mapping import map_model
    from statten_hw.quant import quantize, run_integer
    from statten_hw.simulator.event.detailed import DetailedEngine
    from statten_hw.simulator.event.fast import run_fast
    from statten_hw.simulator.event.network import build_network

    g = _graph_with_a_conv_two_layers_read()
    layers = {layer.name: layer for layer in neuron_layers(g)}
    assert layers["lif_b"].synapses == ("conv_b",) and layers["lif_c"].synapses == ()
    assert layers["lif_c"].shortcut_sources == (("lif_b", 4 * 4 * 4),)
    gen = torch.Generator().manual_seed(1)
    qgraph = quantize(g, torch.randn(4, 2, 4, 4, generator=gen), weight_bits=8)
    mapping = map_model(qgraph.float_graph, small_target(neurons_per_core=16), 1)
    net = build_network(qgraph, mapping)
    (arrival,) = [p for p in net.projections if p.target == "lif_c"]
    b_cores = {core for core, layer, _ in mapping.pieces if layer == "lif_b"}
    assert arrival.source == "conv_b" and {core for core, _ in arrival.senders} <= b_cores
    x = torch.randn(3, 2, 4, 4, generator=gen)
    nonzero = int((run_integer(qgraph, x).values["conv_b"] != 0).sum())
    fast = run_fast(qgraph, net, x)[1]
    detailed = DetailedEngine(qgraph, net).run(x)[2]
    li = fast.layers.index("lif_c")
    assert fast["sops"][li].sum() == detailed["sops"][li].sum() == nonzero > 0
    assert fast["macs"][li].sum() == detailed["macs"][li].sum() == 0


def test_a_shortcut_the_layers_own_dendrite_computes_is_sent_by_its_own_cores():
    """L's walk computes conv_b (through the pool), so the shortcut's 4 x 4 x 4 values come from L's own
    cores, as the event network sends them, not from lif_a's."""
    import torch
    from statten_hw.mapping import map_model
    from statten_hw.quant import quantize
    from statten_hw.simulator.event.network import build_network

    g = _graph_with_a_shortcut_its_own_walk_computes()
    layers = {layer.name: layer for layer in neuron_layers(g)}
    assert layers["L"].shortcut_sources == (("L", 4 * 4 * 4),)
    qgraph = quantize(g, torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(1)), weight_bits=8)
    mapping = map_model(qgraph.float_graph, small_target(neurons_per_core=16), 1)
    (shortcut,) = [p for p in build_network(qgraph, mapping).projections if p.port == "rhs"]
    l_cores = {core for core, layer, _ in mapping.pieces if layer == "L"}
    assert shortcut.source == "conv_b" and {core for core, _ in shortcut.senders} <= l_cores


def test_a_pool_between_synapses_and_neurons_holds_every_sum_of_the_step():
    """conv_p (4 channels, 4 x 4) -> max-pool 2x2 -> lif_p (4 x 2 x 2 = 16 neurons): the 64 sums of a
    step wait for the pool, 24 bits each on loihi2-like cores: 64·24 / 16 = 96 bits per neuron, 192 bytes.
    lif_a, whose conv feeds it directly, holds none (its sum is its own input)."""
    from statten_hw.ir import nodes as N
    from statten_hw.mapping.temporal import layer_buffers

    add, conv, finish = _graph_builder()
    add("conv_p", conv(4, 4), x="lif_a")
    add("pool", N.MaxPool2d(kernel=(2, 2), stride=(2, 2), padding=(0, 0)), x="conv_p")
    add("lif_p", N.LIF(), x="pool")
    layers = {layer.name: layer for layer in neuron_layers(finish("lif_p"))}
    assert (layers["lif_p"].neurons, layers["lif_p"].pre_pool_values, layers["lif_a"].pre_pool_values) == (16, 64, 0)
    target = small_target("step")
    assert target.precision.state_bits == 24
    pooled, direct = (layer_buffers(layers[n], target, 1) for n in ("lif_p", "lif_a"))
    assert (pooled.pre_pool_bits_per_neuron, pooled.pre_pool_bytes, pooled.buffer_bytes) == (96, 192, 192)
    assert direct.pre_pool_bytes == direct.buffer_bytes == 0


def test_the_embedded_models_pooled_conv_holds_its_sums():
    """The embedded model's proj_conv3 -> max-pool -> proj_lif3: its sums of one step, at the state width,
    from the checkpoint's module shapes (conv output channels x the 8 x 8 digits)."""
    from statten_hw.defaults import default_checkpoint
    from statten_hw.mapping import map_model
    from statten_hw.models import load_checkpoint

    model = load_checkpoint(default_checkpoint())
    conv = model.patch_embed.proj_conv3
    result = map_model(model, "loihi2", 2)
    (row,) = [r for r in result.layers if r.name == "patch_embed.proj_lif3"]
    assert row.pre_pool_bytes == conv.out_channels * 8 * 8 * 24 // 8
