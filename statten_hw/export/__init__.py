"""statten-hw export: deployment files written from a loaded model or its integer graph.

``export_float_onnx(model, path, batch_size)`` writes the float model as ONNX (opset >= 17, unrolled
over T, static input shape); run it with ``ort_session``/``run_float_onnx`` (onnxruntime, CPU, graph
optimizations off) to get PyTorch's logits. ``export_integer_onnx(qgraph, path)`` writes the integer
network (`onnx_integer`), whose onnxruntime spikes equal the integer reference's; `nir_export` and
`nir_interop` write and read NIR.
"""
from .onnx_float import export_float_onnx, ort_session, output_name, run_float_onnx
from .onnx_integer import export_integer_onnx

__all__ = ["export_float_onnx", "export_integer_onnx", "ort_session", "output_name", "run_float_onnx"]
