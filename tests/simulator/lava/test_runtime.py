"""The Lava runtime is always stopped: after a run, a process failing mid-run, and Ctrl-C."""
from __future__ import annotations

import time

import numpy as np
import psutil
import pytest

from lava_nets import tiny_qgraph
from statten_hw.quant import run_integer
from statten_hw.simulator.lava import _compat

pytestmark = [pytest.mark.lava,
              pytest.mark.skipif(not _compat.HAS_LAVA, reason=f"lava-nc not importable: {_compat.LAVA_IMPORT_ERROR!r}")]


def _children() -> set[int]:
    """Child processes of this test process, but multiprocessing's lifelong resource tracker."""
    return {p.pid for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline())}


def _wait_gone(before: set[int], seconds: float = 5.0) -> set[int]:
    deadline = time.monotonic() + seconds
    while (left := _children() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_a_normal_run_is_exact_and_leaves_no_process_behind():
    from statten_hw.simulator.lava.run import run_lava

    qgraph, x = tiny_qgraph()
    before = _children()
    run = run_lava(qgraph, x)
    np.testing.assert_array_equal(run.spikes["lif"], run_integer(qgraph, x).values["lif"].numpy())
    np.testing.assert_array_equal(run.logits_int, run_integer(qgraph, x).logits_int.numpy())
    assert not _wait_gone(before)


def test_a_process_failing_mid_run_raises_one_line_and_stops_everything(monkeypatch):
    from statten_hw.simulator.lava import processes
    from statten_hw.simulator.lava.run import run_lava
    from statten_hw.simulator.lava.runtime import LavaRunError

    original = processes.PyMeanModel.run_spk

    def failing(self):
        if self.time_step == 3:
            raise RuntimeError("injected failure")
        original(self)

    monkeypatch.setattr(processes.PyMeanModel, "run_spk", failing)  # forked actors inherit it
    qgraph, x = tiny_qgraph()
    before = _children()
    began = time.monotonic()
    with pytest.raises(LavaRunError, match="RuntimeError: injected failure") as info:
        run_lava(qgraph, x)
    assert "\n" not in str(info.value)
    assert time.monotonic() - began < 60  # Lava alone would wait forever for the failed process
    assert not _wait_gone(before)


def test_a_stuck_process_is_given_up_and_stopped(monkeypatch):
    from statten_hw.simulator.lava import processes, runtime
    from statten_hw.simulator.lava.run import run_lava
    from statten_hw.simulator.lava.runtime import LavaRunError

    def stuck(self):
        time.sleep(3600)  # a deadlock, as a torch kernel after fork once caused

    monkeypatch.setattr(processes.PyMeanModel, "run_spk", stuck)
    monkeypatch.setattr(runtime, "RUN_FLOOR_S", 2.0)
    monkeypatch.setattr(runtime, "STEP_LIMIT_S", 0.0)
    qgraph, x = tiny_qgraph()
    before = _children()
    with pytest.raises(LavaRunError, match="got no answer within 2 s: a Lava process is stuck"):
        run_lava(qgraph, x)
    assert not _wait_gone(before)


def test_ctrl_c_mid_run_stops_everything(monkeypatch):
    from statten_hw.simulator.lava import runtime
    from statten_hw.simulator.lava.run import run_lava

    def interrupted(session, steps):  # Ctrl-C arrives while the network runs
        session.root.run(condition=runtime.lava.RunSteps(num_steps=steps, blocking=False))
        raise KeyboardInterrupt

    monkeypatch.setattr(runtime.LavaSession, "run", interrupted)
    qgraph, x = tiny_qgraph()
    before = _children()
    with pytest.raises(KeyboardInterrupt):
        run_lava(qgraph, x)
    assert not _wait_gone(before)
