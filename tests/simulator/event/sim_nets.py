"""Small deployments for the simulator tests: every attention mode on a target with tiny cores."""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from ir_nets import small_input, small_model
from statten_hw.ir import lower
from statten_hw.mapping import map_model
from statten_hw.pipeline import Deployment
from statten_hw.quant import quantize
from statten_hw.targets import ExecutionStyle, load_target


def tiny_target(execution: str = "step", neurons: int = 256):
    """loihi2 with ``neurons`` per core: the small networks spread over many cores and hops."""
    base = load_target("loihi2")
    return replace(base, execution=ExecutionStyle(execution), core=replace(base.core, neurons_per_core=neurons))


@lru_cache(maxsize=None)
def small_deployment(key: str, execution: str = "step", seed: int = 0) -> Deployment:
    model = small_model(key, seed)
    qgraph = quantize(lower(model), small_input(model, 8, seed=seed + 5), weight_bits=8)
    mapping = map_model(qgraph.float_graph, tiny_target(execution), model.config.block_size)
    return Deployment(checkpoint=None, model=model, qgraph=qgraph, mapping=mapping, dataset="random")
