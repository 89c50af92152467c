"""NIR interchange with other frameworks: our integer graph for a float consumer, theirs into our IR.

NIR fixes a continuous-time model and leaves the time step to the consumer: a framework reads
``nir.LIF`` (``tau·dv/dt = (v_leak - v) + r·I``, spike on ``v > v_threshold``, reset to ``v_reset``)
with forward Euler at a step ``dt`` of its own choosing,

    v <- (1 - a)·v + a·r·I,   a = dt / tau,

and snnTorch hard-codes ``dt = 1e-4`` (:data:`SNNTORCH_DT`) in both its exporter and importer.
Our files use ``dt = 1`` (``statten_hw.export.nir_export``), so every crossing names its ``dt``.

**Ours to a float consumer** (:func:`for_float_consumer`). Each LIF becomes ``tau = dt·4096/dv``,
``r = 4096/dv`` (then ``a = dv/4096`` and ``a·r = 1``: the step is ``v <- β·v + I``, ``β = 1 - dv/4096``,
an snnTorch ``Leaky`` with that ``β``), and ``v_threshold`` becomes the largest float32 below the
integer threshold ``θ``, so ``v > v_threshold`` is ``v >= θ`` for float32 and float64 states alike
(``θ - 1``, the Lava ``vth`` kept in our files, is exact only on integer states). What remains is
the one difference NIR cannot carry: Lava's leak truncates ``V·β`` toward zero, a float consumer
keeps the fraction. The spikes still coincide exactly in three regimes, and only there:

* ``β = 0`` (``dv = 4096``, ``tau = 1``): no memory, ``V = X`` in both.
* ``β = 1`` (``dv = 0``, no leak: a target without a decay field), any signs: nothing to truncate.
  Such a LIF is a ``nir.IF`` (``dv/dt = r·I``), written with ``r = 1/dt``: the Euler step
  ``v <- v + dt·r·I`` is ``v <- v + I``. ``dt·r`` is exactly 1 in float32 and float64 for snnTorch's
  ``dt`` and every power of two; for other steps it is one rounding off, which moves the membrane by
  less than 1 (the margin between an integer and the threshold just below the next) while ``T·|v|``
  stays below ``2**23``.
  snnTorch 1.0 cannot read it: its importer wants ``r = 1`` and makes a ``Leaky`` with ``β = 0.9``.
* ``β = 2**-k`` (``dv = 4096 - 2**(12-k)``; ``tau = 2`` is ``β = 1/2``) with a membrane that never
  goes negative (non-negative integer currents, e.g. non-negative weights and biases on spikes):
  then ``V = floor(v)`` at every step by induction, because ``floor(floor(v)/2**k) = floor(v/2**k)``
  and ``floor(u) + X = floor(u + X)`` for integer ``X``; and ``floor(v) >= θ ⇔ v >= θ``.

A negative membrane (truncation toward zero is a ceiling there) or another ``β`` can flip spikes. Two
more limits: the fraction a ``β = 2**-k`` membrane carries must stay exact in the consumer's floats
(it gains ``k`` bits a step: with ``θ = 2`` and ``I = 1`` every step, float32 and float64 consumers
both fire at step 24 and the integer LIF never does, so the regime holds for short windows only), and
no value may saturate (a 24-bit clip NIR cannot express). Ternary LIFs (spikes of -1) and integer
thresholds beyond ``2**24`` (float32's exact integers: ``θ = 2**24 + 1`` would be written as
``2**24 - 1``) are refused.

**Theirs into our IR** (:func:`lower_nir`). A NIR graph of ``Input``, ``Conv2d``, ``Affine``,
``Linear``, ``LIF`` and ``Output`` nodes in a chain or tree (one producer per node: NIR sums
several, our IR has no implicit sum) becomes a deployment graph (``statten_hw.ir``), ready for
``quant.quantize`` and every later stage. The LIF maps onto ``ir.LIF``
(``h = h + (x - h)/τ``, fire on ``h >= θ``) with the state ``h = v/r``: ``τ = tau/dt``, input
``x = I`` unchanged, ``θ`` the smallest float32 above ``v_threshold/r`` (NIR fires on a strict
``>``, ours on ``>=``; on float32 states the two agree). ``a = dt/tau`` and ``v_threshold/r`` are
rounded to float32 before use: frameworks write their float32 parameters through ``tau = dt/(1-β)``,
``r = tau/dt``, and the rounding recovers ``β = 0.5`` from ``tau ≈ 2e-4``. Parameters must be equal
across a LIF's neurons, ``v_leak = v_reset = 0``; inputs arrive as event frames over ``timesteps``.
A ``Conv2d``'s padding may be pixel counts, ``'valid'``, or ``'same'`` with stride 1 and an odd kernel.
Anything else raises :class:`~statten_hw.errors.UnsupportedLayer` naming the node.

The float graph follows the writer step for step wherever float32 sums are exact. The *integer*
graph (``quant.quantize``) does too when, in addition, quantization loses nothing (weights and
biases are integer multiples of the 8-bit scale ``max|W|/127``), the leak is in one of the two
regimes above, and, as ``β = 2**-k`` leaves fractions in the float membrane, a strict threshold
sits just below a multiple of the state unit (``m > thr`` then equals ``floor(m) >= θ``): exactly
the threshold :func:`for_float_consumer` writes.
"""
from __future__ import annotations

import numbers

import networkx as nx
import nir
import numpy as np

from statten_hw.errors import InputError, UnsupportedLayer
from statten_hw.ir import nodes as ir
from statten_hw.ir.graph import add_op, new_graph
from statten_hw.ir.passes import run_pipeline
from statten_hw.quant.fixed_point import DECAY_BITS

from .nir_export import FORMAT, as_text, read_nir

SNNTORCH_DT = 1e-4  # snnTorch's export_to_nir / import_from_nir discretize every LIF with this step
_F32 = np.float32


def _check_dt(dt) -> None:
    if not (isinstance(dt, numbers.Real) and not isinstance(dt, bool) and dt > 0 and np.isfinite(dt)):
        raise InputError(f"dt must be a positive time step, got {dt!r}")


def _float_neuron(name: str, node: nir.LIF | nir.IF, dt: float) -> nir.LIF | nir.IF:
    """``node`` (one of our integer LIFs) as the float neuron ``v <- β·v + I``, fire ``v >= θ``: a
    ``nir.LIF``, or without leak (``β = 1``) a ``nir.IF``."""
    dv, theta = int(node.metadata["dv"]), int(node.metadata["threshold"])
    kind = f"nir.{type(node).__name__}"
    if node.metadata.get("ternary"):
        raise UnsupportedLayer(name, kind, f"a ternary LIF (spikes of -1) has no {kind} meaning")
    if theta > 1 << 24:
        raise UnsupportedLayer(name, kind, f"threshold {theta} is past 2**24, where float32 has no exact integers")
    full = lambda v: np.full(node.v_threshold.shape, v, dtype=np.float64)  # noqa: E731
    below = full(float(np.nextafter(_F32(theta), _F32(-np.inf))))
    if dv == 0:
        return nir.IF(r=full(1 / dt), v_threshold=below, v_reset=full(0.0), metadata=dict(node.metadata))
    steps = (1 << DECAY_BITS) / dv  # tau in steps: exact for every dv that is a power of two
    return nir.LIF(tau=full(dt * steps), r=full(steps), v_leak=full(0.0), v_threshold=below,
                   v_reset=full(0.0), metadata=dict(node.metadata))


def for_float_consumer(graph: nir.NIRGraph, dt: float) -> nir.NIRGraph:
    """A graph of :func:`~statten_hw.export.nir_export.export_nir` as a float consumer that steps
    ``nir.LIF`` with forward Euler at ``dt`` must read it (module docstring: when spikes coincide).

    Only networks of standard primitives cross: an op exported as a statten-hw subgraph (attention,
    pooling, flatten, ...) has no meaning outside statten-hw and raises ``UnsupportedLayer``.
    """
    if as_text(graph.metadata.get("format", "")) != FORMAT:
        raise InputError(f"not a {FORMAT} graph (export it with statten_hw.export.nir_export.export_nir)")
    _check_dt(dt)
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise UnsupportedLayer(name, as_text(node.metadata["statten_hw_op"]),
                                   "no standard NIR primitive; only statten-hw can run this subgraph")
        nodes[name] = _float_neuron(name, node, dt) if isinstance(node, (nir.LIF, nir.IF)) else node
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata), type_check=True)


def _uniform(name: str, node: nir.NIRNode, field: str) -> float:
    values = np.unique(np.asarray(getattr(node, field), dtype=np.float64))
    if values.size != 1:
        raise UnsupportedLayer(name, "nir.LIF", f"{field} differs between neurons ({values.size} values); "
                                                "statten-hw LIF layers share one value")
    return float(values[0])


def _lif(name: str, node: nir.LIF, dt: float) -> ir.LIF:
    tau, r, v_th = (_uniform(name, node, f) for f in ("tau", "r", "v_threshold"))
    for field, value in (("tau", tau), ("r", r), ("v_threshold", v_th)):
        if not np.isfinite(value):
            raise UnsupportedLayer(name, "nir.LIF", f"{field} must be finite, got {value}")
    if not tau > 0:
        raise UnsupportedLayer(name, "nir.LIF", f"tau must be positive, got {tau}")
    for field in ("v_leak", "v_reset"):
        if _uniform(name, node, field) != 0:
            raise UnsupportedLayer(name, "nir.LIF", f"{field} must be 0 (statten-hw LIFs leak and reset to 0)")
    a = float(_F32(dt / tau))  # per-step decay, as the float32 framework meant it
    if not 0 < a <= 1:
        raise UnsupportedLayer(name, "nir.LIF", f"dt/tau = {dt}/{tau} is not a decay in (0, 1]")
    if not r > 0:
        raise UnsupportedLayer(name, "nir.LIF", f"r must be positive, got {r}")
    theta = float(np.nextafter(_F32(v_th / r), _F32(np.inf)))  # strict '>' as '>=' on float32
    if not theta > 0:
        raise UnsupportedLayer(name, "nir.LIF", f"v_threshold must be positive, got {v_th}")
    return ir.LIF(threshold=theta, tau=1.0 / a)


def _conv(name: str, node: nir.Conv2d, dt: float) -> ir.Conv2d:
    if tuple(np.atleast_1d(node.dilation)) not in ((1,), (1, 1)):
        raise UnsupportedLayer(name, "nir.Conv2d", f"dilation {node.dilation} (statten-hw convolutions have 1)")
    stride = _pair(node.stride)
    return ir.Conv2d(weight=np.asarray(node.weight, dtype=np.float32), bias=np.asarray(node.bias, dtype=np.float32),
                     stride=stride, padding=_padding(name, node, stride), groups=int(node.groups))


def _pair(value) -> tuple[int, int]:
    """A NIR size given once or per axis, as (height, width)."""
    return tuple(int(i) for i in np.broadcast_to(np.asarray(value), (2,)))


def _padding(name: str, node: nir.Conv2d, stride: tuple[int, int]) -> tuple[int, int]:
    """NIR's padding in pixels: ``'valid'`` is none and ``'same'`` (PyTorch's meaning, stride 1 only) is
    half an odd kernel; an even kernel would need more on one side than the other, which our
    convolutions cannot say."""
    if not isinstance(node.padding, str):
        return _pair(node.padding)
    kernel = tuple(int(k) for k in np.asarray(node.weight).shape[2:])
    if node.padding == "valid":
        return (0, 0)
    if node.padding == "same" and stride == (1, 1) and all(k % 2 for k in kernel):
        return (kernel[0] // 2, kernel[1] // 2)
    raise UnsupportedLayer(name, "nir.Conv2d", f"padding {node.padding!r} with kernel {kernel} and stride {stride}: "
                                               "'same' needs stride 1 and an odd kernel; or give pixel counts")


def _affine(name: str, node: nir.Affine, dt: float) -> ir.Linear:
    return ir.Linear(weight=np.asarray(node.weight, dtype=np.float32), bias=np.asarray(node.bias, dtype=np.float32))


def _linear(name: str, node: nir.Linear, dt: float) -> ir.Linear:
    return ir.Linear(weight=np.asarray(node.weight, dtype=np.float32))


def _output(name: str, node: nir.Output, dt: float) -> ir.Output:
    return ir.Output(per_step=True)  # a NIR graph's output is one value per step


_LOWER = {nir.Conv2d: _conv, nir.Affine: _affine, nir.Linear: _linear, nir.LIF: _lif, nir.Output: _output}


def _read(source) -> nir.NIRGraph:
    return source if isinstance(source, nir.NIRGraph) else read_nir(source)


def _order(graph: nir.NIRGraph) -> list[str]:
    dag = nx.DiGraph()
    dag.add_nodes_from(graph.nodes)
    dag.add_edges_from((as_text(u), as_text(v)) for u, v in graph.edges)
    for name in dag:
        producers = sorted(dag.predecessors(name))
        if len(producers) > 1:
            raise UnsupportedLayer(name, f"nir.{type(graph.nodes[name]).__name__}",
                                   f"{len(producers)} producers {producers} (NIR sums them; statten-hw needs "
                                   "one producer per node)")
    if not nx.is_directed_acyclic_graph(dag):
        raise UnsupportedLayer(str(nx.find_cycle(dag)[0][0]), "nir", "recurrent connection (a cycle)")
    return list(nx.lexicographical_topological_sort(dag))


def lower_nir(source, dt: float, timesteps: int) -> nx.DiGraph:
    """Deployment graph of a NIR graph written by another framework (module docstring: the rules).

    ``source``: a ``.nir`` path or a ``nir.NIRGraph``; ``dt``: the step the writer meant
    (:data:`SNNTORCH_DT` for snnTorch); ``timesteps``: steps per sample. The graph runs with
    ``ir.run_float`` on ``[batch, T, *shape]`` event frames and quantizes like any lowered model.
    """
    _check_dt(dt)
    graph = _read(source)
    g = new_graph(nir={"dt": float(dt)})
    producer: dict[str, str] = {}
    for u, v in graph.edges:
        producer[as_text(v)] = as_text(u)
    for name in _order(graph):
        node = graph.nodes[name]
        inputs = {"x": producer[name]} if name in producer else {}
        if isinstance(node, nir.Input):
            shape = tuple(int(s) for s in next(iter(node.input_type.values())))
            add_op(g, name, ir.Input(shape=shape, timesteps=timesteps, encoding="events"), f"nir:{name}")
            continue
        lower = _LOWER.get(type(node))
        if lower is None:
            raise UnsupportedLayer(name, f"nir.{type(node).__name__}", "no statten-hw lowering for this NIR node")
        _check_finite(name, node)
        try:  # the IR node checks shapes and values (a bias of the wrong length, say)
            add_op(g, name, lower(name, node, dt), f"nir:{name}", **inputs)
        except ValueError as err:
            raise UnsupportedLayer(name, f"nir.{type(node).__name__}", str(err)) from None
    return run_pipeline(g)


def _check_finite(name: str, node: nir.NIRNode) -> None:
    for field in ("weight", "bias"):
        values = getattr(node, field, None)
        if values is not None and not np.isfinite(np.asarray(values, dtype=np.float64)).all():
            raise UnsupportedLayer(name, f"nir.{type(node).__name__}", f"{field} holds NaN or infinite values")
