"""Temporal partitioning: T timesteps in blocks of B, what each layer buffers, and the latency.

Buffers (bits; a layer's byte counts round each term up to whole bytes):

* attention layer, ``step`` targets: Q, K, V of the block, ``B·N·D`` elements each, one bit per
  spike (A2OS2A: its ReLU K is graded, ``state_bits`` each, and its ternary V takes 2 bits); ``layer``
  targets hold no extra copy (the Q, K, V layers' own output blocks below are those values);
* attention accumulators (counters of the block products, per mode):
  STAtten ``heads·d·d`` counters of ``ceil(log2(B·N + 1))`` bits (KᵀV over the B·N rows); A2OS2A the
  same products, signed and graded: a sign bit plus ``ceil(log2(B·N·K_max + 1))`` bits, ``K_max =
  2^(state_bits−1) − 1``;
  T_STAtten ``N·heads·d·d`` counters of ``ceil(log2(B + 1))`` bits (K_nᵀV_n per token);
  N_STAtten ``N·heads·B·B`` counters of ``ceil(log2(d + 1))`` bits (Q_nK_nᵀ per token);
  SSA ``heads·d·d`` of ``ceil(log2(N + 1))`` (KᵀV of one step); SDSA ``D`` of ``ceil(log2(N + 1))``
  (Σ_N K⊙V). SSA and SDSA work step by step: B does not enter them (their effective block is 1);
* residual input of an attention layer: the shortcut that skips it (every block of the three families
  has one: membrane values in SDT and STAtten, sums of spikes in Spikformer), counted at ``state_bits``
  per value, an upper bound. On ``step`` targets the shortcut of step t waits
  for the attention output of step t, which comes ``B − 1`` steps later: ``(B − 1)·N·D`` values are
  held (none at an effective block of 1: the shortcut goes straight into the next neurons' input). On
  ``layer`` targets the block's ``B·N·D`` shortcut values are held while the layers between run;
* pre-pool sums: a layer whose synapses reach its neurons through a pool or a mean (SDT's conv ->
  max-pool -> LIF) holds each synapse output's sum of the step until the pool reads it:
  ``ceil(values·state_bits / neurons)`` bits per neuron (a sum that is a neuron's own input is its
  state: none). Per step on both kinds of target (a layer target may reuse them step by step in a block);
* ``layer`` targets: every layer's outputs of a block, ``B·neurons`` values (the next layer starts
  only once the block is done) of `value_bits` each: a spike 1 bit, a ternary spike 2, a
  graded value (A2OS2A's ReLU K, the readout) ``state_bits``.

Every per-neuron term is a whole number of bits per neuron; the accumulators belong to a head (a unit)
and are copied to every core that holds part of the head.

Latency, in timesteps, from the first input step to the last output step:

* ``step``: the pipeline moves one step per global step; an attention layer can fire only when its
  block's last step exists, so it adds ``B − 1`` steps: ``T + A·(B − 1)`` with A block attention layers
  (``BLOCK_MODES``; SSA and SDSA work step by step and add none);
* ``layer``: each layer processes a block (B steps) before the next starts, one layer at a time:
  ``(T/B)·L`` stages of B steps, ``T·L`` step-times.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from statten_hw.errors import InputError
from statten_hw.targets.schema import ExecutionStyle, Target

from .layers import NeuronLayer, value_bits

#: Attention modes that group B consecutive steps.
BLOCK_MODES = ("STAtten", "A2OS2A", "T_STAtten", "N_STAtten")


def counter_bits(max_count: int) -> int:
    """Bits of an unsigned counter reaching ``max_count``: ``ceil(log2(max_count + 1))``."""
    return max(1, math.ceil(math.log2(max_count + 1)))


@dataclass(frozen=True)
class LayerBuffers:
    """Per-layer buffer needs for block size B (bits per neuron, bits per unit) and timing."""

    layer: str
    qkv_bits: tuple[int, ...]  # bits per neuron of each of the Q, K, V buffers (empty: none)
    residual_bits_per_neuron: int
    block_bits_per_neuron: int
    accumulator_bits_per_unit: int
    neurons: int
    units: int
    start_step: int
    delay_steps: int
    pre_pool_bits_per_neuron: int = 0

    @property
    def bits_per_neuron(self) -> int:
        return (sum(self.qkv_bits) + self.residual_bits_per_neuron + self.block_bits_per_neuron
                + self.pre_pool_bits_per_neuron)

    @property
    def qkv_bytes(self) -> int:
        """Q, K and V buffers, each rounded up to bytes (binary: ``3·ceil(B·N·D / 8)``)."""
        return sum(math.ceil(self.neurons * bits / 8) for bits in self.qkv_bits)

    @property
    def accumulator_bytes(self) -> int:
        return math.ceil(self.units * self.accumulator_bits_per_unit / 8)

    @property
    def residual_bytes(self) -> int:
        return math.ceil(self.neurons * self.residual_bits_per_neuron / 8)

    @property
    def block_bytes(self) -> int:
        return math.ceil(self.neurons * self.block_bits_per_neuron / 8)

    @property
    def pre_pool_bytes(self) -> int:
        return math.ceil(self.neurons * self.pre_pool_bits_per_neuron / 8)

    @property
    def buffer_bytes(self) -> int:
        """All buffers of the layer (state excluded), each term rounded up to bytes."""
        return self.qkv_bytes + self.accumulator_bytes + self.residual_bytes + self.block_bytes + self.pre_pool_bytes


@dataclass(frozen=True)
class Schedule:
    """T steps in ``blocks`` blocks of B; latency in steps (and ``stages`` for layer-by-layer)."""

    timesteps: int
    block_size: int
    blocks: int
    execution: str
    attention_layers: int
    layers: int
    stages: int
    latency_steps: int


def check_block_size(timesteps: int, block_size: int) -> None:
    """B must be a positive divisor of T, else `InputError` naming both."""
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1 or timesteps % block_size:
        raise InputError(f"block size B = {block_size!r:.20} must be a positive divisor of T = {timesteps}")


def _graded_key(state_bits: int) -> int:
    """Largest magnitude of A2OS2A's ReLU key, a ``state_bits`` value."""
    return (1 << (state_bits - 1)) - 1


def _qkv_bits(layer: NeuronLayer, b: int, state_bits: int) -> tuple[int, int, int]:
    """Bits per output neuron of the Q, K and V buffers over a block of ``b`` steps."""
    if layer.attention.mode == "A2OS2A":
        return b, b * state_bits, 2 * b  # binary Q, graded ReLU K, ternary V
    return b, b, b


def _accumulator_bits(layer: NeuronLayer, b: int, state_bits: int) -> int:
    """Accumulator bits of one head (module docstring gives each mode's counters)."""
    a = layer.attention
    n, d = a.tokens, a.head_dim
    if a.mode == "STAtten":
        return d * d * counter_bits(b * n)
    if a.mode == "A2OS2A":
        return d * d * (1 + counter_bits(b * n * _graded_key(state_bits)))
    if a.mode == "T_STAtten":
        return n * d * d * counter_bits(b)
    if a.mode == "N_STAtten":
        return n * b * b * counter_bits(d)
    if a.mode == "SSA":
        return d * d * counter_bits(n)
    return d * counter_bits(n)  # SDSA


def layer_buffers(layer: NeuronLayer, target: Target, block_size: int, start_step: int = 0) -> LayerBuffers:
    """Buffers of one layer for block size B on ``target`` (start_step: when its first output appears)."""
    step = target.execution == ExecutionStyle.STEP
    state_bits = target.precision.state_bits
    qkv, residual, acc, delay = (), 0, 0, 0
    if layer.attention is not None:
        b = block_size if layer.attention.mode in BLOCK_MODES else 1
        # Each neuron of the attention output stands for one (token, channel) of Q, K and V.
        qkv = _qkv_bits(layer, b, state_bits) if step else ()
        acc = _accumulator_bits(layer, b, state_bits)
        delay = b - 1 if step else 0
        residual = (delay if step else block_size) * state_bits
    block = 0 if step else block_size * value_bits(layer.output, state_bits)
    pre_pool = math.ceil(layer.pre_pool_values * state_bits / layer.neurons)
    return LayerBuffers(layer.name, qkv, residual, block, acc, layer.neurons, layer.units, start_step, delay, pre_pool)


def temporal_partition(layers: list[NeuronLayer], target: Target, timesteps: int,
                       block_size: int) -> tuple[list[LayerBuffers], Schedule]:
    """Buffers of every layer and the schedule of T steps in blocks of B (errors if B ∤ T)."""
    check_block_size(timesteps, block_size)
    blocks = timesteps // block_size
    step = target.execution == ExecutionStyle.STEP
    out, start = [], 0
    for i, layer in enumerate(layers):
        buf = layer_buffers(layer, target, block_size)
        start += buf.delay_steps  # an attention layer's first output waits for the end of its block
        out.append(replace(buf, start_step=start if step else i * block_size))
    attention = sum(1 for layer in layers if layer.attention is not None and layer.attention.mode in BLOCK_MODES)
    if step:
        stages, latency = timesteps + start, timesteps + start
    else:
        stages, latency = blocks * len(layers), blocks * len(layers) * block_size
    return out, Schedule(timesteps, block_size, blocks, target.execution.value, attention, len(layers), stages, latency)


__all__ = ["BLOCK_MODES", "LayerBuffers", "Schedule", "check_block_size", "counter_bits", "layer_buffers",
           "temporal_partition"]
