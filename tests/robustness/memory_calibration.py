"""Measured peak memory of simulations next to `statten_hw.resources.simulation_bytes`.

    python tests/robustness/memory_calibration.py [CASE ...]     # one JSON line per case

Each case runs in a fresh process (this script, ``--one CASE``): the deployment is prepared, freed
heap is handed back to the OS (``malloc_trim``), the kernel's peak-RSS mark is reset
(``/proc/self/clear_refs``), then the run simulates and writes its report. *measured* is the peak
RSS above the RSS just before the run, plus the peak private memory (USS) of child processes
(Lava's workers), sampled every 50 ms. ``test_memory_guard.py`` runs one case; the numbers in
``tests/robustness/README.md`` come from running them all.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#: case -> (model, target, backend, engine, samples). "embedded": the default digits model;
#: "synthetic": a random STAtten (depth 2, dim 128, 32 px, 64 tokens); "spikformer": its Spikformer twin;
#: "sdt-8-768": the benchmarks' SDT-8-768 at 224 px with synthetic weights (benchmarks/sdt_model.py).
CASES = {
    "embedded-fast-1": ("embedded", "loihi2", "event", "fast", 1),
    "embedded-fast-64": ("embedded", "loihi2", "event", "fast", 64),
    "embedded-fast-450": ("embedded", "loihi2", "event", "fast", 450),
    "embedded-detailed-64": ("embedded", "loihi2", "event", "detailed", 64),
    "embedded-lava-16": ("embedded", "loihi2", "lava", "fast", 16),
    "embedded-sanafe-4": ("embedded", "sanafe:loihi", "sanafe", "fast", 4),
    "synthetic-fast-16": ("synthetic", "paper45nm", "event", "fast", 16),
    "spikformer-fast-16": ("spikformer", "paper45nm", "event", "fast", 16),
    "sdt-8-768-fast-1": ("sdt-8-768", "paper45nm", "event", "fast", 1),  # minutes and some 5 GB
}


def _status(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text())[1]) * 1024


class _ChildPeak:
    """Peak summed USS of this process's descendants, sampled in a thread."""

    def __init__(self):
        import psutil

        self.me, self.peak, self.running = psutil.Process(), 0, True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        import psutil

        while self.running:
            total = 0
            for child in self.me.children(recursive=True):
                try:
                    total += child.memory_full_info().uss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return self.peak


def _deployment(model: str, target: str):
    from statten_hw.pipeline import prepare

    if model == "embedded":
        return prepare(None, target)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.sdt_model import deploy, images, sdt_8_768
    from statten_hw.models import ModelConfig
    from statten_hw.targets import load_target

    if model == "sdt-8-768":
        return deploy(sdt_8_768(), load_target(target), images(2))
    family, attention = ("spikformer", "SSA") if model == "spikformer" else ("statten", "STAtten")
    config = ModelConfig(family=family, attention=attention, depth=2, dim=128, heads=8, timesteps=4,
                         block_size=2 if attention == "STAtten" else 1, img_size=32, in_channels=3, num_classes=10,
                         pooling_stat="0011")
    return deploy(sdt_8_768(config), load_target(target), images(8, config))


def _inputs(deployment, samples: int):
    from statten_hw.data import load_dataset

    if deployment.dataset == "synthetic":
        from benchmarks.sdt_model import images

        return images(samples, deployment.model.config, seed=2)
    x, _ = load_dataset(deployment.dataset, split="test")
    return x.repeat(-(-samples // len(x)), *[1] * (x.dim() - 1))[:samples] if samples > len(x) else x[:samples]


def _simulate(deployment, x, backend: str, engine: str) -> None:
    import argparse

    from statten_hw.cli import BACKENDS
    from statten_hw.reports.simulation import write_simulation_report
    from statten_hw.simulator import simulate

    if backend == "event":
        report = simulate(deployment, x, engine=engine).report
    else:
        report = BACKENDS[backend](deployment, x, argparse.Namespace(sanafe_timing="detailed"))
    with tempfile.TemporaryDirectory() as out:
        write_simulation_report(out, report)


def measure(case: str) -> dict:
    """Run ``case`` in this process; its estimate and measured peak (module docstring), in bytes."""
    from statten_hw.resources import simulation_bytes

    model, target, backend, engine, samples = CASES[case]
    deployment = _deployment(model, target)
    x = _inputs(deployment, samples)
    if backend == "lava":
        import statten_hw.simulator.lava.run  # noqa: F401  (Lava's import is not part of the run)
    estimate = simulation_bytes(deployment, samples, backend, engine)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    children = _ChildPeak()
    began = time.perf_counter()
    _simulate(deployment, x, backend, engine)
    measured = _status("VmHWM") - before + children.stop()
    return {"case": case, "samples": samples, "measured": measured, "estimate": estimate,
            "ratio": round(estimate / measured, 2), "seconds": round(time.perf_counter() - began, 1)}


#: Settings a caller's environment may carry (a Dask cluster or CI sets them) that shrink a run's
#: memory: one OpenMP/BLAS thread needs less scratch. Measurements run without them, as a user's
#: default run, whose peak the estimate must cover.
_THREAD_AND_ALLOCATOR_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                  "MALLOC_TRIM_THRESHOLD_")


def measure_in_subprocess(case: str, timeout: float = 600) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_AND_ALLOCATOR_SETTINGS}
    proc = subprocess.run([sys.executable, __file__, "--one", case], capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(measure(sys.argv[2])))
    else:
        for name in sys.argv[1:] or CASES:
            row = measure_in_subprocess(name)
            print(json.dumps({**row, "measured_mib": round(row["measured"] / 2**20, 1),
                              "estimate_mib": round(row["estimate"] / 2**20, 1)}), flush=True)
