"""The detailed engine: one packet at a time through an event queue — the readable definition.

For each sample, nodes run in topological order. A node that receives events (a synapse, an attention
node's q/k/v, a membrane shortcut) gets its input only through packets: every nonzero value of the
source at step t becomes one packet per destination core (the cores holding its targets), pushed on
a time-ordered queue with its route length (a packet that an earlier projection of the same source
already sends to that core is delivered but not counted again: `network._share_packets`); popping a
packet delivers it: a synapse adds
``weight · value`` into each target's accumulator on that core (one synaptic operation each), an
attention or shortcut input is written into the receiving buffer. Every other op (LIF, pooling,
means, attention products over the delivered block buffers) is the integer reference's own kernel.
Its spikes are therefore recomputed from delivered events, not copied, and must equal the fast
engine's and the reference's; its counts must equal the fast engine's.
"""
from __future__ import annotations

import heapq
import itertools
from collections import defaultdict

import numpy as np
import torch

from statten_hw.ir.graph import inputs_by_port, topological_order
from statten_hw.quant.execute import EXECUTORS, _Ctx
from statten_hw.quant.quantize import QOP, QConv2d, QLinear

from .counts import Counts, count_active_updates, count_layer_outputs
from .network import EventNetwork, Projection
from .owners import HOST
from .synapses import AttentionSynapses


class _Targets:
    """``targets(e)`` of one projection, memoised, with each target's core."""

    def __init__(self, p: Projection):
        self.p, self.cache = p, {}
        self.column = {int(core): len(p.dst_cores) + j for j, core in enumerate(p.dst_cores)}

    def by_core(self, e: int) -> list[tuple[int, np.ndarray, np.ndarray, bool]]:
        """(core, targets there, their weights, whether this projection's packet is the one counted)."""
        if e not in self.cache:
            idx, w = self.p.synapses.targets(e)
            cores = self.p.owner[idx]
            self.cache[e] = [(int(c), idx[cores == c], w[cores == c], bool(self.p.counters[e, self.column[int(c)]]))
                             for c in np.unique(cores)]
        return self.cache[e]


class _Queue:
    """Packets ordered by (step, route length, sequence): the order a NoC delivers them in."""

    def __init__(self):
        self.heap, self.seq = [], itertools.count()

    def push(self, step: int, hops: int, packet) -> None:
        heapq.heappush(self.heap, (step, hops, next(self.seq), packet))

    def drain(self):
        while self.heap:
            yield heapq.heappop(self.heap)


class DetailedEngine:
    def __init__(self, qgraph, net: EventNetwork):
        self.qgraph, self.net = qgraph, net
        self.into: dict[str, list[Projection]] = defaultdict(list)
        for p in net.projections:
            self.into[p.target].append(p)
        self.targets = {id(p): _Targets(p) for p in net.projections}
        self.layer_index = {layer.name: i for i, layer in enumerate(net.layers)}

    def _send(self, p: Projection, source: np.ndarray, T: int, queue: _Queue, c: Counts, s: int) -> None:
        """Every nonzero source value becomes one packet per destination core."""
        li = self.layer_index[p.layer]
        steps = source.shape[0]
        for t_src in range(steps):
            t = t_src if steps == T else T - 1  # a value that exists once (after a time mean) comes last
            flat = source[t_src].reshape(-1)
            for e in np.flatnonzero(flat):
                origin = int(p.origin[e])
                if origin != HOST:
                    c["events"][li, s, t, origin] += 1
                for core, idx, w, counted in self.targets[id(p)].by_core(int(e)):
                    hops = 0 if origin == HOST else int(self.net.hops[origin, core])
                    queue.push(t, hops, (p, li, t_src, t, origin, core, int(e), int(flat[e]), idx, w, counted))

    def _deliver(self, queue: _Queue, acc: dict, buffers: dict, hit: np.ndarray, c: Counts, s: int) -> None:
        for _, hops, _, (p, li, t_src, t, origin, core, e, value, idx, w, counted) in queue.drain():
            if origin != HOST:
                c["max_hops"][li, s, t] = max(c["max_hops"][li, s, t], hops)
            if counted:
                if origin == HOST:
                    c["host_packets"][li, s, t] += 1
                else:
                    c["packets_out"][li, s, t, origin] += 1
                    c["hops_out"][li, s, t, origin] += hops
                c["packets_in"][li, s, t, core] += 1
            c["macs" if p.multiplies else "sops"][li, s, t, core] += len(idx)
            hit[t, idx] = True  # these targets received an event this step
            if isinstance(p.synapses, AttentionSynapses):
                c["buffer_bits"][li, s, t, core] += p.value_bits
            if p.port == "x" and not isinstance(p.synapses, AttentionSynapses):
                np.add.at(acc[t_src], idx, w * value)  # weighted synapses into the accumulators
            else:
                buffers[p.port][t_src].reshape(-1)[e] = value  # buffered as delivered

    def _node(self, name, op, values, x, ctx, c: Counts, s: int, T: int, reached: dict) -> torch.Tensor:
        ins = {port: values[src] for port, src in inputs_by_port(self.qgraph.graph, name).items()}
        projections = self.into.get(name, [])
        if not projections:
            return EXECUTORS[type(op)](op, ins, x, ctx, name)
        queue = _Queue()
        for p in projections:
            self._send(p, ins[p.port][:, 0].numpy(), T, queue, c, s)
        out_shape = projections[0].synapses.out_shape
        steps = ins["x"].shape[0] if "x" in ins else T
        acc = np.zeros((steps, int(np.prod(out_shape))), np.int64)
        buffers = {p.port: np.zeros_like(ins[p.port][:, 0].numpy()) for p in projections}
        hit = np.zeros((T, int(np.prod(out_shape))), bool)
        self._deliver(queue, acc, buffers, hit, c, s)
        reached[name] = torch.from_numpy(hit).reshape(T, 1, *out_shape)
        if isinstance(op, (QConv2d, QLinear)):
            bias = op.bias.reshape(-1, *([1] * (len(out_shape) - 1))) if isinstance(op, QConv2d) else op.bias
            total = torch.from_numpy(acc.reshape(steps, 1, *out_shape) + bias)
            return ctx.sat(name, total, "accumulator")
        ins.update({port: torch.from_numpy(b[:, None]) for port, b in buffers.items()})
        return EXECUTORS[type(op)](op, ins, x, ctx, name)

    def run(self, x: torch.Tensor, progress: bool = False):
        """(logits_int, spikes {layer: [T, S, ...]}, Counts) for the batch ``x``, on the CPU."""
        g, S, T = self.qgraph.graph, x.shape[0], self.net.timesteps
        counts = Counts.of(self.net, S)
        logits, spikes = [], defaultdict(list)
        from tqdm import tqdm

        for s in tqdm(range(S), desc="simulating packets", unit="sample", disable=not progress):
            ctx = _Ctx(self.qgraph.state_bits, False)
            values: dict[str, torch.Tensor] = {}
            reached: dict[str, torch.Tensor] = {}
            for name in topological_order(g):
                values[name] = self._node(name, g.nodes[name][QOP], values, x[s:s + 1].cpu(), ctx, counts, s, T,
                                          reached)
            count_layer_outputs(counts, self.net, {n: values[n] for n in counts.layers}, s)
            count_active_updates(counts, self.net, self.qgraph, values, reached, s)
            logits.append(values[self.qgraph.output_node])
            for layer in counts.layers:
                spikes[layer].append(values[layer])
        batch_axis = logits[0].dim() - 2
        return torch.cat(logits, batch_axis), {k: torch.cat(v, 1) for k, v in spikes.items()}, counts
