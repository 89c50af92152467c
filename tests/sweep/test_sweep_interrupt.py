"""Ctrl-C at a terminal during a sweep: the whole process group gets SIGINT, and only the command
answers it (one line, exit 130); the cluster's worker processes, which ignore it, are shut down."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sweep_fixtures import no_stray_processes, tiny  # noqa: F401 (pytest fixtures)


def _ignores_sigint(process: psutil.Process) -> bool:
    """Whether ``process`` ignores SIGINT (its preload has run), from the kernel's ``SigIgn`` mask."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(mask >> (signal.SIGINT - 1) & 1)


def _workers_ready(pid: int, count: int, timeout: float = 120) -> bool:
    """Whether ``count`` Dask worker processes under ``pid`` have run their preload (they ignore SIGINT)
    within ``timeout`` seconds. A fixed wait after they appeared raced on a busy machine: a worker still
    importing took the signal and the cluster's start failed with tracebacks (the limit the README states)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        workers = [p for p in children if p.is_running() and "--multiprocessing-fork" in " ".join(p.cmdline())]
        if sum(_ignores_sigint(p) for p in workers) >= count:
            return True
        time.sleep(0.2)
    return False


def test_ctrl_c_during_a_sweep_is_one_line_and_leaves_no_process(tiny, tmp_path, no_stray_processes):
    """Each worker printed its own KeyboardInterrupt traceback before (63 lines; review)."""
    ckpt, data = tiny
    proc = subprocess.Popen(
        [sys.executable, "-m", "statten_hw.cli", "sweep", str(ckpt), "--dataset", str(data), "-B", "1,2,4",
         "--targets", "loihi2,layerwise,paper45nm", "--bits", "4,6,8", "--workers", "2", "--no-progress", "-o", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert _workers_ready(proc.pid, 2), "the cluster's workers did not start"
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to every process of the group
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "statten-hw: interrupted", err[-2000:]


@pytest.fixture
def terminal_sigint():
    """Python's own Ctrl-C handler, as in a command started from a terminal: a test run started in the
    background (``make test &``, some CI runners) inherits SIGINT ignored, and an ignored SIGINT is
    meant to stay ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler has run


def test_a_held_interrupt_is_raised_at_the_end_and_a_second_one_at_once(terminal_sigint):
    """`deferred_interrupts` holds Ctrl-C while a sweep's cluster starts (the tests below): a second
    Ctrl-C does not wait there, a start that then fails ends as interrupted, and Python's handler is
    back after."""
    from statten_hw.interrupts import deferred_interrupts

    steps = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        _ctrl_c()
        steps.append("went on")  # nothing raised inside the block
    assert steps == ["went on"]
    with deferred_interrupts():
        pass  # no Ctrl-C: nothing raised
    with pytest.raises(KeyboardInterrupt), deferred_interrupts(second_stops=True):
        _ctrl_c()
        _ctrl_c()  # a second one does not wait for the block's end
        pytest.fail("the second Ctrl-C was held")
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        _ctrl_c()
        raise RuntimeError("Nanny failed to start.")  # what a worker killed by the same Ctrl-C causes
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_sigint_stays_ignored():
    from statten_hw.interrupts import deferred_interrupts

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_interrupts():
            _ctrl_c()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_sweep_client_shuts_a_cluster_down_that_a_ctrl_c_interrupted_while_starting(monkeypatch,
                                                                                         terminal_sigint):
    import distributed

    from statten_hw.sweep.run import dask_client

    events = []

    class StartingCluster:
        def __init__(self, **kwargs):
            _ctrl_c()  # arrives in the middle of the start
            events.append("started")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            events.append("shut down")

    monkeypatch.setattr(distributed, "LocalCluster", StartingCluster)
    monkeypatch.setattr(distributed, "Client", lambda *a, **k: pytest.fail("a client of an interrupted cluster"))
    with pytest.raises(KeyboardInterrupt), dask_client(None, 1):
        pytest.fail("the sweep ran on")
    assert events == ["started", "shut down"]
