"""Export the float model to ONNX, unrolled over the T time steps.

``export_float_onnx(model, path, batch_size)`` traces ``model`` (the same eval-mode module that
``load_checkpoint`` returns) on a zero input of the static shape ``[batch, *model.config.input_shape]``
with the TorchScript ("legacy") exporter, ``torch.onnx.export(..., dynamo=False)``. Every LIF loop over
T is a Python loop, so tracing unrolls it: the graph has no ``Loop``/``Scan`` and no state, and the
surrogate-gradient ``autograd.Function`` of ``models/lif.py`` is traced through under ``no_grad`` as its
forward, ``Cast(GreaterOrEqual(h - v_th, 0))``.

Two choices keep onnxruntime's logits equal to PyTorch's (CPU fp32: max abs diff about 1e-7, no
spike differs, on the official fixtures and on small random nets of every attention mode):

* ``do_constant_folding=False``. With folding, the exporter's eval peephole fuses each
  ``BatchNorm`` into the preceding ``Conv``; the fused weights round differently, some membrane
  potential lands on the other side of a threshold, and a flipped spike moves the logits by
  1e-2 (``sdt_cifar_t4``: 1506 of 1.6 M spikes differ, max logit diff 0.041).
* Run the file with graph optimizations off (``ort_session`` / ``run_float_onnx`` here do).
  onnxruntime's default (``ORT_ENABLE_ALL``) and already ``ORT_ENABLE_BASIC`` rewrite the graph
  (Conv+BN fusion, folded weight transposes) and change rounding the same way: ``sdt_cifar_t4``
  0.041 max logit diff at BASIC/EXTENDED/ALL, ``spikformer_cifar_t4`` 0.015 at BASIC/EXTENDED.

Writes are atomic: the model is exported to memory, checked with ``onnx.checker.check_model``, then
written with :func:`statten_hw.reports.files.atomic_write_bytes`; a failed export leaves no file (and
an older file at ``path`` untouched).
"""
from __future__ import annotations

import io
import json
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from statten_hw.models.config import ModelConfig
from statten_hw.models.lif import MultiStepLIF, MultiStepTernary
from statten_hw.reports.files import atomic_write_bytes

#: Default (and minimum) ONNX opset.
OPSET = 17
INPUT_NAME = "input"
#: Prefix of the extra outputs written with ``with_spikes=True``: ``"spikes:" + module path``.
SPIKES_PREFIX = "spikes:"
SPIKING_MODULES = (MultiStepLIF, MultiStepTernary)


def output_name(config: ModelConfig) -> str:
    """Name of the model output: ``logits`` ``[B, K]``, or ``logits_per_step`` ``[T, B, K]`` for TET models
    (which return per-step logits; the official ``validate()`` averages them over T)."""
    return "logits_per_step" if config.tet else "logits"


@contextmanager
def _quiet_exporter():
    """Silence the exporter's expected warnings: the legacy exporter's deprecation notice and the
    tracer's 'iterating over a tensor' (the unrolled LIF loop over T is the intended behaviour)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
        yield


@contextmanager
def _keep_training_flags(module: nn.Module):
    """The exporter switches the module to eval and back with ``module.train(flag)``, which would
    overwrite a mixed per-submodule state; restore every flag exactly."""
    flags = [(m, m.training) for m in module.modules()]
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _export_bytes(module: nn.Module, example: torch.Tensor, output_names: list[str], opset: int) -> bytes:
    """``torch.onnx.export`` (TorchScript exporter) of ``module(example)`` to memory."""
    buf = io.BytesIO()
    with _keep_training_flags(module), torch.no_grad(), _quiet_exporter():
        torch.onnx.export(
            module,
            (example,),
            buf,
            dynamo=False,
            export_params=True,
            opset_version=opset,
            training=torch.onnx.TrainingMode.EVAL,
            do_constant_folding=False,
            input_names=[INPUT_NAME],
            output_names=output_names,
        )
    return buf.getvalue()


class _WithSpikes(nn.Module):
    """``model(x)`` followed by the output of every spiking module, in call order.

    Forward hooks go on ``model``'s spiking modules; :meth:`remove` takes them off again.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.training = model.training  # not .train(): that would overwrite the submodules' flags
        self._collected: list[torch.Tensor] | None = None
        self.calls: list[str] = []
        self._handles = [
            mod.register_forward_hook(self._hook(path))
            for path, mod in model.named_modules() if isinstance(mod, SPIKING_MODULES)
        ]

    def _hook(self, path: str):
        def hook(_mod, _inputs, out):
            if self._collected is not None:
                self._collected.append(out)
                self.calls.append(path)
        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def forward(self, x: torch.Tensor):
        self._collected, self.calls = [], []
        try:
            y = self.model(x)
            return (y, *self._collected)
        finally:
            self._collected = None


@contextmanager
def _spike_probe(model: nn.Module):
    probe = _WithSpikes(model)
    try:
        yield probe
    finally:
        probe.remove()


def _spike_output_names(calls: list[str]) -> list[str]:
    names, seen = [], {}
    for path in calls:
        k = seen.get(path, 0)
        seen[path] = k + 1
        names.append(SPIKES_PREFIX + path + (f"#{k}" if k else ""))
    return names


def export_float_onnx(model: nn.Module, path, batch_size: int = 1, *, opset: int = OPSET,
                      with_spikes: bool = False, sample_shape: tuple[int, ...] | None = None) -> Path:
    """Export ``model`` (float, eval semantics) to an ONNX file at ``path``; returns ``Path(path)``.

    The graph has one input ``"input"`` of static shape ``[batch_size, *sample_shape]`` (float32;
    ``model.config.input_shape`` by default, ``[T, C, H, W]`` for a model fed event frames such as
    the temporal digits) and one output, :func:`output_name` (``"logits"`` ``[B, K]``; ``"logits_per_step"``
    ``[T, B, K]`` for TET models). ``with_spikes=True`` (a diagnostic) adds the output of every LIF
    module that runs, named ``"spikes:<module path>"``, so spike-level differences can be counted.

    Run the file with :func:`ort_session` (graph optimizations off; see the module docstring).
    Raises ``TypeError``/``ValueError`` on a bad argument; an exporter failure propagates unchanged.
    In every failure case nothing is written at ``path``.
    """
    config = getattr(model, "config", None)
    if not isinstance(model, nn.Module) or not isinstance(config, ModelConfig):
        raise TypeError("export_float_onnx needs a statten-hw model (an nn.Module with a ModelConfig .config)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < OPSET:
        raise ValueError(f"opset must be an int >= {OPSET}, got {opset!r}")

    example = torch.zeros(batch_size, *(sample_shape or config.input_shape), dtype=torch.float32)
    outputs = [output_name(config)]
    if with_spikes:
        with _spike_probe(model) as probe:
            with _keep_training_flags(model), torch.no_grad():
                model.eval()
                probe(example)  # learn which spiking modules run, in call order
            outputs += _spike_output_names(probe.calls)
            data = _export_bytes(probe, example, outputs, opset)
    else:
        data = _export_bytes(model, example, outputs, opset)

    import onnx

    proto = onnx.load_from_string(data)
    meta = {
        "statten_hw.kind": "float",
        "statten_hw.config": json.dumps(config.to_dict(), sort_keys=True),
        "statten_hw.onnxruntime": "run with graph_optimization_level = ORT_DISABLE_ALL "
                                  "(graph rewrites such as Conv+BatchNorm fusion change rounding and can flip spikes)",
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto, full_check=True)
    return atomic_write_bytes(path, proto.SerializeToString())


def ort_session(model):
    """An onnxruntime CPU session for a file (or bytes) written by :func:`export_float_onnx`, with graph
    optimizations off so the arithmetic is the exported one (no Conv+BatchNorm fusion)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = str(model) if isinstance(model, (str, Path)) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_float_onnx(model, x) -> list[np.ndarray]:
    """Run an exported file on ``x`` (tensor or array of the exported static shape); returns every
    output, the logits first."""
    session = ort_session(model)
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return session.run(None, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})
