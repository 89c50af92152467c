"""run_lava: Lava processes under Loihi2SimCfg('fixed_pt') reproduce the integer reference bit-exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lava_nets import DVS, MODES, active_qgraph, sample, tiny_qgraph
from statten_hw.errors import UnsupportedLayer
from statten_hw.quant import run_integer
from statten_hw.quant.quantize import QAdd, QAttention, QMaxPool2d, QMean
from statten_hw.simulator.lava import _compat

pytestmark = [pytest.mark.lava,
              pytest.mark.skipif(not _compat.HAS_LAVA, reason=f"lava-nc not importable: {_compat.LAVA_IMPORT_ERROR!r}")]

#: Graded intermediate values checked too: attention counts, residual sums, pools and means.
PROBED = (QAttention, QAdd, QMaxPool2d, QMean)


def _assert_equal_to_reference(qgraph, x, run):
    ref = run_integer(qgraph, x)
    assert not any(ref.overflows.values()), "bit-exactness is claimed for runs without saturation"
    assert run.spikes.keys() >= set(qgraph.lif_nodes)
    for node, values in run.spikes.items():
        expected = ref.values[node].numpy()
        assert values.dtype == np.int64 and values.shape == expected.shape, node
        mismatch = np.argwhere(values != expected)
        assert mismatch.size == 0, f"{node}: {len(mismatch)} elements differ, first at {mismatch[0].tolist()}"
    np.testing.assert_array_equal(run.logits_int, ref.logits_int.numpy())
    return ref


@pytest.mark.parametrize("key", MODES + DVS)
def test_every_attention_mode_is_bit_exact_with_the_integer_reference(key):
    """One sample per mode, and the DVS nets (event input, TET) (a Lava start costs seconds; several
    samples are covered below)."""
    from statten_hw.simulator.lava.run import run_lava

    qgraph = active_qgraph(key)
    x = sample(key, 1)
    probes = tuple(n for n in qgraph.graph if isinstance(qgraph.qop(n), PROBED))
    run = run_lava(qgraph, x, probes=probes)
    ref = _assert_equal_to_reference(qgraph, x, run)
    assert set(probes) <= run.spikes.keys()
    # The comparison means something: the attention counts are not all zero, and every LIF fires but
    # possibly the one after attention (T/N-STAtten and SSA counts over few rows stay below its
    # threshold on these nets; the counts themselves are compared above).
    attention = next(n for n in qgraph.graph if isinstance(qgraph.qop(n), QAttention))
    assert ref.values[attention].any()
    after_attention = set(qgraph.graph.successors(attention))
    silent = [n for n in qgraph.lif_nodes if not ref.values[n].any() and n not in after_attention]
    assert not silent, f"silent layers make the comparison vacuous: {silent}"
    assert run.steps == run.window


def test_samples_run_in_windows_and_chunks_on_one_runtime():
    """Three samples, two windows per Lava run: state must not leak from one window into the next,
    and the second run reloads the source (one window of it padding)."""
    from statten_hw.simulator.lava.run import run_lava

    qgraph, x = active_qgraph("ssa"), sample("ssa", 3)
    run = run_lava(qgraph, x, samples_per_run=2)
    _assert_equal_to_reference(qgraph, x, run)
    assert run.logits_int.shape[0] == 3 and run.steps == 2 * 2 * run.window
    assert len({tuple(row) for row in run.logits_int.tolist()}) == 3  # the samples really differ


def test_weights_wider_than_loihi_synapses_are_refused_before_lava_starts():
    from statten_hw.simulator.lava.run import run_lava

    qgraph, x = tiny_qgraph(weight_bits=10)
    with pytest.raises(UnsupportedLayer, match=r"'fc1'.*weights reach 511; Loihi 2 synapses hold 8-bit"):
        run_lava(qgraph, x)


def test_a_synapse_fed_by_a_synapse_is_refused_not_run_without_its_bias():
    """Lava's synapses add no bias (the receiver of a sum adds it): a linear reading another linear's
    sum would lose the first bias; it is refused, naming the layer (it ran with 165 vs 102 spikes)."""
    from statten_hw.ir import nodes as ir
    from statten_hw.ir.graph import add_op, new_graph
    from statten_hw.ir.passes.infer_shapes import infer_shapes
    from statten_hw.quant import quantize
    from statten_hw.simulator.lava.run import run_lava

    rng = np.random.default_rng(1)
    g = new_graph()
    add_op(g, "input", ir.Input(shape=(6,), timesteps=2), "")
    add_op(g, "fc1", ir.Linear(weight=rng.normal(size=(5, 6)).astype(np.float32),
                               bias=rng.normal(size=5).astype(np.float32)), "", x="input")
    add_op(g, "fc2", ir.Linear(weight=rng.normal(size=(4, 5)).astype(np.float32)), "", x="fc1")
    add_op(g, "lif", ir.LIF(threshold=0.5), "", x="fc2")
    add_op(g, "time_mean", ir.Mean(time=True), "", x="lif")
    add_op(g, "output", ir.Output(), "", x="time_mean")
    infer_shapes(g)
    x = torch.from_numpy(rng.normal(size=(2, 6)).astype(np.float32))
    with pytest.raises(UnsupportedLayer, match=r"'fc2'.*its input 'fc1' is another synapse's sum"):
        run_lava(quantize(g, x), x)


def test_a_node_probed_twice_comes_back_once():
    from statten_hw.simulator.lava.run import run_lava

    qgraph, x = tiny_qgraph()
    run = run_lava(qgraph, x, probes=("fc1", "fc1"))
    assert np.array_equal(run.spikes["fc1"], run_integer(qgraph, x).values["fc1"].numpy())


@pytest.mark.parametrize("key", ["ssa", "statten"])
def test_the_memory_estimate_counts_every_weight_the_lava_network_holds(key):
    """A linear on N tokens is one Dense of N² weight blocks: the estimate (`resources`) counts the
    weights of the processes actually built (it once counted N x fewer, 1.5 GiB for a Spikformer-4-384
    whose Dense matrices need 108 GiB)."""
    from statten_hw.resources import _lava_weights
    from statten_hw.simulator.lava.build import build_network

    qgraph = active_qgraph(key)
    net = build_network(qgraph, 1)
    held = sum(np.asarray(getattr(p, "weights", getattr(p, "weight", None)).init).size
               for _, p in net.processes if type(p).__name__ in ("Dense", "Conv"))
    assert _lava_weights(qgraph) == held > 0
