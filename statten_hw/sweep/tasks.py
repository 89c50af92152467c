"""The work of one configuration, as three kinds of Dask task: prepare, evaluate a shard, combine.

``prepare_configuration`` loads, quantizes and maps (`statten_hw.pipeline.prepare`) once per
configuration; ``evaluate_shard`` runs the integer reference (and the simulator) on one slice of
the test samples, so a large N spreads over every worker; ``combine`` adds the shards up into the
configuration's result record, the dict the store keeps and the report reads.

A `StattenError` inside a task (a network that does not fit the target, say) is part of the
result: the same inputs would fail the same way, so it is caught, carried as a `TaskError` and
stored like any result. Anything else is a defect or a lost worker and is left to Dask.
"""
from __future__ import annotations

from dataclasses import dataclass

from statten_hw.errors import StattenError
from statten_hw.reports.schema import TOTAL_FIELDS, model_section

from .config import NO_SIMULATION, Configuration

#: Simulated totals, all sums over the simulated samples (`statten_hw.reports.simulation`), so the
#: shards of a configuration add up to the whole; divided by N they give the figures per inference.
SIMULATED_TOTALS = ("spikes", "sops", "neuron_updates", "cycles", "latency_s", "energy_j")


@dataclass(frozen=True)
class TaskError:
    """A `StattenError` raised inside a task: one line, kept as the configuration's result."""

    message: str


def prepare_configuration(config: Configuration):
    """The configuration's `Deployment` (model, integer graph, mapping), or a `TaskError`."""
    from statten_hw.pipeline import prepare

    try:
        return prepare(config.checkpoint, config.target, block_size=config.block_size, bits=config.bits,
                       dataset=config.dataset, calibration_samples=config.calibration_samples,
                       precision=config.precision)
    except StattenError as err:
        return TaskError(str(err))


def shard_ranges(samples: int, shard_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` slices of ``range(samples)``, each at most ``shard_size`` long."""
    return [(start, min(start + shard_size, samples)) for start in range(0, samples, shard_size)]


def evaluate_shard(deployment, config: Configuration, start: int, stop: int):
    """Integer predictions, and the simulation unless the engine is ``none``, on test samples
    ``[start, stop)``: counts only, so shards add up."""
    from statten_hw.data import load_dataset
    from statten_hw.quant import run_integer
    from statten_hw.simulator import simulate

    if isinstance(deployment, TaskError):
        return deployment
    x, y = load_dataset(config.dataset, split="test")
    x, y = x[start:stop], y[start:stop]
    try:
        run = run_integer(deployment.qgraph, x)
        sim = None if config.engine == NO_SIMULATION else simulate(deployment, x, engine=config.engine)
    except StattenError as err:
        return TaskError(str(err))
    shard = {"n": stop - start, "correct": int((run.predictions == y).sum()),
             "overflows": sum(run.overflows.values()), "inputs_clipped": run.clipped_inputs, "simulated": None,
             "agreeing": None}
    if sim is not None:
        shard["simulated"] = {field: sim.report["totals"][field] for field in SIMULATED_TOTALS}
        shard["agreeing"] = int((sim.predictions == run.predictions).sum())
    return shard


def combine(config: Configuration, deployment, *shards) -> dict:
    """The configuration's result record: static mapping figures, accuracy and simulated totals."""
    failure = next((s for s in (deployment, *shards) if isinstance(s, TaskError)), None)
    if failure is not None:
        return result_record(config, status="error", error=failure.message)
    mapping, simulated = deployment.mapping, config.engine != NO_SIMULATION
    n = sum(s["n"] for s in shards)
    correct = sum(s["correct"] for s in shards)
    totals = _totals(mapping.totals, shards if simulated else None)
    return result_record(
        config, status="ok", model=model_section(deployment.model), backend="event" if simulated else "none",
        totals=totals, per_inference={f: totals[f] / n if simulated else None for f in SIMULATED_TOTALS},
        memory_bytes=totals["synapse_bytes"] + totals["state_bytes"] + totals["buffer_bytes"],
        latency_steps=mapping.schedule.latency_steps, lower_bound_cores=mapping.lower_bound.cores,
        accuracy=correct / n, correct=correct, n=n, integer_overflows=sum(s["overflows"] for s in shards),
        inputs_clipped=sum(s["inputs_clipped"] for s in shards),
        simulation_agreeing=sum(s["agreeing"] for s in shards) if simulated else None)


def _totals(static, shards) -> dict:
    """report.json totals: the mapping's static ones, and the shards' simulated sums (null unsimulated)."""
    totals = {field: None for field in TOTAL_FIELDS}
    totals.update(chips=static.chips, cores=static.cores, neurons=static.neurons, synapse_bytes=static.synapse_bytes,
                  state_bytes=static.state_bytes, buffer_bytes=static.buffer_bytes)
    if shards is not None:
        totals.update({field: sum(s["simulated"][field] for s in shards) for field in SIMULATED_TOTALS})
    return totals


#: The `Configuration` a record is of, first in every record (its status and error follow).
CONFIG_FIELDS = ("key", "label", "checkpoint", "target", "block_size", "bits", "precision", "dataset", "samples",
                 "calibration_samples", "engine", "series")
#: What a configuration measures; all null in the record of a configuration that failed.
MEASURED_FIELDS = ("model", "backend", "totals", "per_inference", "memory_bytes", "latency_steps",
                   "lower_bound_cores", "accuracy", "correct", "n", "integer_overflows", "inputs_clipped",
                   "simulation_agreeing")


def result_record(config: Configuration, status: str, error: str | None = None, **measured) -> dict:
    """A configuration's options, its status and what it measured (`MEASURED_FIELDS`, null unless given).

    ``simulation_agreeing`` counts the samples whose simulated prediction equals the integer
    reference's; anything but ``n`` is a backend defect, and the report lists it."""
    options = {field: getattr(config, field) for field in CONFIG_FIELDS}
    return {**options, "status": status, "error": error, **{field: None for field in MEASURED_FIELDS}, **measured}


#: What the report computes with in a finished configuration's record: numbers, never null.
NUMERIC_FIELDS = ("memory_bytes", "latency_steps", "lower_bound_cores", "accuracy", "correct", "n", "integer_overflows",
                  "inputs_clipped")


def record_problem(record: dict) -> str | None:
    """What a stored record lacks that the sweep report reads, in a few words; None when nothing.
    A record this module wrote (and the run stored with its ``retries``) lacks nothing; a hand edit
    or another version of the tool may."""
    missing = [f for f in (*CONFIG_FIELDS, "status", "error", *MEASURED_FIELDS, "retries") if f not in record]
    if missing:
        return f"no {missing[0]!r} field"
    if record["status"] not in ("ok", "error"):
        return f"status {record['status']!r} is neither 'ok' nor 'error'"
    finished = record["status"] == "ok"
    for section, fields in (("totals", TOTAL_FIELDS), ("per_inference", SIMULATED_TOTALS)):
        value = record[section]
        if (value is not None or finished) and not (isinstance(value, dict) and all(f in value for f in fields)):
            return f"{section!r} is not a table of {', '.join(fields)}"
        if value is not None and (bad := [f for f in fields if not (value[f] is None or _is_number(value[f]))]):
            return f"{section}.{bad[0]} is not a number"
    if finished and (bad := [f for f in NUMERIC_FIELDS if not _is_number(record[f])]):
        return f"{bad[0]!r} is not a number"
    retries = record["retries"]
    if not (isinstance(retries, list) and all(isinstance(r, dict) and isinstance(r.get("task"), str)
                                              and _is_number(r.get("worker_deaths")) for r in retries)):
        return "'retries' is not a list of tasks with their worker deaths"
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
