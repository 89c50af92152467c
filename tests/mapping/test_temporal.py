"""Temporal partitioning: block-size checks, attention buffers derived by hand, latency."""
from __future__ import annotations

import pytest

from mapping_helpers import small_target, statten_graph
from statten_hw.errors import InputError
from statten_hw.mapping.layers import AttentionInputs, NeuronLayer, neuron_layers
from statten_hw.mapping.temporal import counter_bits, layer_buffers, temporal_partition


def _tiny_attention(mode: str = "STAtten") -> NeuronLayer:
    """Attention over N = 4 tokens, D = 4 channels, 2 heads (d = 2): 16 output neurons, 2 units."""
    return NeuronLayer(name="attn", kind="attention", shape=(4, 2, 2), neurons=16, units=2, unit_neurons=8,
                       unit_weights=0, synapses=(), synapse_count=16 * 6, fan_in=6, residual_inputs=0,
                       sources=(("q", 2), ("k", 2), ("v", 2)),
                       attention=AttentionInputs(mode, heads=2, tokens=4, dim=4, q="q", k="k", v="v"))


# By hand, state_bits = 24 (loihi2), step target:
#   Q, K, V: B·N·D = 16·B bits each -> 3·ceil(16B/8) bytes      = 6, 12, 24     for B = 1, 2, 4
#   KᵀV: heads·d·d = 8 counters of ceil(log2(4B + 1)) bits      = 3, 4, 5 bits  -> 24, 32, 40 bits
#                                                                -> 3, 4, 5 bytes
#   residual: the shortcut of step t waits B − 1 steps for its attention output:
#             (B − 1)·N·D values of 24 bits = 384·(B − 1) bits  = 0, 48, 144 bytes
#   total                                                        = 9, 64, 173 bytes
@pytest.mark.parametrize("block, qkv, acc, residual, total",
                         [(1, 6, 3, 0, 9), (2, 12, 4, 48, 64), (4, 24, 5, 144, 173)])
def test_attention_buffers_by_hand(block, qkv, acc, residual, total):
    buf = layer_buffers(_tiny_attention(), small_target("step"), block)
    assert (buf.qkv_bytes, buf.accumulator_bytes, buf.residual_bytes, buf.block_bytes) == (qkv, acc, residual, 0)
    assert buf.buffer_bytes == total
    assert buf.delay_steps == block - 1


# A2OS2A, by hand, B = 2, state_bits = 24: Q binary 2·16 bits = 4 bytes; K graded (ReLU of a 24-bit value)
# 2·16·24 bits = 96 bytes; V ternary, 2 bits: 2·16·2 bits = 8 bytes. KᵀV is signed and graded: |K| <=
# 2^23 − 1, so a sum over B·N = 8 rows reaches 8·(2^23 − 1) < 2^26: 26 bits + a sign = 27 bits per
# counter, 8 counters = 216 bits = 27 bytes. Residual as STAtten: 48 bytes.
def test_a2os2a_buffers_hold_graded_keys_and_ternary_values():
    buf = layer_buffers(_tiny_attention("A2OS2A"), small_target("step"), 2)
    assert (buf.qkv_bytes, buf.accumulator_bytes, buf.residual_bytes) == (4 + 96 + 8, 27, 48)


@pytest.mark.parametrize("mode", ["SSA", "SDSA"])
def test_step_by_step_attention_holds_no_shortcut_on_step_targets(mode):
    """SSA and SDSA compute each step alone (effective block 1): no delay, so nothing to hold."""
    buf = layer_buffers(_tiny_attention(mode), small_target("step"), 4)
    assert (buf.delay_steps, buf.residual_bytes, buf.qkv_bytes) == (0, 0, 6)


@pytest.mark.parametrize("mode", ["STAtten", "SSA"])
def test_layer_targets_hold_the_shortcut_of_the_whole_block(mode):
    """Layer by layer, the block's shortcut waits while the layers between run: B·N·D values of 24 bits."""
    buf = layer_buffers(_tiny_attention(mode), small_target("layer"), 4)
    assert buf.residual_bytes == 4 * 16 * 24 // 8


def test_layer_targets_hold_output_blocks_not_qkv_copies():
    buf = layer_buffers(_tiny_attention(), small_target("layer"), 2)
    # 16 neurons · B = 2 bits of output block = 4 bytes; Q/K/V live in their own layers' blocks.
    assert (buf.qkv_bytes, buf.block_bytes, buf.delay_steps) == (0, 4, 0)


def test_layer_targets_hold_each_layers_outputs_at_their_own_width():
    """A2OS2A's K is a ReLU of 24-bit values, its V ternary, the head a readout of sums: their output
    blocks were counted at one bit per value, as if they were spikes. On the small A2OS2A net at B = 2,
    by hand: a spike 1 bit, a ternary spike 2, a graded value 24 (loihi2's state) per neuron and step."""
    import math
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
    from ir_nets import small_model
    from statten_hw.ir import lower

    layers = {layer.name: layer for layer in neuron_layers(lower(small_model("a2os2a")))}
    expected_bits = {"block.0.attn.q_lif": 1, "block.0.attn.k_lif": 24, "block.0.attn.v_lif": 2,
                     "block.0.attn.attn_lif": 1, "head": 24}
    assert expected_bits.keys() <= layers.keys()
    for name, bits in expected_bits.items():
        buf = layer_buffers(layers[name], small_target("layer"), 2)
        assert buf.block_bytes == math.ceil(layers[name].neurons * 2 * bits / 8), name


def test_counter_bits():
    assert [counter_bits(m) for m in (1, 2, 3, 4, 8, 128)] == [1, 2, 2, 3, 4, 8]


@pytest.mark.parametrize("execution", ["step", "layer"])
def test_fixture_attention_buffers_grow_with_block(execution):
    layers = neuron_layers(statten_graph())
    target = small_target(execution)
    sizes = []
    for block in (1, 2, 4):
        buffers, _ = temporal_partition(layers, target, 4, block)
        sizes.append([b.buffer_bytes for b, layer in zip(buffers, layers) if layer.attention is not None])
    assert len(sizes[0]) == 2  # two STAtten blocks
    for small, large in zip(sizes, sizes[1:]):
        assert all(a < b for a, b in zip(small, large))


def test_latency():
    layers = neuron_layers(statten_graph())
    _, step = temporal_partition(layers, small_target("step"), 4, 2)
    assert step.latency_steps == 4 + 2 * (2 - 1)  # T + A·(B − 1), two attention layers
    assert step.attention_layers == 2
    _, lay = temporal_partition(layers, small_target("layer"), 4, 2)
    assert (lay.blocks, lay.stages, lay.latency_steps) == (2, 2 * len(layers), 4 * len(layers))


@pytest.mark.parametrize("block", [3, 0, 5, True])
def test_block_must_divide_t(block):
    """It named a layer '<model>' that 'does not fit: block size divides T needs 3, limit is 4'."""
    with pytest.raises(InputError, match=rf"^block size B = {block!r} must be a positive divisor of T = 4$"):
        temporal_partition(neuron_layers(statten_graph()), small_target(), 4, block)
