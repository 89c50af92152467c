"""Prepare tasks wrapped for tests: one that leaves a marker per run (to count executions on the
workers), and one that SIGKILLs its own worker process once (to prove Dask's retry is reported).

Dask pickles the wrappers by reference, so the scheduler and the workers must import this module:
a LocalCluster's spawned workers inherit this process's ``sys.path``; `sweep_processes` starts
external ones with this folder on ``PYTHONPATH``. The wrappers call the real `prepare_configuration`.
"""
from __future__ import annotations

import os
import signal
import uuid
from functools import partial
from pathlib import Path

from statten_hw.sweep.tasks import prepare_configuration


def _counting_prepare(markers: str, config):
    Path(markers, f"{config.key}.{uuid.uuid4().hex}").touch()
    return prepare_configuration(config)


def _killing_prepare(markers: str, guard: str, victim: str, config):
    if config.key == victim:
        try:
            Path(guard).touch(exist_ok=False)  # only the first run of the victim gets here
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return _counting_prepare(markers, config)


def counting_prepare(markers: Path):
    """The real prepare task, leaving one file in ``markers`` per execution (named by the key)."""
    markers.mkdir(parents=True, exist_ok=True)
    return partial(_counting_prepare, str(markers))


def killing_prepare(markers: Path, guard: Path, victim: str):
    """Like `counting_prepare`, but the first run of configuration ``victim`` kills its worker."""
    markers.mkdir(parents=True, exist_ok=True)
    return partial(_killing_prepare, str(markers), str(guard), victim)


def executions(markers: Path) -> dict[str, int]:
    """How many times the prepare task ran, per configuration key."""
    counts: dict[str, int] = {}
    for marker in markers.iterdir():
        key = marker.name.split(".")[0]
        counts[key] = counts.get(key, 0) + 1
    return counts


def _failing_prepare(markers: str, victim: str, config):
    if config.key == victim:
        raise RuntimeError("a defect in the prepare task")
    return _counting_prepare(markers, config)


def failing_prepare(markers: Path, victim: str):
    """Like `counting_prepare`, but configuration ``victim`` raises a non-StattenError (a defect)."""
    markers.mkdir(parents=True, exist_ok=True)
    return partial(_failing_prepare, str(markers), victim)
