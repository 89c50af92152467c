"""Build the SANA-FE network of a plan: a neuron group per layer piece, pinned to its core, and the
synapses of every `SYNAPSES` layer through SANA-FE's bulk sparse API (``connect_neurons_sparse``).

Weights and biases are integers of the quantized graph divided by `GRID` (plan.py says why). Biases
are not set here: they are switched on at the first step of each layer's window by the runner.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from statten_hw.errors import ConfigError
from statten_hw.ir.graph import SHAPE
from statten_hw.quant.quantize import QConv2d, QLIF
from statten_hw.targets.sanafe import SAFE_LOADER, instance_names

from .connectivity import Synapses, conv_synapses, index_map, linear_synapses
from .plan import GRID, READOUT_ATTRIBUTES, REPLAYED, SYNAPSES, GroupPlan, LayerPlan, lif_attributes


@dataclass(frozen=True)
class BuiltNetwork:
    """The SANA-FE ``Network``, its groups, and per layer the bias (integer units) of `SYNAPSES` layers
    and the number of synapses created."""

    network: object
    groups: tuple[GroupPlan, ...]
    bias: dict[str, np.ndarray]
    synapses: dict[str, int]


def build_network(sdk, hw, plans: dict[str, LayerPlan], groups: list[GroupPlan], qgraph, arch) -> BuiltNetwork:
    """``hw``: SANA-FE's ``Architecture`` of ``arch`` (its cores are the map_to_core targets)."""
    net = sdk.Network()
    cores = hw.cores()
    created: dict[str, list[tuple[GroupPlan, object]]] = defaultdict(list)
    next_input_unit: dict[int, int] = defaultdict(int)
    for gp in groups:
        plan = plans[gp.layer]
        if plan.mode == REPLAYED:
            group = net.create_neuron_group(gp.name, gp.neurons, log_spikes=True)
            for neuron in group:
                neuron.set_attributes(soma_hw_name=f"{arch.input_unit}[{_input_unit(next_input_unit, gp.core, arch)}]")
        else:
            op = qgraph.qop(qgraph.alias.get(plan.name, plan.name))
            lif = isinstance(op, QLIF)
            group = net.create_neuron_group(gp.name, gp.neurons, model_attributes=lif_attributes(op) if lif else
                                            READOUT_ATTRIBUTES, soma_hw_name=arch.soma_unit, log_spikes=lif,
                                            log_potential=not lif)
        group.map_to_core(cores[gp.core])
        created[gp.layer].append((gp, group))
    bias, count = {}, {}
    for plan in plans.values():
        if plan.mode == SYNAPSES:
            syn = layer_synapses(qgraph, plan)
            _connect(created[plan.source], created[plan.name], syn)
            bias[plan.name], count[plan.name] = syn.bias, len(syn.weight)
    return BuiltNetwork(net, tuple(groups), bias, count)


def load_hardware(sdk, arch, groups: list[GroupPlan], plans: dict[str, LayerPlan], folder: Path):
    """SANA-FE's ``Architecture`` of ``arch``, each core with only the 'input' soma units it uses.

    SANA-FE simulates and costs only the units in use, so idle input units change no result, only the
    time to build a chip (loihi.yaml's 1024 per core: about 6 s per chip; 0.1 s without). The file is
    rewritten with one entry per tile and per core (``loihi_core[2..2]`` keeps SANA-FE's unit name
    ``loihi_core[2]`` and its creation order, hence every core id), each core listing its input units.
    """
    need: dict[int, int] = defaultdict(int)
    for gp in groups:
        if plans[gp.layer].mode == REPLAYED:
            need[gp.core] += gp.neurons
    data = yaml.load(Path(arch.source).read_text(), Loader=SAFE_LOADER)
    tiles, core_id = [], 0
    for tile in _entries(data["architecture"], "tile"):
        for tile_name in _one_each(tile["name"]):
            cores = []
            for core in _entries(tile, "core"):
                for core_name in _one_each(core["name"]):
                    cores.append({**core, "name": core_name, "soma": _somas(core, need[core_id], arch)})
                    core_id += 1
            tiles.append({**tile, "name": tile_name, "core": cores})
    data["architecture"]["tile"] = tiles
    path = folder / Path(arch.source).name
    path.write_text(yaml.dump(data, Dumper=_NoAliases, sort_keys=False))
    return sdk.load_arch(str(path))


def layer_synapses(qgraph, plan: LayerPlan) -> Synapses:
    """The synapses of ``plan.synapse`` with sources as flat indices of ``plan.source``'s neurons."""
    g = qgraph.graph
    op = qgraph.qop(plan.synapse)
    in_shape = tuple(g.nodes[next(iter(g.predecessors(plan.synapse)))][SHAPE])
    out_shape = tuple(g.nodes[plan.synapse][SHAPE])
    syn = conv_synapses(op, in_shape, out_shape) if isinstance(op, QConv2d) else linear_synapses(op, in_shape)
    sources = index_map([qgraph.qop(n) for n in plan.flatten], tuple(g.nodes[plan.source][SHAPE]))
    return Synapses(sources[syn.source], syn.target, syn.weight, syn.bias)


def _connect(pre: list, post: list, syn: Synapses) -> None:
    """One ``connect_neurons_sparse`` call per (source group, target group) pair that has synapses."""
    pre_start = np.array([gp.start for gp, _ in pre])
    post_start = np.array([gp.start for gp, _ in post])
    i = np.searchsorted(pre_start, syn.source, side="right") - 1
    j = np.searchsorted(post_start, syn.target, side="right") - 1
    key = i * len(post) + j
    order = np.argsort(key, kind="stable")
    keys, first = np.unique(key[order], return_index=True)
    for k, idx in zip(keys, np.split(order, first[1:])):
        a, b = divmod(int(k), len(post))
        pairs = list(zip((syn.source[idx] - pre_start[a]).tolist(), (syn.target[idx] - post_start[b]).tolist()))
        pre[a][1].connect_neurons_sparse(post[b][1], {"weight": (syn.weight[idx] / GRID).tolist()}, pairs)


class _NoAliases(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    """Write shared sub-dicts out in full: SANA-FE's YAML reader does not resolve ``&``/``*`` aliases.
    (libyaml's emitter when PyYAML has it: the Python one takes seconds for loihi.yaml's 128 cores.)"""

    def ignore_aliases(self, data) -> bool:
        return True


def _somas(core: dict, inputs: int, arch) -> list:
    """The core's soma units with its 'input' units cut to ``inputs`` (none when 0), in their place."""
    out, placed = [], False
    for unit in _entries(core, "soma"):
        if unit["attributes"].get("model") != "input":
            out.append(unit)
        elif inputs and not placed:
            out.append({**unit, "name": f"{arch.input_unit}[0..{inputs - 1}]"})
            placed = True
    return out


def _one_each(name: str) -> list[str]:
    """An entry name per unit: ``foo[2..3]`` gives the one-unit ranges ``foo[2..2]``, ``foo[3..3]``, which
    SANA-FE names ``foo[2]``, ``foo[3]`` as before; a plain name stays."""
    names = instance_names(name)
    return names if names == [name] else [n[:-1] + ".." + n[n.rindex("[") + 1:] for n in names]


def _entries(node: dict, key: str) -> list:
    """A YAML section that SANA-FE accepts as one entry or a list of them, as a list."""
    value = node[key]
    return [value] if isinstance(value, dict) else value


def _input_unit(used: dict[int, int], core: int, arch) -> int:
    """The next free ``input`` soma unit of a core: each holds one spike train."""
    unit = used[core]
    if unit >= arch.input_units:
        raise ConfigError(f"SANA-FE core {core} has {arch.input_units} 'input' units; more replayed neurons "
                          "are placed on it")
    used[core] = unit + 1
    return unit


__all__ = ["BuiltNetwork", "build_network", "layer_synapses", "load_hardware"]
