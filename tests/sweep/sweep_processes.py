"""Processes the sweep tests start: finding what is left of them, and a `dask scheduler` + `dask worker` pair."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import psutil

DASK = Path(sys.executable).with_name("dask")
HERE = Path(__file__).resolve().parent


def descendants() -> dict[int, psutil.Process]:
    """This process's descendants, except multiprocessing's resource tracker (started by the first
    spawned worker, it lives as long as this process does)."""
    return {p.pid: p for p in psutil.Process().children(recursive=True) if "resource_tracker" not in cmdline(p)}


def cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return ""


def survivors(started_after: set[int], timeout: float = 10) -> list[str]:
    """Command lines of descendants not in ``started_after`` still running after ``timeout`` seconds."""
    new = [p for pid, p in descendants().items() if pid not in started_after]
    return [cmdline(p) for p in psutil.wait_procs(new, timeout=timeout)[1]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def external_cluster(workers: int = 1):
    """``dask scheduler`` and ``dask worker`` (``workers`` nannies, each with its worker process) as
    separate processes on 127.0.0.1, with this folder on their path; yields the scheduler address once
    every worker has joined; stops them all on exit (SIGTERM, then SIGKILL after 30 s)."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))  # for `sweep_tasks`
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": path})
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], **quiet)]
    try:
        procs.append(subprocess.Popen([DASK, "worker", address, "--nworkers", str(workers), "--nthreads", "1",
                                       "--no-dashboard", "--host", "127.0.0.1"], **quiet))
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):  # workers first, so none outlives its scheduler
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
