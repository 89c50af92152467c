"""statten_hw.metrics against NeuroBench's own metric classes, on the same networks and inputs.

Networks: the embedded STAtten digits model (``statten_hw.defaults.default_checkpoint()``) and a
small digits CSNN trained here in seconds (conv-BN-LIF ×2 with max pools, a 2×2 conv readout).
For each, on the 450-sample digits test split:

* ``neurobench``: NeuroBench's ``Benchmark`` with ``Footprint``, ``ConnectionSparsity``,
  ``ClassificationAccuracy``, ``ActivationSparsity``, ``SynapticOperations`` and ``MembraneUpdates``
  on the float model wrapped in ``TorchModel``. Our neurons run all T steps in one call, so a
  ``NeuronHook`` subclass hands NeuroBench's ``MembraneUpdates`` the T per-step membranes that T
  calls of a stepwise snntorch neuron would have left (``TracedLIF`` records them and checks its
  spikes against ``MultiStepLIF``'s own).
* ``ours_float``: ``float_neurobench_metrics`` on the same float model and inputs. It must equal
  NeuroBench (ActivationSparsity to 1e-12: NeuroBench averages per-batch ratios); the script exits 1
  otherwise.
* ``ours_integer``: ``neurobench_metrics`` on the 8-bit integer deployment, what ``simulate``
  reports carry; every difference from NeuroBench is listed with its reason and the counts behind it.

The script exits 1 unless ``ours_float`` equals NeuroBench everywhere, both footprints are itemised
to their totals, the integer effective MACs are reproduced from the float inputs with the integer
weights, and NeuroBench's float32 sums stayed exact (batch size).

NeuroBench pins torchaudio, so it gets an environment of its own:

    python3 -m venv /work/nbvenv
    /work/nbvenv/bin/pip install torch==2.14.1 "numpy<2" tqdm snntorch scikit-learn networkx
    /work/nbvenv/bin/pip install --no-deps neurobench==2.3.0
    /work/nbvenv/bin/pip install --no-deps -e .
    /work/nbvenv/bin/python benchmarks/neurobench_check.py

Writes benchmarks/results/neurobench.json.
"""
from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import neurobench
import snntorch
import torch
import torch.nn.functional as F
from neurobench.benchmarks import Benchmark
from neurobench.hooks.layer import LayerHook
from neurobench.hooks.neuron import NeuronHook
from neurobench.metrics.static import ConnectionSparsity, Footprint
from neurobench.metrics.workload import (ActivationSparsity, ClassificationAccuracy, MembraneUpdates,
                                         SynapticOperations)
from neurobench.models import TorchModel
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from statten_hw.data import load_digits_split
from statten_hw.defaults import default_checkpoint
from statten_hw.ir import lower, nodes as ir
from statten_hw.ir.execute_float import run_float
from statten_hw.ir.graph import add_op, inputs_by_port, new_graph
from statten_hw.ir.passes import run_pipeline
from statten_hw.metrics import NEUROBENCH_VERSION, float_neurobench_metrics, neurobench_metrics
from statten_hw.metrics.neurobench import Synapse, is_spiking, layer_operations, synaptic_ops
from statten_hw.models import load_checkpoint
from statten_hw.models.lif import MultiStepLIF, MultiStepTernary
from statten_hw.quant import quantize, run_integer
from statten_hw.quant.quantize import QConv2d, QLinear
from statten_hw.reports.files import write_json

RESULTS = Path(__file__).parent / "results" / "neurobench.json"
CALIBRATION = 256  # training samples for the integer scales, as statten_hw.pipeline.prepare
#: NeuroBench sums each layer's 0/1 outputs in float32: exact while a batch's count stays below 2**24.
BATCH = 6
FLOAT32_EXACT = 1 << 24
METHOD = ("neurobench: NeuroBench's own metric classes on the float model (TorchModel, per-step membranes of "
          "our multi-step LIFs handed to its hooks); ours_float: statten_hw.metrics.float_neurobench_metrics on the "
          "same model and inputs (must equal neurobench: it proves the definitions); ours_integer: "
          "statten_hw.metrics.neurobench_metrics on the 8-bit integer deployment, as simulate reports it. The same "
          "code computes both of ours, so a difference between ours_integer and neurobench comes from the integer "
          "network's weights and activity alone; 'reason' gives the counts behind it.")
#: NeuroBench averages these per batch (weighted by batch size): equal up to float rounding, which for
#: the accuracy includes each batch's float32 mean (``classification_accuracy.py``).
TOLERANCE = {"ActivationSparsity": 1e-12, "ClassificationAccuracy": 1e-6}


# --- NeuroBench wiring for multi-step neurons -------------------------------------------------

class TracedLIF(MultiStepLIF):
    """``MultiStepLIF`` that keeps its membrane after every step in ``mem_trace`` (``v[-1] = 0`` first)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(x[0])
        trace, spikes = [v], []
        for x_t in x:  # models/lif.py, with v kept
            h = v + (x_t - v) * 0.5
            s = (h - self.v_threshold >= 0).to(x.dtype)
            v = h * (1.0 - s)
            trace.append(v)
            spikes.append(s)
        out = torch.stack(spikes)
        if not torch.equal(out, super().forward(x)):
            raise RuntimeError("TracedLIF's spikes differ from MultiStepLIF's: its membranes would be wrong")
        self.mem_trace = trace
        return out


class MultiStepNeuronHook(NeuronHook):
    """NeuroBench's ``NeuronHook`` for a neuron that runs all T steps in one call: the step-t membranes
    before and after go to ``pre_fire_mem_potential`` / ``post_fire_mem_potential`` as T stepwise
    snntorch calls would leave them (``MembraneUpdates`` reads only these lists)."""

    def pre_hook_fn(self, layer, input):
        self.activation_inputs.append(input)

    def hook_fn(self, layer, input, output):
        self.activation_outputs.append(output)
        self.pre_fire_mem_potential.extend(layer.mem_trace[:-1])
        self.post_fire_mem_potential.extend(layer.mem_trace[1:])


class MultiStepModel(TorchModel):
    """``TorchModel`` whose ``MultiStepLIF`` modules are traced and hooked step by step."""

    def __init__(self, net: nn.Module):
        if any(isinstance(m, MultiStepTernary) for m in net.modules()):
            raise ValueError("MultiStepTernary has no traced variant here; its membranes would be missed")
        for m in net.modules():
            if type(m) is MultiStepLIF:
                m.__class__ = TracedLIF
        super().__init__(net)
        self.add_activation_module(MultiStepLIF)

    def register_hooks(self):
        for found in self.activation_layers():
            hook = MultiStepNeuronHook if isinstance(found["layer"], TracedLIF) else NeuronHook
            self.activation_hooks.append(hook(found["layer"], found["layer_name"]))
        self.connection_hooks.extend(LayerHook(layer) for layer in self.connection_layers())


def run_neurobench(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, float]:
    wrapped = MultiStepModel(model)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=False)
    metrics = [[Footprint, ConnectionSparsity],
               [ClassificationAccuracy, ActivationSparsity, SynapticOperations, MembraneUpdates]]
    bench = Benchmark(wrapped, loader, [], [lambda logits: logits.argmax(-1)], metrics)
    t0 = time.perf_counter()
    with torch.no_grad():
        results = bench.run(quiet=True)
    return results, time.perf_counter() - t0


# --- the digits CSNN ----------------------------------------------------------------------------

class DigitsCSNN(nn.Module):
    """``[B,1,8,8]`` repeated T times: conv3×3(1→8)-BN-LIF, maxpool 2, conv3×3(8→16)-BN-LIF, maxpool 2,
    conv2×2(16→10) readout (a dense layer over the 16×2×2 map); logits averaged over space and time."""

    def __init__(self, timesteps: int = 4):
        super().__init__()
        self.timesteps = timesteps
        self.conv1, self.bn1, self.lif1 = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), MultiStepLIF()
        self.conv2, self.bn2, self.lif2 = nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), MultiStepLIF()
        self.pool1, self.pool2 = nn.MaxPool2d(2, 2), nn.MaxPool2d(2, 2)
        self.readout = nn.Conv2d(16, 10, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = self.timesteps, x.shape[0]
        z = x.unsqueeze(0).repeat(T, 1, 1, 1, 1).flatten(0, 1)
        for conv, bn, lif, pool in ((self.conv1, self.bn1, self.lif1, self.pool1),
                                    (self.conv2, self.bn2, self.lif2, self.pool2)):
            z = bn(conv(z))
            z = pool(lif(z.reshape(T, B, *z.shape[1:])).flatten(0, 1))
        z = self.readout(z)
        return z.reshape(T, B, *z.shape[1:]).flatten(3).mean(3).mean(0)


def train_csnn(x: torch.Tensor, y: torch.Tensor, epochs: int = 6) -> DigitsCSNN:
    torch.manual_seed(0)
    model = DigitsCSNN()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _np(t: torch.Tensor | None):
    return None if t is None else t.detach().numpy().copy()


def csnn_graph(m: DigitsCSNN):
    """The deployment graph of ``m``, node names = module paths (``ir.lower`` knows only the transformer families)."""
    g = new_graph()
    x = add_op(g, "input", ir.Input(shape=(1, 8, 8), timesteps=m.timesteps), "")
    for i in (1, 2):
        conv, bn = getattr(m, f"conv{i}"), getattr(m, f"bn{i}")
        x = add_op(g, f"conv{i}", ir.Conv2d(weight=_np(conv.weight), padding=(1, 1)), f"conv{i}", x=x)
        x = add_op(g, f"bn{i}", ir.BatchNorm(gamma=_np(bn.weight), beta=_np(bn.bias), mean=_np(bn.running_mean),
                                             var=_np(bn.running_var), eps=bn.eps), f"bn{i}", x=x)
        x = add_op(g, f"lif{i}", ir.LIF(threshold=1.0), f"lif{i}", x=x)
        x = add_op(g, f"pool{i}", ir.MaxPool2d(kernel=(2, 2), stride=(2, 2), padding=(0, 0)), f"pool{i}", x=x)
    x = add_op(g, "readout", ir.Conv2d(weight=_np(m.readout.weight), bias=_np(m.readout.bias)), "readout", x=x)
    x = add_op(g, "readout.spatial_mean", ir.Mean(axes=(1, 2)), "", x=x)
    x = add_op(g, "readout.time_mean", ir.Mean(time=True), "", x=x)
    add_op(g, "output", ir.Output(), "", x=x)
    return run_pipeline(g)


# --- side by side -------------------------------------------------------------------------------

def _flat(results: dict) -> dict:
    flat = {}
    for key, value in results.items():
        if isinstance(value, dict):
            flat.update({f"SynapticOperations.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def footprint_items(model: nn.Module, graph, qgraph) -> dict:
    """Both footprints itemised: NeuroBench's float32 module bytes by kind, ours by integer array."""
    in_graph = set(graph.nodes)
    float_items: dict[str, int] = {}
    for path, mod in model.named_modules():
        for name, t in [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)]:
            if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Linear)) and path not in in_graph:
                kind = f"unused {type(mod).__name__} {name} (not in the forward pass)"
            else:
                kind = f"{type(mod).__name__} {name} ({t.dtype})"
            float_items[kind] = float_items.get(kind, 0) + t.numel() * t.element_size()
    ops = synaptic_ops(qgraph)
    integer_items = {"weights (int8, BN folded in)": sum(op.weight.size for op in ops),
                     "biases (24-bit, stored as int32; BN shift folded in)": 4 * sum(op.bias.size for op in ops)}
    return {"neurobench_float": float_items, "ours_integer": integer_items}


def _reasons(model, graph, qgraph, run, x) -> tuple[dict, float]:
    """The counts behind each integer-vs-float difference, and the effective MACs per sample that the
    integer weights give on the float model's own inputs (their only other difference)."""
    values = run_float(graph, x, keep=True)
    changed = int((run.predictions != values[qgraph.output_node].argmax(-1)).sum())
    flips = sum(int((run.values[n] != values[n]).sum()) for n in qgraph.lif_nodes)
    outputs = sum(run.values[n].numel() for n in qgraph.lif_nodes)
    weights = [op.weight for op in synaptic_ops(qgraph)]
    rounded = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.size for w in weights)
    analog = [n for n in qgraph.graph if isinstance(qgraph.qop(n), (QConv2d, QLinear))
              and not is_spiking(values[inputs_by_port(graph, n)["x"]])]
    macs = sum(layer_operations(Synapse(n, qgraph.qop(n), values[inputs_by_port(graph, n)["x"]]))[0]
               for n in analog) / len(x)
    zeros = {n: int((qgraph.qop(n).weight == 0).sum()) for n in analog}
    unused = sum(m.weight.numel() for p, m in model.named_modules()
                 if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and p not in graph.nodes)
    spikes = (f"the integer network's spikes differ from the float model's at {flips} of {outputs} LIF outputs "
              f"(8-bit weights, integer leak truncating toward zero); ours on the float model equals NeuroBench")
    return {
        "Footprint": "integer deployment: int8 weights and int32 folded biases; NeuroBench counts the float32 "
                     "module with BN parameters and buffers (see footprint_items)",
        "ConnectionSparsity": f"{rounded} of {total} weights round to 0 at 8 bits (scale max|W'|/127 per layer "
                              f"after BN folding); NeuroBench also counts {unused} weights of modules the forward "
                              f"pass never calls",
        "ActivationSparsity": spikes,
        "MembraneUpdates": spikes + "; an integer membrane also settles exactly where a float one keeps moving",
        "SynapticOperations.Effective_ACs": spikes + f"; and the {rounded} zero weights do no operations",
        "SynapticOperations.Effective_MACs": f"weights rounded to zero in the layers with non-spiking input "
                                             f"({zeros}) do no operations: on the float model's own inputs the "
                                             f"integer weights give {macs} MACs per sample",
        "SynapticOperations.Dense": "dense counts depend on shapes only",
        "ClassificationAccuracy": f"integer and float predictions differ on {changed} of {len(x)} samples",
    }, macs


def compare(name: str, model: nn.Module, graph, x_test, y_test, x_train) -> dict:
    nb, nb_seconds = run_neurobench(model, x_test, y_test)
    qgraph = quantize(graph, x_train[:CALIBRATION])
    t0 = time.perf_counter()
    ours_float = float_neurobench_metrics(model, graph, x_test)
    ours_float["ClassificationAccuracy"] = int((run_float(graph, x_test).argmax(-1) == y_test).sum()) / len(y_test)
    float_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = run_integer(qgraph, x_test)
    ours_int = neurobench_metrics(qgraph, run)
    int_seconds = time.perf_counter() - t0
    ours_int["ClassificationAccuracy"] = int((run.predictions == y_test).sum()) / len(y_test)
    nb, of, oi = _flat(nb), _flat(ours_float), _flat(ours_int)
    reasons, macs = _reasons(model, graph, qgraph, run, x_test)
    rows = {}
    for key in nb:
        tol = TOLERANCE.get(key, 0.0)
        rows[key] = {"neurobench": nb[key], "ours_float": of[key], "ours_integer": oi[key],
                     "ours_float_equals_neurobench": abs(of[key] - nb[key]) <= tol,
                     "ours_integer_equals_neurobench": abs(oi[key] - nb[key]) <= tol}
        if not rows[key]["ours_integer_equals_neurobench"]:
            rows[key]["reason"] = reasons[key]
    items = footprint_items(model, graph, qgraph)
    items["sums_equal_footprints"] = (sum(items["neurobench_float"].values()) == nb["Footprint"]
                                      and sum(items["ours_integer"].values()) == oi["Footprint"])
    return {"network": name, "samples": len(x_test), "neurobench_batch": BATCH,
            "effective_macs_explained": macs == oi["SynapticOperations.Effective_MACs"],
            "float32_sum_exact": nb["SynapticOperations.Dense"] * BATCH < FLOAT32_EXACT, "metrics": rows,
            "footprint_items": items,
            "seconds": {"neurobench": round(nb_seconds, 2), "ours_float": round(float_seconds, 2),
                        "ours_integer_run_and_metrics": round(int_seconds, 2)}}


def main() -> int:
    torch.set_num_threads(2)
    x_train, y_train = load_digits_split("digits", "train")
    x_test, y_test = load_digits_split("digits", "test")
    t0 = time.perf_counter()
    csnn = train_csnn(x_train, y_train)
    train_seconds = time.perf_counter() - t0
    embedded = load_checkpoint(default_checkpoint())
    data = (x_test, y_test, x_train)
    networks = [compare("embedded digits_statten (STAtten, T 4, B 2)", embedded, lower(embedded), *data),
                compare("digits CSNN (trained here)", csnn, csnn_graph(csnn), *data)]
    networks[1]["train_seconds"] = round(train_seconds, 2)
    agree = all(all(r["ours_float_equals_neurobench"] for r in n["metrics"].values())
                and n["footprint_items"]["sums_equal_footprints"] and n["float32_sum_exact"]
                and n["effective_macs_explained"] for n in networks)
    write_json(RESULTS, {"networks": networks, "checks_pass": agree, "method": METHOD,
                         "versions": {"neurobench": neurobench.__version__, "checked_against": NEUROBENCH_VERSION,
                                      "snntorch": snntorch.__version__, "torch": torch.__version__,
                                      "python": platform.python_version()},
                         "command": "/work/nbvenv/bin/python benchmarks/neurobench_check.py"})
    for n in networks:
        print(n["network"])
        for key, r in n["metrics"].items():
            print(f"  {key:36s} neurobench {r['neurobench']!s:>22}  ours_float {r['ours_float']!s:>22}  "
                  f"ours_integer {r['ours_integer']!s:>22}")
    print("ours_float equals NeuroBench on every metric; footprints itemised; MACs explained; float32 exact:", agree)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
