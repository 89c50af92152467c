"""Memory guard for ``statten-hw simulate``: estimate a run's peak memory before starting it.

A simulation that outgrows the machine does not fail cleanly: it swaps for minutes or is killed by
the kernel's OOM killer, with no message and half a report. So `simulate` first estimates what the
run will add to the process (and, for Lava, to its worker processes) and refuses with one line when
the estimate exceeds a limit: ``--max-memory`` (`parse_size`) or, by default, `SAFETY_FRACTION` of
the memory available now (`available_memory`).

**The estimate** (`simulation_bytes`) is deliberately conservative: an over-estimate refuses a run
that would have fitted, which ``--max-memory`` overrides; an under-estimate is the crash we guard
against. With ``S`` samples, ``T`` steps, ``V = 8·T·S·Σ numel`` bytes (the int64 value of every
node of the integer graph over a batch, which the integer executor keeps for the whole run) and
``M = 8·T·S·max numel`` (the largest node's)::

    event (fast)     FIXED + 2·V + 3·M + A + C
    event (detailed) the same + 32 B x synapses (the engine's memoised targets per source element)
    lava             FIXED + 4·V + 16 MiB x (nodes + 4) + 16 B x weights + 24·R
    sanafe           FIXED + 4·V + 128 B x synapses + S x (0.5 MiB x chip cores + 256 B x (synapses + neurons))

* ``2·V`` (event engines): the values, kept for the whole run, and what is kept beside them per
  element: the LIF traces' state before each step and the elements events reached (booleans,
  ``V/8`` each at most), the event rows of the source being counted; ``3·M`` the float64 copies a
  kernel makes of its input and output. (``3·V`` until NeuroBench's LIF replays, spikes and
  membranes, gave way to the integer run's own traces.) ``4·V`` (Lava): the recorded values, their
  concatenation and the report, plus ``V`` for the integer reference run the Lava run is checked
  against.
* ``A = 8·T·S·heads·N²`` per Spikformer (SSA) attention node: its ``Q·Kᵀ`` scores in float64
  (the block-wise modes only hold ``d x d`` or ``B x B`` products, far below ``M``).
* ``C = 4 B x (2 x cores of the widest layer + 2) x Σ over edges of the source's numel``: the event
  network's counters (per source element and destination core: targets and coverage, and one column
  of ones) and longest routes, plus the ``8·K²`` hop matrix of the ``K`` cores used. Counted as
  float32; the projections whose step totals may pass 2^24 keep theirs in float64, which this term
  does not tell apart: the margin of the others covers them (SDT-8-768 measured 1.34x under).
* Lava: one OS process per node (measured 7.4 MiB private memory each, 36 processes for the
  embedded model), the weights copied into them, and ``R = 8 x min(S, 16) x window x Σ numel``: the
  recorder's buffer of one run of 16 sample windows (`statten_hw.simulator.lava.schedule`).
* SANA-FE: the reference run, per-sample slices and spike arrays (``4·V``); the network (about
  75 B per synapse measured), and one ``SpikingChip`` per sample, all kept until the end (measured
  0.37 MiB per core of the architecture, 4096-core ``truenorth``: 1.48 GiB per chip, and about
  160 B per loaded synapse).
* ``FIXED`` = 128 MiB: lazily imported modules, plotting for report.html, allocator arenas (a
  one-sample run of the embedded model adds 42 MiB).

**Calibration** (``python tests/robustness/memory_calibration.py``): the peak RSS a run adds to the
RSS before it (after ``malloc_trim``), plus the peak private memory of Lava's workers; on a shared
2-core machine. The event-engine rows were measured at commit d0cfb2d's engine with the ``2·V``
estimate; Lava and SANA-FE rows earlier (commit dc5359c, Lava's again with its reference check)::

    run                                              measured     estimate   ratio
    embedded (digits STAtten), fast, S = 1             43 MiB      130 MiB    3.0
    embedded, fast, S = 64                             87 MiB      215 MiB    2.5
    embedded, fast, S = 450 (the test split)          376 MiB      737 MiB    2.0
    embedded, detailed, S = 64                        122 MiB      238 MiB    1.9
    embedded, lava, S = 16 (36 workers + reference)  324 MiB      863 MiB    2.7
    embedded, sanafe on sanafe:loihi, S = 4           494 MiB     1221 MiB    2.5
    random STAtten, depth 2, dim 128, 32 px, S = 16   490 MiB      895 MiB    1.8
    its Spikformer (SSA) twin, S = 16                 530 MiB      967 MiB    1.8
    SDT-8-768, 224 px (benchmarks/sdt_model.py), S=1  3137 MiB    4217 MiB    1.34

With ``3·V`` (the estimate before NeuroBench's replays were gone) SDT-8-768 was 1.8x under its
estimate (5646 MiB), so a machine needed some 7 GiB available to simulate it by default; the
measured peak moves by a few percent between runs (3057 and 3137 MiB). The guard now refuses a run
once it would really use about 75 % of the limit on large models, 33-55 % on small ones: loose, on
purpose (other engines, library versions and allocators differ), and ``--max-memory`` overrides it.
With ``--device cuda`` the tensors live on the GPU; the estimate still counts them against host memory.
``test_memory_guard.py`` checks that the estimate stays between 1x and 5x of a measured run.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from statten_hw.errors import InputError, ResourceError

MiB = 1 << 20
#: Share of the available memory a run may use by default: the rest is for the OS and other users.
SAFETY_FRACTION = 0.8
FIXED_BYTES = 128 * MiB
LAVA_PROCESS_BYTES = 16 * MiB
LAVA_EXTRA_PROCESSES = 4  # injector, recorder, runtime service, spare
SANAFE_CORE_BYTES = MiB // 2
SANAFE_SYNAPSE_BYTES = 256  # per synapse and per neuron, in each per-sample chip
SANAFE_NETWORK_SYNAPSE_BYTES = 128
DETAILED_SYNAPSE_BYTES = 32
#: cgroup v2 files of the container we run in (a memory limit there is lower than the host's free memory).
CGROUP = Path("/sys/fs/cgroup")

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([KMGT])I?)?B?\s*", re.IGNORECASE)


#: Values a batched whole-graph run outside ``simulate`` (calibration, the float-vs-integer comparison
#: of ``export``) may hold at once; it runs its samples in as many batches as that takes.
BATCH_BYTES = 2 << 30


def samples_per_batch(bytes_per_sample: int, budget: int | None = None) -> int:
    """The most samples whose values fit in ``budget`` bytes (`BATCH_BYTES` when None), at least one."""
    return max(1, (BATCH_BYTES if budget is None else budget) // max(1, bytes_per_sample))


def parse_size(text: str) -> int:
    """Bytes of ``2GiB``, ``2G``, ``512MiB``, ``1.5g``, ``100000`` (plain bytes). K, M, G, T are
    powers of 1024 with or without ``i``/``B`` (as ``ulimit`` and Docker read them)."""
    match = _SIZE.fullmatch(str(text))
    if match is None:
        raise InputError(f"--max-memory: cannot read {text!r} as a size; use bytes or K/M/G/T, e.g. 2GiB or 512M")
    size = float(match[1]) * _UNITS[(match[2] or "").upper()]
    if not 1 <= size < 1 << 70:
        raise InputError(f"--max-memory must be between 1 byte and 1 ZiB, got {text!r}")
    return int(size)


def format_size(size: float) -> str:
    """``1.23 GiB``-style text for a message."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def available_memory() -> int:
    """Memory a new allocation can get now: the OS's available memory (page cache counts as free),
    capped by the container's cgroup v2 limit where one is set."""
    import psutil

    free = psutil.virtual_memory().available
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        used = int((CGROUP / "memory.current").read_text())
    except (OSError, ValueError):
        return free
    return free if limit == "max" else max(0, min(free, int(limit) - used))


# --------------------------------------------------------------------------- the estimate

def _numels(qgraph) -> list[int]:
    from statten_hw.ir.graph import SHAPE

    return [math.prod(qgraph.graph.nodes[n][SHAPE]) for n in qgraph.graph]


def _ssa_scores(qgraph) -> int:
    """Elements of every Spikformer attention node's ``Q·Kᵀ`` per step and sample: ``heads·N²``."""
    from statten_hw.ir.graph import SHAPE
    from statten_hw.quant.quantize import QAttention

    total = 0
    for n in qgraph.graph:
        op = qgraph.qop(n)
        if isinstance(op, QAttention) and op.mode == "SSA":
            tokens = qgraph.graph.nodes[n][SHAPE][0]  # [N, C]
            total += op.heads * tokens * tokens
    return total


def _counter_bytes(qgraph, mapping) -> int:
    """The event network's counters and its hop matrix (module docstring)."""
    from statten_hw.ir.graph import SHAPE

    g = qgraph.graph
    widest = max((len(layer.cores) for layer in mapping.layers), default=1)
    sources = sum(math.prod(g.nodes[u][SHAPE]) for u, _ in g.edges)
    return 4 * (2 * widest + 2) * sources + 8 * mapping.totals.cores ** 2


def simulation_bytes(deployment, samples: int, backend: str = "event", engine: str = "fast") -> int:
    """Conservative peak memory, in bytes, that simulating ``samples`` inputs of ``deployment``
    (`statten_hw.pipeline.prepare`) adds; formulas and calibration in the module docstring."""
    qgraph = deployment.qgraph
    per_value = 8 * deployment.model.config.timesteps * samples  # bytes of one int64 element over the batch
    numels = _numels(qgraph)
    values = per_value * sum(numels)
    if backend == "lava":
        return FIXED_BYTES + 4 * values + _lava_bytes(qgraph, samples, sum(numels))
    if backend == "sanafe":
        return FIXED_BYTES + 4 * values + _sanafe_bytes(deployment.mapping, samples)
    detailed = DETAILED_SYNAPSE_BYTES * _synapses(deployment.mapping) if engine == "detailed" else 0
    return (FIXED_BYTES + 2 * values + 3 * per_value * max(numels) + per_value * _ssa_scores(qgraph)
            + _counter_bytes(qgraph, deployment.mapping) + detailed)


def _synapses(mapping) -> int:
    return sum(layer.synapse_count for layer in mapping.layers)


def _lava_bytes(qgraph, samples: int, numel: int) -> int:
    """Lava's worker processes, their weights and the recorder's buffer (module docstring)."""
    from statten_hw.simulator.lava.run import SAMPLES_PER_RUN
    from statten_hw.simulator.lava.schedule import schedule

    recorder = 8 * min(samples, SAMPLES_PER_RUN) * schedule(qgraph).window * numel
    processes = qgraph.graph.number_of_nodes() + LAVA_EXTRA_PROCESSES
    return LAVA_PROCESS_BYTES * processes + 16 * _lava_weights(qgraph) + 3 * recorder


def _lava_weights(qgraph) -> int:
    """Weights the Lava network holds: a linear on N tokens is one Dense of N² weight blocks
    (`simulator.lava.build`), so it counts N² times."""
    from statten_hw.ir.graph import SHAPE
    from statten_hw.quant.quantize import QLinear

    total = 0
    for n in qgraph.graph:
        op = qgraph.qop(n)
        if getattr(op, "weight", None) is None:
            continue
        shape = qgraph.float_graph.nodes[n][SHAPE]
        tokens = shape[0] if isinstance(op, QLinear) and len(shape) == 2 else 1
        total += tokens * tokens * op.weight.size
    return total


def _sanafe_bytes(mapping, samples: int) -> int:
    """SANA-FE's network and one chip per sample (module docstring)."""
    synapses = _synapses(mapping)
    chip = SANAFE_CORE_BYTES * mapping.target.cores_per_chip + SANAFE_SYNAPSE_BYTES * (synapses + mapping.totals.neurons)
    return SANAFE_NETWORK_SYNAPSE_BYTES * synapses + samples * chip


def default_memory_limit() -> tuple[int, str]:
    """The bytes a run may take when no limit is given, `SAFETY_FRACTION` of the available memory,
    and those words for a message."""
    available = available_memory()
    return int(available * SAFETY_FRACTION), f"{SAFETY_FRACTION:.0%} of the {format_size(available)} available"


def check_memory(estimate: int, limit: int | None) -> None:
    """Raise `ResourceError` when ``estimate`` exceeds ``limit`` (None: `default_memory_limit`)."""
    limit, source = default_memory_limit() if limit is None else (limit, "--max-memory")
    if estimate > limit:
        raise ResourceError(f"this simulation needs an estimated {format_size(estimate)} of memory, more than the "
                            f"limit of {format_size(limit)} ({source}); simulate fewer --samples or raise --max-memory")
