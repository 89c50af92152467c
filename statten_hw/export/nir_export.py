"""Export the *integer* network (``quant.QuantizedGraph``) to NIR, and import it back bit-exactly.

``export_nir(qgraph, path)`` writes one ``nir.NIRGraph`` (HDF5, ``nir.write`` to a temporary file in
the target folder, then ``os.replace`` by `reports.files.replacing`: a failed export leaves no file,
and the file gets the mode ``open`` would give). ``import_nir(path)`` reads it with plain ``nir.read``
and rebuilds a :class:`~statten_hw.quant.quantize.QuantizedGraph` whose nodes hold the same integer
ops (``Q*`` objects rebuilt from the stored fields, which a standard field edited alone, such as a
LIF's ``v_threshold``, must still agree with); ``run_nir_integer(path, x)`` runs that graph
with the reference executor ``quant.run_integer`` (same spikes, same logits).

**Discrete-time convention.** One NIR time step is one model time step, ``dt = 1``. Tensors are
time-major ``[T, batch, *shape]`` as in ``quant.execute``; the NIR ``Input``/``Output`` types are the
per-step shapes. Every value is an integer (stored in float64 fields where NIR wants floats: exact,
all are below ``2**53``), standing for ``q · scale`` (the node's ``metadata['scale']``).

**Standard primitives.**

* ``QConv2d`` -> ``nir.Conv2d`` (integer ``weight``/``bias`` as float64 arrays, dilation 1) and
  ``QLinear`` -> ``nir.Affine``: the accumulator ``W ⋆ q + b``, saturated to ``state_bits``. ``W`` is
  the integer the sums use, ``mantissa << weight_exp``; the metadata's ``qop`` keeps ``weight_exp``.
* ``QLIF`` -> ``nir.LIF`` with per-neuron arrays of the node's shape: ``tau = 4096/dv``,
  ``r = tau``, ``v_leak = 0``, ``v_reset = 0``, ``v_threshold = threshold - 1``. A forward-Euler step
  (``dt = 1``) of ``tau·dv/dt = (v_leak - v) + r·I`` is ``v <- v·(1 - dv/4096) + I`` and NIR's
  ``v > v_threshold`` is ``v >= threshold`` on integers: the float reading of the integer LIF. The
  *exact* integer semantics (Lava's bit-accurate LIF, ``quant.execute.lif_integer``) are in the
  node's metadata: ``threshold``, ``dv``, ``decay_bits`` (12), ``state_bits``, ``ternary``:
  ``H = sign(V·(4096-dv))·(|V·(4096-dv)| >> 12) + X``, ``H`` clipped to ``±(2**(state_bits-1)-1)``,
  spike ``H >= threshold`` (ternary: also ``-1`` at ``H <= -threshold``), hard reset ``V = 0``.
  A LIF without leak (``dv = 0``, a target with no decay field) is ``nir.IF`` instead (``dv/dt = r·I``,
  ``r = 1``: the step ``v <- v + I``, exact on integers; a ``nir.LIF`` would need ``tau = inf``).
* ``QInput`` -> ``nir.Input`` and ``QOutput`` -> ``nir.Output`` (per-step shapes).

**Everything else** (spiking attention, membrane-add rescale, mean, max pool, flatten, ReLU, Mul, and a
linear on tokens ``[N, C]``, which ``nir.Affine`` cannot type: its integer weight and bias are in the
metadata's ``weight_int``/``bias_int``) is a
self-describing ``nir.NIRGraph`` (typed ``input -> [shape carrier] -> output``, see ``_opaque``;
``nir.read`` with its default type checking accepts the file) whose ``metadata['statten_hw_op']`` names the integer op
(``"QAttention"``, ``"QAdd"``, ``"QMean"``, ``"QMaxPool2d"``, ``"QFlatten"``, ``"QReLU"``, ``"QMul"``, ``"QLinear"``)
and ``metadata['qop']`` holds its fields as JSON; its rule is the function of the same op in
``statten_hw.quant.execute`` (e.g. ``QAdd``: ``requant(lhs, *lhs_rq) + requant(rhs, *rhs_rq)`` with
``requant(q, M, S) = (q·M + 2**(S-1)) >> S``, saturated; ``QAttention``: integer attention counts of
``mode`` with ``heads``, ``block_size``, SDSA's inner ``kv_lif`` as a LIF field dict).

**Every node's metadata** (standard ones too) holds ``statten_hw_op`` (the ``Q*`` class name),
``qop`` (JSON of all non-array fields), ``scale`` (float, exact through JSON), ``shape`` (JSON)
and ``inputs`` (JSON ``{port: source node}``: NIR edges have no ports, and ``Add``/attention need
them). The graph metadata holds ``weight_bits``, ``state_bits``, ``decay_bits``, ``format``
(``"statten_hw-integer-nir/1"``) and ``order`` (JSON list: the node order of the original graph).

Other frameworks (snnTorch, which steps NIR with ``dt = 1e-4``) read these files through
``nir_interop.for_float_consumer``, and their files enter statten-hw through ``nir_interop.lower_nir``.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
import typing
from pathlib import Path

import networkx as nx
import nir
import numpy as np
import torch

from statten_hw.errors import ExportError, InputError, StattenError, UnsupportedLayer, one_line
from statten_hw.ir.graph import PORT, SHAPE, inputs_by_port, topological_order
from statten_hw.ir.serialize import jsonable
from statten_hw.models.checkpoint import MAX_IMG_SIZE, MAX_TIMESTEPS
from statten_hw.quant.execute import IntegerRun, run_integer
from statten_hw.quant.fixed_point import DECAY_BITS, quantize_symmetric
from statten_hw.reports.files import replacing

Q = importlib.import_module("statten_hw.quant.quantize")

FORMAT = "statten_hw-integer-nir/1"
_CLASSES = {c.__name__: c for c in (Q.QInput, Q.QConv2d, Q.QLinear, Q.QLIF, Q.QReLU, Q.QMaxPool2d, Q.QFlatten,
                                    Q.QMean, Q.QAdd, Q.QMul, Q.QAttention, Q.QOutput)}
_ARRAYS = ("weight", "bias")  # stored in the NIR primitive's own fields
#: What decoding a damaged or edited file raises: a missing key, bad JSON or text, a wrong type or value.
_MALFORMED = (KeyError, ValueError, TypeError, AttributeError, IndexError)


def _encode_qlif(v):
    """A LIF nested inside another op's fields (SDSA's inner LIF) is tagged so it can be rebuilt."""
    return {"__qop__": "QLIF", **_fields(v)} if isinstance(v, Q.QLIF) else None


def _fields(op) -> dict:
    return {f.name: getattr(op, f.name) for f in dataclasses.fields(op) if f.name not in _ARRAYS}


def _from_json(v):
    if isinstance(v, dict) and v.get("__qop__") == "QLIF":
        return _checked(Q.QLIF(**{k: _from_json(x) for k, x in v.items() if k != "__qop__"}))
    if isinstance(v, list):
        return tuple(_from_json(x) for x in v)
    return v


def _int_array(a, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if not (np.isfinite(a).all() and np.abs(a).max(initial=0) < 2 ** 53):  # float64 is exact below 2**53
        raise ValueError(f"{what}: NIR field holds values that are not exact integers")
    out = a.astype(np.int64)
    if not np.array_equal(out.astype(np.float64), a):
        raise ValueError(f"{what}: NIR field holds non-integer values")
    out.setflags(write=False)
    return out


def _nir_node(qgraph, name: str) -> nir.NIRNode:
    g = qgraph.graph
    op, shape = qgraph.qop(name), tuple(g.nodes[name][SHAPE])
    meta = {"statten_hw_op": type(op).__name__, "qop": json.dumps(jsonable(_fields(op), _encode_qlif)),
            "scale": json.dumps(qgraph.scale(name)), "shape": json.dumps(list(shape)),
            "inputs": json.dumps(inputs_by_port(g, name), sort_keys=True)}
    f64 = np.float64
    if isinstance(op, Q.QInput):
        return nir.Input(input_type={"input": np.array(op.shape)}, metadata=meta)
    if isinstance(op, Q.QOutput):
        return nir.Output(output_type={"output": np.array(shape)}, metadata=meta)
    if isinstance(op, Q.QConv2d):
        src = next(iter(inputs_by_port(g, name).values()))
        in_hw = tuple(int(s) for s in g.nodes[src][SHAPE][1:])
        meta["bias_int"] = np.asarray(op.bias, dtype=np.int64)
        return nir.Conv2d(input_shape=in_hw, weight=op.weight.astype(f64), stride=tuple(op.stride),
                          padding=tuple(op.padding), dilation=(1, 1), groups=int(op.groups),
                          bias=op.bias.astype(f64), metadata=meta)
    if isinstance(op, Q.QLinear) and len(shape) != 1:  # tokens [N, C]: no NIR primitive (Affine is [C])
        meta["bias_int"] = np.asarray(op.bias, dtype=np.int64)
        meta["weight_int"] = np.asarray(op.weight, dtype=np.int64)
        return _opaque(g, name, op, shape, meta)
    if isinstance(op, Q.QLinear):
        meta["bias_int"] = np.asarray(op.bias, dtype=np.int64)
        return nir.Affine(weight=op.weight.astype(f64), bias=op.bias.astype(f64), metadata=meta)
    if isinstance(op, Q.QLIF):
        meta.update(threshold=int(op.threshold), dv=int(op.dv), decay_bits=DECAY_BITS,
                    state_bits=int(qgraph.state_bits), ternary=int(op.ternary))
        full = lambda v: np.full(shape, v, dtype=f64)  # noqa: E731
        if op.dv == 0:  # no leak: NIR's IF (a LIF's tau would be infinite, its Euler step 0·inf)
            return nir.IF(r=full(1.0), v_threshold=full(op.threshold - 1), v_reset=full(0.0), metadata=meta)
        tau = (1 << DECAY_BITS) / op.dv
        return nir.LIF(tau=full(tau), r=full(tau), v_leak=full(0.0), v_threshold=full(op.threshold - 1),
                       v_reset=full(0.0), metadata=meta)
    # no NIR primitive: a self-describing opaque subgraph with typed Input/Output nodes
    return _opaque(g, name, op, shape, meta)


def _opaque(g, name: str, op, shape: tuple, meta: dict) -> nir.NIRGraph:
    """Typed opaque subgraph ``input -> [shape carrier] -> output`` of per-step shapes.

    nir 1.0.8 type-checks an edge into a subgraph against *all* of the subgraph's ``Input`` types at
    once (``len(input_type)`` must equal the predecessor's single output) and its edges cannot
    address a subgraph port (``validate_structure`` only accepts top-level node names): a subgraph
    with one ``Input`` per port (``q``/``k``/``v``, ``lhs``/``rhs``) fails ``nir.read``. So every
    opaque op has one ``Input`` named ``input`` of the (common) per-step shape of its input ports;
    the ports are in ``metadata['inputs']``. The inner nodes only carry the types: the op's integer
    rule is the one named by ``metadata['statten_hw_op']``.
    """
    ports = inputs_by_port(g, name)
    in_shapes = {p: tuple(int(d) for d in g.nodes[src][SHAPE]) for p, src in ports.items()}
    if len(set(in_shapes.values())) != 1:
        raise ExportError(f"{name}: NIR export needs equal per-step shapes on all input ports, got {in_shapes}")
    in_shape = next(iter(in_shapes.values()))
    out_shape = tuple(int(d) for d in shape)
    nodes = {"input": nir.Input(input_type={"input": np.array(in_shape)})}
    chain = []
    if in_shape == out_shape:
        pass
    elif isinstance(op, Q.QFlatten) and out_shape == (int(np.prod(in_shape)),):
        chain = [("flatten", nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1))]
    elif isinstance(op, Q.QFlatten) and len(in_shape) == 3 and out_shape == (in_shape[1] * in_shape[2], in_shape[0]):
        # channels-last tokens [C, H, W] -> [H·W, C]: flatten, then a transposition NIR cannot say
        c, tokens = in_shape[0], in_shape[1] * in_shape[2]
        chain = [("flatten", nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=1, end_dim=-1)),
                 ("transpose", _conv1d_carrier((c, tokens), out_shape))]
    elif isinstance(op, Q.QLinear) and len(in_shape) == 2:
        chain = [("linear", _conv1d_carrier(in_shape, out_shape))]  # the weights: metadata weight_int
    elif isinstance(op, Q.QMean) and len(in_shape) == 2 and out_shape == in_shape[1:]:
        # mean over the tokens of [N, C]: a Conv1d with one output channel of weight 1/N is that mean
        n, c = in_shape
        chain = [("mean", nir.Conv1d(input_shape=c, weight=np.full((1, n, 1), 1.0 / n), stride=1, padding=0,
                                     dilation=1, groups=1, bias=np.zeros(1))),
                 ("flatten", nir.Flatten(input_type={"input": np.array([1, c])}, start_dim=0, end_dim=-1))]
    elif isinstance(op, Q.QMaxPool2d) and len(in_shape) == 3:
        # shape carrier only (NIR has no max pool): same window -> same output type
        chain = [("pool", nir.SumPool2d(kernel_size=np.array(op.kernel), stride=np.array(op.stride),
                                        padding=np.array(op.padding)))]
    elif isinstance(op, Q.QMean) and len(in_shape) == 3 and out_shape == in_shape[:1]:
        hw = np.array(in_shape[1:])
        chain = [("pool", nir.AvgPool2d(kernel_size=hw, stride=hw, padding=np.array([0, 0]))),
                 ("flatten", nir.Flatten(input_type={"input": np.array([in_shape[0], 1, 1])},
                                         start_dim=0, end_dim=-1))]
    else:
        raise ExportError(f"{name}: no typed NIR form for {type(op).__name__} {in_shape} -> {out_shape}")
    nodes.update(chain)
    nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    names = list(nodes)
    edges = list(zip(names[:-1], names[1:]))
    sub = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=True)
    if not np.array_equal(sub.output_type["output"], np.array(out_shape)):
        raise ValueError(f"{name}: NIR subgraph output type {sub.output_type['output']} != {out_shape}")
    return sub


def _conv1d_carrier(in_shape: tuple[int, int], out_shape: tuple[int, int]) -> nir.Conv1d:
    """A zero ``Conv1d`` that only carries the type ``[A, L] -> [B, L']``: kernel 2 with the dilation
    (and padding, when ``L' > L``) that makes ``L' = L + 2·pad - dilation`` (kernel 1 when equal)."""
    (a, length), (b, out_length) = in_shape, out_shape
    if length == out_length:
        pad, dilation, kernel = 0, 1, 1
    else:
        pad = max(0, -(-(out_length - length + 1) // 2))
        dilation, kernel = length + 2 * pad - out_length, 2
    return nir.Conv1d(input_shape=length, weight=np.zeros((b, a, kernel)), stride=1, padding=pad,
                      dilation=dilation, groups=1, bias=np.zeros(b))


def build_nir(qgraph: "Q.QuantizedGraph") -> nir.NIRGraph:
    """The NIR graph of ``qgraph``; `UnsupportedLayer` where a node has no typed NIR form (a node of
    ours, or NIR's own type check naming the edge it refuses)."""
    g = qgraph.graph
    order = topological_order(g)
    nodes = {}
    for n in order:
        try:
            nodes[n] = _nir_node(qgraph, n)
        except ValueError as err:
            raise UnsupportedLayer(n, type(qgraph.qop(n)).__name__, f"no NIR form: {one_line(err)}") from None
    edges = [(u, v) for u, v in g.edges]
    meta = {"format": FORMAT, "weight_bits": int(qgraph.weight_bits), "state_bits": int(qgraph.state_bits),
            "decay_bits": DECAY_BITS, "order": json.dumps(list(g.nodes))}
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=True)
    except ValueError as err:
        raise UnsupportedLayer("nir graph", "NIRGraph", f"NIR's type check refuses it: {one_line(err)}") from None


def export_nir(qgraph: "Q.QuantizedGraph", path, built: nir.NIRGraph | None = None) -> Path:
    """Write ``qgraph`` as a NIR file (module docstring: the mapping); atomic; returns ``path``.
    ``built``: its `build_nir` graph when the caller built it already (to fail before writing anything)."""
    graph = built if built is not None else build_nir(qgraph)
    with replacing(path) as tmp:
        nir.write(tmp, graph)  # h5py creates the file: mode 0o666 less the umask, like every other output
    return Path(path)


def as_text(v) -> str:
    """A NIR metadata string: ``nir.read`` gives back ``bytes`` for what was written as ``str``."""
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def _qop(name: str, node: nir.NIRNode):
    meta = node.metadata
    cls = _CLASSES[as_text(meta["statten_hw_op"])]
    fields = {k: _from_json(v) for k, v in json.loads(as_text(meta["qop"])).items()}
    if cls in (Q.QConv2d, Q.QLinear):
        opaque = isinstance(node, nir.NIRGraph)  # a linear on tokens: its arrays are in the metadata only
        fields["weight"] = _int_array(np.asarray(meta["weight_int"]) if opaque else node.weight, f"{name}.weight")
        fields["bias"] = _int_array(np.asarray(meta["bias_int"]) if opaque else node.bias, f"{name}.bias")
        if not opaque and not np.array_equal(fields["bias"], np.asarray(meta["bias_int"])):
            raise ValueError(f"{name}: bias field and metadata bias_int disagree")
    if cls is Q.QLIF and (int(meta["threshold"]) != fields["threshold"] or int(meta["dv"]) != fields["dv"]):
        raise ValueError(f"{name}: LIF metadata disagrees with its qop fields")
    op = _checked(cls(**fields))
    _standard_fields_agree(name, node, cls, fields)
    return op


def _standard_fields_agree(name: str, node: nir.NIRNode, cls, fields: dict) -> None:
    """The integer op is rebuilt from the metadata; a standard field another tool edited (a LIF's
    ``v_threshold``, ``v_reset`` or ``v_leak``, a convolution's ``padding``) would be silently ignored,
    so it must still say what the metadata says."""
    if isinstance(node, (nir.LIF, nir.IF)) and cls is Q.QLIF:
        dv = fields["dv"]
        if isinstance(node, nir.IF) != (dv == 0):
            raise ValueError(f"{name}: a nir.{type(node).__name__} holds the integer LIF of dv {dv} in its metadata "
                             "(nir.IF is the one without leak, dv 0)")
        written = {"v_threshold": fields["threshold"] - 1, "r": 1.0, "v_reset": 0.0}  # reset to 0
        if dv:
            tau = (1 << DECAY_BITS) / dv
            written.update(tau=tau, r=tau, v_leak=0.0)
    elif isinstance(node, nir.Conv2d) and cls is Q.QConv2d:
        written = {"stride": np.asarray(fields["stride"]), "padding": np.asarray(fields["padding"]), "groups": fields["groups"]}
    else:
        return
    for field, value in written.items():
        got = np.asarray(getattr(node, field))
        if got.dtype.kind not in "iuf" or not np.all(got == value):
            raise ValueError(f"{name}: {field} {got.ravel()[:4].tolist()} disagrees with the integer op's "
                             f"{np.asarray(value).ravel()[:4].tolist()} in the metadata (edit both or neither)")


def _is(kind, value) -> bool:
    """``value`` has the declared field type ``kind`` (tuples hold integers; bools are not numbers)."""
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return _is(int, value) or (isinstance(value, float) and math.isfinite(value))
    if kind is tuple:
        return isinstance(value, tuple) and all(_is(int, v) for v in value)
    return isinstance(value, kind)


def _checked(op):
    """``op`` if every field has its declared type (the JSON in a file could hold anything), and the
    fields that size tensors stay bounded (a padding of 10**6 would ask the check run for terabytes)."""
    hints = typing.get_type_hints(type(op))
    for f in dataclasses.fields(op):
        value = getattr(op, f.name)
        if not any(_is(kind, value) for kind in typing.get_args(hints[f.name]) or (hints[f.name],)):
            raise ValueError(f"field {f.name!r} = {value!r:.60} is not of type {hints[f.name]}")
    if isinstance(op, Q.QInput) and not (0 < op.timesteps <= MAX_TIMESTEPS
                                         and all(0 < d <= MAX_IMG_SIZE for d in op.shape)):
        raise ValueError(f"input of {op.timesteps} steps of shape {op.shape} is outside 1..{MAX_TIMESTEPS} steps, "
                         f"1..{MAX_IMG_SIZE} per dimension")
    if isinstance(op, Q.QLIF) and not (0 <= op.dv <= 1 << DECAY_BITS and op.threshold >= 1):
        raise ValueError(f"LIF dv {op.dv} or threshold {op.threshold} is outside 0..{1 << DECAY_BITS}, >= 1")
    if isinstance(op, (Q.QConv2d, Q.QLinear)) and not 0 <= op.weight_exp <= Q.MAX_FRACTION_BITS:
        raise ValueError(f"weight_exp {op.weight_exp} is outside 0..{Q.MAX_FRACTION_BITS}")
    if isinstance(op, (Q.QConv2d, Q.QMaxPool2d)):
        kernel = op.weight.shape[2:] if isinstance(op, Q.QConv2d) else op.kernel
        if not (all(s >= 1 for s in op.stride) and all(0 <= p < k for p, k in zip(op.padding, kernel))):
            raise ValueError(f"stride {op.stride} or padding {op.padding} does not fit kernel {tuple(kernel)}")
    return op


def _problem(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:160]}"


def read_nir(path) -> nir.NIRGraph:
    """``nir.read`` of ``path`` with every failure (missing, damaged, mistyped) as one `InputError`
    line, its first line only (a foreign error can be pages long)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return nir.read(path)  # default type checking: every node, subgraphs included, is typed
    except Exception as err:  # h5py and nir raise many kinds for a damaged file: all mean "unreadable"
        raise InputError(f"{path}: not a readable NIR file ({_problem(err)})") from None


def _node_attrs(name: str, node: nir.NIRNode) -> dict:
    m = node.metadata
    shape = _from_json(json.loads(as_text(m["shape"])))
    if not _is(tuple, shape):
        raise ValueError(f"shape {shape!r:.60} is not a list of integers")
    scale = json.loads(as_text(m["scale"]))
    if not (_is(float, scale) and scale > 0):
        raise ValueError(f"scale {scale!r:.60} is not a positive number")
    return {Q.QOP: _qop(name, node), Q.SCALE: float(scale), SHAPE: shape, "source": ""}


def _written_nodes(graph: nir.NIRGraph) -> list[str]:
    """The nodes of the file less the ``Output`` node ``output_<n>`` that ``nir.read`` adds after a node
    ``n`` whose output no edge consumed (an unused value of the integer graph, e.g. a DVS pool that
    SDSA does not read); ours carry ``statten_hw_op`` metadata, those do not."""
    added = {as_text(v) for u, v in graph.edges if as_text(v) == f"output_{as_text(u)}"}
    return [n for n in graph.nodes
            if not (n in added and isinstance(graph.nodes[n], nir.Output) and "statten_hw_op" not in graph.nodes[n].metadata)]


def _rebuild(graph: nir.NIRGraph, path: Path) -> nx.DiGraph:
    """The integer graph of the file; every problem is an InputError naming the node."""
    order = json.loads(as_text(graph.metadata["order"]))
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(_written_nodes(graph)):
        raise ValueError("metadata 'order' does not list every node exactly once")
    qg = nx.DiGraph()
    for name in order:
        try:
            qg.add_node(name, **_node_attrs(name, graph.nodes[name]))
        except _MALFORMED as err:
            raise InputError(f"{path}: node {name!r}: {_problem(err)}") from None
    nir_edges = {(as_text(u), as_text(v)) for u, v in graph.edges}
    for name in order:
        try:
            inputs = json.loads(as_text(graph.nodes[name].metadata["inputs"]))
            for port, src in inputs.items():
                if (src, name) not in nir_edges:
                    raise ValueError(f"edge {src!r} -> {name!r} missing from the NIR edges")
                qg.add_edge(src, name, **{PORT: port, Q.SCALE: qg.nodes[src][Q.SCALE]})
        except _MALFORMED as err:
            raise InputError(f"{path}: node {name!r}: inputs: {_problem(err)}") from None
    kinds = [type(qg.nodes[n][Q.QOP]) for n in qg]
    if kinds.count(Q.QInput) != 1 or kinds.count(Q.QOutput) != 1 or not nx.is_directed_acyclic_graph(qg):
        raise InputError(f"{path}: the integer graph needs one input, one output and no cycle")
    return qg


def _dry_run(qgraph: "Q.QuantizedGraph", path: Path) -> None:
    """Run the rebuilt graph once on a zero input: fields that do not fit together (a weight whose
    channels do not match its input, an unknown attention mode) fail here, as one InputError,
    instead of inside a later run."""
    op = qgraph.qop(qgraph.input_node)
    shape = (1, *op.shape) if op.encoding == "direct" else (1, op.timesteps, *op.shape)
    try:
        run_integer(qgraph, torch.zeros(shape, dtype=torch.int64))
    except StattenError:
        raise
    except Exception as err:  # whatever the executor trips on, the file's fields are inconsistent
        raise InputError(f"{path}: the integer graph in the file does not run ({_problem(err)})") from None


def import_nir(path) -> "Q.QuantizedGraph":
    """Read a file of :func:`export_nir` with plain ``nir.read`` and rebuild the integer graph.

    A damaged or edited file (unreadable, another format, a missing or mistyped field, an edge or
    port that does not match, a graph that does not run) raises one :class:`InputError`.
    """
    path = Path(path)
    graph = read_nir(path)
    meta = graph.metadata
    if as_text(meta.get("format", "")) != FORMAT:
        raise InputError(f"{path}: not a {FORMAT} file; a NIR graph of another framework is read by "
                         "statten_hw.export.nir_interop.lower_nir")
    try:
        qg = _rebuild(graph, path)
        bits = {key: int(meta[key]) for key in ("weight_bits", "state_bits", "decay_bits")}
        quantize_symmetric(np.zeros(1), bits["weight_bits"])  # validates weight_bits
        if bits["decay_bits"] != DECAY_BITS:
            raise ValueError(f"decay_bits {bits['decay_bits']}: the integer LIF uses {DECAY_BITS}")
        if not Q.MIN_STATE_BITS <= bits["state_bits"] <= Q.MAX_STATE_BITS:
            raise ValueError(f"state_bits {bits['state_bits']} is outside {Q.MIN_STATE_BITS}..{Q.MAX_STATE_BITS}")
    except _MALFORMED as err:
        raise InputError(f"{path}: graph metadata: {_problem(err)}") from None
    qg.graph["quant"] = bits
    qgraph = Q.QuantizedGraph(qg, bits["weight_bits"], bits["state_bits"], {n: n for n in qg}, nx.DiGraph())
    _dry_run(qgraph, path)
    return qgraph


def run_nir_integer(path, x: torch.Tensor) -> IntegerRun:
    """Integer run of the NIR file ``path`` (via :func:`import_nir` and ``quant.run_integer``)."""
    return run_integer(import_nir(path), x)
