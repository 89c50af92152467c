"""Ctrl-C at a terminal during a sweep: the whole process group gets SIGINT, and only the command
answers it (one line, exit 130); the cluster's worker processes, which ignore it, are shut down."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
from sweep_fixtures import no_stray_processes, tiny  # noqa: F401 (pytest fixtures)


def _workers_running(pid: int, count: int, timeout: float = 120) -> bool:
    """Whether ``count`` Dask worker processes run under ``pid`` within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        if sum("multiprocessing" in " ".join(p.cmdline()) for p in children if p.is_running()) >= count:
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
        assert _workers_running(proc.pid, 2), "the cluster's workers did not start"
        time.sleep(3)  # their preload has run: a worker still starting takes Python's default handler
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to every process of the group
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "statten-hw: interrupted", err[-2000:]
