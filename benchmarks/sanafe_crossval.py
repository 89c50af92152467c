"""Cross-validation of the event simulator against SANA-FE 2.2.9 (issue 12, part 3): per network, both
tools' counts, energy and simulated time side by side, and each tool's wall-clock time for the same
network, placement, architecture file (SANA-FE's own loihi.yaml) and batch, measured in one run.

Networks (plain conv/dense spiking networks: SANA-FE runs every layer through its own synapses):

* ``digits CSNN``: trained here in seconds on scikit-learn's digits (the project's fixed split),
  surrogate gradients through exactly the IR's float LIF; the input is each image's pixels as spikes
  (`rate_code`, deterministic).
* ``embedded stem``: the embedded STAtten model's first spiking convolutions (``patch_embed.proj_conv1``
  .. ``proj_lif2``, its trained weights), driven by its own integer spikes of ``patch_embed.proj_lif``
  on the digits test images; the rest of that model (analog input, pooling, attention, membrane
  shortcuts) is not a plain network (`statten_hw.simulator.sanafe.plan` says why per layer).
* ``random CSNN 16x16``: random weights, large enough to span two tiles of loihi.yaml (hops).

Our figures come from the fast engine (SANA-FE timeline, `statten_hw.simulator.event.timing`); SANA-FE
runs its ``simple`` timing model. Run: ``python benchmarks/sanafe_crossval.py`` (writes
benchmarks/results/sanafe_crossval.json and .md).
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import torch

from statten_hw.data import load_digits_split
from statten_hw.ir import nodes as ir
from statten_hw.ir.execute_float import run_float
from statten_hw.ir.graph import OP, add_op, new_graph
from statten_hw.ir.passes.infer_shapes import infer_shapes
from statten_hw.mapping import map_model
from statten_hw.pipeline import Deployment, prepare
from statten_hw.quant import quantize, run_integer
from statten_hw.reports.files import atomic_write_text, write_json
from statten_hw.simulator.sanafe._sdk import VERSION
from statten_hw.simulator.sanafe.crossval import FIELDS, cross_validate
from statten_hw.targets import load_target

RESULTS = Path(__file__).parent / "results"
T = 4
THRESHOLD = 1.0  # the IR LIF's default
STEM = ("patch_embed.proj_conv1", "patch_embed.proj_bn1", "patch_embed.proj_lif1", "patch_embed.proj_conv2",
        "patch_embed.proj_bn2", "patch_embed.proj_lif2")


def rate_code(images: torch.Tensor, steps: int = T) -> torch.Tensor:
    """``[N, 1, H, W]`` intensities in [0, 1] -> spikes ``[N, steps, 1, H, W]``: an integrate-and-fire encoder,
    ``s_t = floor((t+1)·p) - floor(t·p)``, so a pixel of intensity p spikes ``floor(steps·p)`` times, evenly."""
    t = torch.arange(steps + 1, dtype=torch.float64).reshape(1, -1, 1, 1, 1)
    level = torch.floor(t * images.to(torch.float64)[:, None])
    return (level[:, 1:] - level[:, :-1]).to(torch.float32)


class _Spike(torch.autograd.Function):
    """Heaviside forward (a tie fires, as the IR LIF), fast-sigmoid surrogate gradient backward."""

    @staticmethod
    def forward(ctx, h):
        ctx.save_for_backward(h)
        return (h >= 0).to(h.dtype)

    @staticmethod
    def backward(ctx, grad):
        (h,) = ctx.saved_tensors
        return grad / (1 + 4 * h.abs()) ** 2


class _DigitsCSNN(torch.nn.Module):
    """conv 3x3 (8) -> LIF -> conv 3x3 stride 2 (16) -> LIF -> conv 4x4 (10, a dense readout over the 4x4
    map), mean over steps. LIFs as the IR's: ``h = v + (x - v)/2``, spike on ``h >= threshold``, hard reset."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.head = torch.nn.Conv2d(16, 10, 4)

    @staticmethod
    def _lif(v, x):
        h = v + (x - v) / 2
        s = _Spike.apply(h - THRESHOLD)
        return h * (1 - s), s

    def forward(self, x):  # x [N, T, 1, 8, 8]
        v1 = v2 = out = 0.0
        for t in range(x.shape[1]):
            v1, s1 = self._lif(v1, self.conv1(x[:, t]))
            v2, s2 = self._lif(v2, self.conv2(s1))
            out = out + self.head(s2).flatten(1)
        return out / x.shape[1]


def train_digits_csnn(epochs: int = 8, seed: int = 0):
    """The IR graph of a `_DigitsCSNN` trained with Adam on the training split's rate codes (one thread:
    these small kernels run faster without torch's thread pool)."""
    torch.manual_seed(seed)
    x, y = load_digits_split("digits", "train")
    events = rate_code(x)
    model = _DigitsCSNN()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    gen = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(y), generator=gen).split(128):
                loss = torch.nn.functional.cross_entropy(model(events[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return digits_graph(model)


def digits_graph(model: _DigitsCSNN):
    """The IR graph of a trained `_DigitsCSNN` (same layers, weights and LIFs)."""
    def conv(m, stride, padding):
        return ir.Conv2d(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy(), stride, padding, 1)

    g = new_graph()
    add_op(g, "input", ir.Input(shape=(1, 8, 8), timesteps=T, encoding="events"), "input")
    add_op(g, "conv1", conv(model.conv1, (1, 1), (1, 1)), "conv1", x="input")
    add_op(g, "lif1", ir.LIF(threshold=THRESHOLD), "lif1", x="conv1")
    add_op(g, "conv2", conv(model.conv2, (2, 2), (1, 1)), "conv2", x="lif1")
    add_op(g, "lif2", ir.LIF(threshold=THRESHOLD), "lif2", x="conv2")
    add_op(g, "head", conv(model.head, (1, 1), (0, 0)), "head", x="lif2")
    add_op(g, "mean", ir.Mean(axes=(1, 2), time=True), "mean", x="head")
    add_op(g, "output", ir.Output(per_step=False), "output", x="mean")
    return infer_shapes(g)


def embedded_stem(x: torch.Tensor):
    """(graph, input spikes, the embedded model's own integer values): its `STEM` layers (float IR nodes,
    BN folded by the quantizer) fed with its integer spikes of ``patch_embed.proj_lif`` for the images
    ``x``; a mean over time closes the graph."""
    qgraph = prepare(None, "loihi2").qgraph
    values = run_integer(qgraph, x).values
    spikes = values["patch_embed.proj_lif"]  # [T, N, 4, 8, 8]
    fg = qgraph.float_graph
    g = new_graph()
    add_op(g, "patch_embed.proj_lif", ir.Input(shape=tuple(spikes.shape[2:]), timesteps=spikes.shape[0],
                                                  encoding="events"), "input")
    previous = "patch_embed.proj_lif"
    for name in STEM:
        add_op(g, name, fg.nodes[name][OP], name, x=previous)
        previous = name
    add_op(g, "time_mean", ir.Mean(axes=(1, 2), time=True), "time_mean", x=previous)
    add_op(g, "output", ir.Output(per_step=False), "output", x="time_mean")
    return infer_shapes(g), spikes.transpose(0, 1).to(torch.float32), values


def random_csnn(seed: int = 0, size: int = 16):
    """Random weights: events [2, size, size] -> conv 3x3 (16) -> LIF -> conv 3x3 stride 2 (16) -> LIF ->
    tokens -> linear 16->10 readout, mean over tokens and steps: 16·size² + 4·size² + 10·size²/4 neurons."""
    rng = np.random.default_rng(seed)

    def w(*shape, gain):
        return (rng.standard_normal(shape) * gain).astype(np.float32)

    g = new_graph()
    add_op(g, "input", ir.Input(shape=(2, size, size), timesteps=T, encoding="events"), "input")
    add_op(g, "conv1", ir.Conv2d(w(16, 2, 3, 3, gain=0.5), w(16, gain=0.1), (1, 1), (1, 1), 1), "conv1", x="input")
    add_op(g, "lif1", ir.LIF(threshold=0.5), "lif1", x="conv1")
    add_op(g, "conv2", ir.Conv2d(w(16, 16, 3, 3, gain=0.25), w(16, gain=0.1), (2, 2), (1, 1), 1), "conv2", x="lif1")
    add_op(g, "lif2", ir.LIF(threshold=0.5), "lif2", x="conv2")
    add_op(g, "tokens", ir.Flatten(channels_last=True), "tokens", x="lif2")
    add_op(g, "head", ir.Linear(w(10, 16, gain=0.5), w(10, gain=0.1)), "head", x="tokens")
    add_op(g, "mean", ir.Mean(axes=(0,), time=True), "mean", x="head")
    add_op(g, "output", ir.Output(per_step=False), "output", x="mean")
    return infer_shapes(g)


def random_events(batch: int, shape: tuple[int, ...], seed: int = 3, rate: float = 0.3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, T, *shape, generator=gen) < rate).to(torch.float32)


def deploy(graph, calibration: torch.Tensor, target) -> Deployment:
    """Quantize ``graph`` on ``calibration`` and map it on ``target`` (name, path or `Target`), B = 1."""
    qgraph = quantize(graph, calibration)
    target = target if not isinstance(target, (str, Path)) else load_target(target)
    mapping = map_model(qgraph.float_graph, target, 1, weight_bits=qgraph.weight_bits)
    return Deployment(checkpoint=None, model=None, qgraph=qgraph, mapping=mapping, dataset="digits")


def accuracy(predicted: torch.Tensor, y: torch.Tensor) -> float:
    return float((predicted == y).double().mean())


def row(name: str, deployment: Deployment, x: torch.Tensor, extra: dict) -> dict:
    """One table row: both tools' totals and wall-clock times, the per-step agreement, the differences."""
    cv = cross_validate(deployment, x)
    ours, theirs = cv.ours.totals, cv.sanafe.totals
    tiles = len({(c.x, c.y) for c in deployment.mapping.cores})
    sanafe_tiles = len({g.core // cv.run.architecture.cores_per_tile for g in cv.run.groups})
    return {"network": name, "samples": int(x.shape[0]), "steps_per_sample": int(cv.ours.sim_time_s.shape[1]),
            "neurons": deployment.mapping.totals.neurons, "cores": deployment.mapping.totals.cores,
            "tiles": {"ours": tiles, "sanafe": sanafe_tiles},
            "ours": ours, "sanafe": theirs, "input_hops_sanafe_only": cv.input_hops,
            "per_step_mismatches": cv.mismatches(),
            "lags": {layer: list(pair) for layer, pair in cv.lags.items()},
            "relative_difference": {q: cv.relative_difference(q) for q in ("energy_j", "sim_time_s")},
            "wall_s": {"ours": cv.ours.wall_s, "sanafe": cv.sanafe.wall_s, "sanafe_kernel": cv.run.wall_s},
            "ours_faster": cv.ours.wall_s < cv.sanafe.wall_s, **extra}


def markdown(doc: dict) -> str:
    lines = [f"# Event simulator vs SANA-FE {doc['sanafe_version']} on {doc['target']} (timing model 'simple')", "",
             "Per network: totals over the batch, ours / SANA-FE. Per-step agreement: every step of every sample, "
             "after moving our counts onto SANA-FE's steps by each layer's lag.", "",
             "| network | samples x steps | cores (tiles) | " + " | ".join(FIELDS) + " | input hops (SANA-FE only) | "
             "energy µJ | Δ energy | sim. time µs | Δ time | per-step | wall s (ours / SANA-FE) |",
             "|---" * (len(FIELDS) + 10) + "|"]
    for r in doc["rows"]:
        o, s = r["ours"], r["sanafe"]
        counts = " | ".join(f"{o[f]:,} / {s[f]:,}" for f in FIELDS)
        exact = "exact" if not r["per_step_mismatches"] else "differ: " + ", ".join(r["per_step_mismatches"])
        lines.append(
            f"| {r['network']} | {r['samples']} x {r['steps_per_sample']} | {r['cores']} ({r['tiles']['ours']} / "
            f"{r['tiles']['sanafe']}) | {counts} | {r['input_hops_sanafe_only']:,} | "
            f"{o['energy_j'] * 1e6:.4f} / {s['energy_j'] * 1e6:.4f} | "
            f"{100 * r['relative_difference']['energy_j']:.2f} % | {o['sim_time_s'] * 1e6:.3f} / "
            f"{s['sim_time_s'] * 1e6:.3f} | {100 * r['relative_difference']['sim_time_s']:.2f} % | {exact} | "
            f"{r['wall_s']['ours']:.2f} / {r['wall_s']['sanafe']:.2f} |")
    lines += ["", *(f"- {n}" for n in doc["notes"])]
    return "\n".join(lines) + "\n"


NOTES = [
    "hops: ours and SANA-FE's hops between the mapped cores; SANA-FE's input neurons (which replay the "
    "input on a core of their own) add `input_hops_sanafe_only`, while our host injects at 0 hops.",
    "energy: SANA-FE charges a hop by its direction (3.0 pJ east/west, 4.2 pJ north/south in loihi.yaml), "
    "our target the mean (3.6 pJ), and the input's hops only on SANA-FE: the remaining difference.",
    "time: equal when both synchronize the same number of tiles (SANA-FE looks its sync delay up by tiles "
    "holding neurons, its input core included; ours by the mapping's tiles).",
    "wall: ours = build the event network, run the fast engine, timeline and energy; SANA-FE = run_sanafe "
    "(plan, its integer reference run, chip and network build, per-step simulation); sanafe_kernel = SANA-FE "
    "build and simulation alone.",
    "Lava: SANA-FE's converter (sanafe.lava) cannot take our Lava network (its synapse processes have no "
    "'shape', and it forwards Lava's LIF parameters, numpy arrays included, as SANA-FE model attributes): "
    "tests/simulator/test_sanafe_crossval.py::test_sanafe_lava_converter_cannot_take_our_lava_processes.",
]


def main() -> None:
    x_test, y_test = load_digits_split("digits", "test")
    target = "sanafe:loihi"
    rows = []
    t0 = time.perf_counter()
    digits = train_digits_csnn()
    train_s = time.perf_counter() - t0
    events = rate_code(x_test)
    d = deploy(digits, events[:256], target)
    float_acc = accuracy(run_float(digits, events).argmax(-1), y_test)
    int_acc = accuracy(run_integer(d.qgraph, events).predictions, y_test)
    rows.append(row("digits CSNN (trained)", d, events[:32], {"float_accuracy": float_acc, "integer_accuracy": int_acc,
                                                              "train_s": train_s}))
    stem, stem_events, embedded = embedded_stem(x_test)
    d = deploy(stem, stem_events[:256], target)
    stem_values = run_integer(d.qgraph, stem_events).values
    same = all(torch.equal(stem_values[n], embedded[n]) for n in ("patch_embed.proj_lif1", "patch_embed.proj_lif2"))
    rows.append(row("embedded STAtten stem (proj_conv1..proj_lif2)", d, stem_events[:32],
                    {"spikes_equal_embedded_model_on_test_split": same}))
    notes = [f"digits CSNN: trained in {train_s:.1f} s; test accuracy {100 * float_acc:.2f} % float, "
             f"{100 * int_acc:.2f} % integer (8-bit), {len(y_test)} test digits.",
             f"embedded stem: its integer spikes equal the embedded model's own on the whole test split: {same}.",
             *NOTES]
    x = random_events(8, (2, 16, 16))
    rows.append(row("random CSNN 16x16", deploy(random_csnn(), x, target), x, {}))
    for r in rows:
        print(r["network"], r["per_step_mismatches"], r["relative_difference"], r["wall_s"])
    doc = {"sanafe_version": VERSION, "target": target, "timing_model": "simple", "rows": rows, "notes": notes,
           "machine": {"threads": torch.get_num_threads(), "python": platform.python_version(),
                       "torch": torch.__version__},
           "command": "python benchmarks/sanafe_crossval.py"}
    write_json(RESULTS / "sanafe_crossval.json", doc)
    atomic_write_text(RESULTS / "sanafe_crossval.md", markdown(doc))


if __name__ == "__main__":
    main()
