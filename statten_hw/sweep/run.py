"""Run the configurations of a sweep on Dask: a LocalCluster sized to the machine, or ``--scheduler``.

Each configuration not yet in the store becomes a small task graph: one prepare task, one evaluate
task per shard of test samples, and one combine task. The client waits on the combine tasks with
`distributed.as_completed`. Each result is stored the moment it arrives, and the progress bar
moves one configuration at a time.

Retries are Dask's own. When a worker dies, the scheduler puts the tasks it was running back in
the queue. A task may be on ``distributed.scheduler.allowed-failures`` dead workers (3 by
default); after that it fails with `KilledWorker`. The scheduler counts these deaths per task
(``TaskState.suspicious``). We read that count back before letting go of the task, so the report
names every configuration that was retried. An exception inside a task is not retried: our tasks
are deterministic, so a second run would only raise it again. A `StattenError` is the
configuration's stored result (see `tasks`). Any other exception is reported as a failure and is
not stored, so the next run tries that configuration again. (A finished result that dies with its
worker is recomputed by Dask from its inputs; nothing failed, so that is not counted.)

On a ``--scheduler`` cluster, the scheduler and every worker need statten-hw installed, and the
workers must read the checkpoint, target and data files at the paths given (a shared file system).
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import CancelledError
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from statten_hw.errors import InputError, one_line
from statten_hw.interrupts import deferred_interrupts

from .config import Configuration, check_count
from .store import ResultStore
from .tasks import combine, evaluate_shard, prepare_configuration, shard_ranges

#: Seconds to reach a ``--scheduler`` and to wait for its first worker.
CONNECT_TIMEOUT_S = 10.0
#: Test samples per evaluate task: large N is split into shards run on all workers.
DEFAULT_SHARD_SIZE = 128


@dataclass
class SweepOutcome:
    """What a run did: a result per configuration (stored or computed), in plan order, the keys it
    computed and reused, and the configurations it could not compute (with the reason).

    Each result and each failure lists its ``retries``: the tasks that were on a worker when it
    died, and how many times that happened."""

    results: list[dict] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    """The futures of one configuration: its final combine task, all its futures (held so that the
    scheduler keeps every task's state until its worker deaths are read) and what each key does."""

    config: Configuration
    done: object  # distributed.Future of `combine`
    futures: tuple
    tasks: dict[str, str]


def execute(configs: list[Configuration], out_dir, *, scheduler: str | None = None, workers: int | None = None,
            shard_size: int = DEFAULT_SHARD_SIZE, progress: bool = True, connect_timeout: float = CONNECT_TIMEOUT_S,
            prepare=prepare_configuration) -> SweepOutcome:
    """Compute every configuration of ``configs`` not yet stored under ``out_dir``; return them all.

    ``prepare`` is the prepare task (the real one unless a caller wraps it, e.g. to count runs)."""
    if workers is not None:
        check_count("--workers", workers)
    if workers is not None and scheduler is not None:
        raise InputError("--workers sizes the LocalCluster; with --scheduler the cluster's own workers run the tasks")
    check_count("--shard-size", shard_size)
    store = ResultStore(out_dir)
    found = {c.key: store.load(c.key) for c in configs}
    outcome = SweepOutcome(reused=[k for k, r in found.items() if r is not None])
    pending = list({c.key: c for c in configs if found[c.key] is None}.values())
    with _progress_bar(len(found), len(outcome.reused), progress) as bar:
        if pending:
            with dask_client(scheduler, workers, connect_timeout) as client:
                for job, result, deaths in _run(client, pending, shard_size, prepare):
                    _settle(job, result, deaths, store, found, outcome)
                    bar.update()
    outcome.results = [found[c.key] for c in configs if found[c.key] is not None]
    return outcome


def _settle(job: _Job, result, deaths: dict[str, int], store: ResultStore, found: dict, outcome: SweepOutcome):
    """Store a result (with its retries) the moment it arrives, or record why there is none."""
    retries = [{"task": job.tasks[k], "worker_deaths": n} for k, n in sorted(deaths.items())]
    if isinstance(result, dict):
        found[job.config.key] = store.save({**result, "retries": retries})
        outcome.computed.append(job.config.key)
    else:
        outcome.failed.append({"key": job.config.key, "label": job.config.label, "error": describe_failure(result),
                               "retries": retries})


def _run(client, pending: list[Configuration], shard_size: int, prepare):
    """Submit every pending configuration, then yield ``(job, result or exception, worker deaths)``
    as each completes."""
    from distributed import as_completed

    jobs = {}
    for config in pending:
        job = _submit(client, config, shard_size, prepare)
        jobs[job.done.key] = job
    for done in as_completed([job.done for job in jobs.values()], loop=client.loop):
        job = jobs.pop(done.key)
        deaths = client.run_on_scheduler(_worker_deaths, keys=list(job.tasks))
        yield job, _result_or_error(done), deaths


def _result_or_error(future):
    """The task's result, or the exception it ended with: its own, `KilledWorker`, or a cancellation."""
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - every way a task can end is reported, none is raised here
        return err


def describe_failure(err: BaseException) -> str:
    """One line for the report; a cancellation gets the usual cause, which only the scheduler's log shows."""
    text = one_line(err)
    if isinstance(err, CancelledError):
        text += (" (the scheduler's log says why; often a scheduler or worker whose Python environment "
                 "cannot import statten_hw)")
    return text


def _submit(client, config: Configuration, shard_size: int, prepare) -> _Job:
    """Prepare once, evaluate each shard of samples where a worker is free, combine into one result."""
    tasks = {f"sweep-prepare-{config.key}": "prepare"}
    deployment = client.submit(prepare, config, key=f"sweep-prepare-{config.key}")
    shards = []
    for start, stop in shard_ranges(config.samples, shard_size):
        key = f"sweep-shard-{config.key}-{start}-{stop}"
        tasks[key] = f"samples {start}-{stop}"
        shards.append(client.submit(evaluate_shard, deployment, config, start, stop, key=key))
    key = f"sweep-combine-{config.key}"
    tasks[key] = "combine"
    done = client.submit(combine, config, deployment, *shards, key=key)
    return _Job(config, done, (deployment, *shards, done), tasks)


def _worker_deaths(keys: list[str], dask_scheduler=None) -> dict[str, int]:
    """Runs on the scheduler: how many dead workers each task was running on (0s left out)."""
    counts = {}
    for key in keys:
        task = dask_scheduler.tasks.get(key)
        if task is not None and task.suspicious:
            counts[key] = task.suspicious
    return counts


#: Preload of every local worker: it leaves Ctrl-C to the command (`statten_hw.sweep.worker_setup`).
WORKER_SETUP = "statten_hw.sweep.worker_setup"


@contextmanager
def dask_client(scheduler: str | None, workers: int | None, timeout: float = CONNECT_TIMEOUT_S):
    """A client of ``scheduler`` (which must have a worker), or of a LocalCluster of ``workers``
    single-threaded worker processes (one per CPU by default) that is shut down on exit."""
    from distributed import Client, LocalCluster

    if scheduler is None:
        # Worker deaths are counted and reported by the sweep itself, and a task's error reaches the
        # client: Dask's own log stays quiet (at ERROR level a worker still heartbeating while the
        # cluster shuts down printed a traceback at the end of a successful sweep).
        # No dashboard; the scheduler's health endpoint takes any free port rather than 8787 (which
        # another cluster on this machine may hold).
        with _environment_restored(), ExitStack() as stack:
            with deferred_interrupts(second_stops=True):  # raised where the stack shuts the cluster down
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None, silence_logs=logging.CRITICAL, preload=[WORKER_SETUP],
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}))
            with Client(cluster, set_as_default=False) as client:
                yield client
        return
    client = _connect(scheduler, timeout)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def _environment_restored():
    """Dask's nannies write their workers' settings (``OMP_NUM_THREADS=1``, ``MALLOC_TRIM_THRESHOLD_``,
    ...) into this process's environment before spawning them, and leave them there: every process
    started afterwards (Lava's workers, SANA-FE, a user's own) would inherit one thread. The
    environment is put back when the cluster is gone."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _check_address(scheduler: str) -> None:
    """Refuse a malformed ``--scheduler`` before a `Client` is made: a client whose address does not
    parse is left half-built, and its finalizer prints a traceback 20 s after the error line."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(scheduler)
        if scheme in ("tcp", "tls", "ws", "wss") and not 0 < parse_host_port(location)[1] < 65536:
            raise ValueError("port out of range 1-65535")
    except ValueError as err:
        raise InputError(f"--scheduler {scheduler}: not a Dask scheduler address like tcp://HOST:8786 "
                         f"({one_line(err, 80)})") from None


def _connect(scheduler: str, timeout: float):
    from distributed import Client

    _check_address(scheduler)
    try:
        client = Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({reason})") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        client.close()
        raise InputError(f"--scheduler {scheduler}: no worker joined within {timeout:g} s") from None
    return client


def _progress_bar(total: int, done: int, enabled: bool):
    """A bar over configurations that starts at those already stored (a context manager)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="configurations", unit="cfg", disable=not enabled)
