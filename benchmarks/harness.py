"""What every benchmark shares: where and how a figure was measured, paired timings, peak memory, results.

A timing on a shared machine means little alone, so every figure here is a *ratio* of two things timed
in the same run, interleaved (A, B, A, B, ...): both see the same load. Each is the median of several
repeats after one warm-up; wall time decides, process CPU time is kept beside it. Every result file
records the machine, the versions, the command and the load average before and after.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from statten_hw.reports.files import atomic_write_bytes, write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def parser(doc: str, repeats: int | None, threads: int | None | bool = None) -> argparse.ArgumentParser:
    """The options every benchmark takes: repeats, torch threads and the result folder. ``repeats``:
    the default (None: no option, the benchmark times nothing). ``threads``: the default thread count
    (None: torch's own, one per core; False: no option, the benchmark sweeps thread counts itself)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    if repeats is not None:
        p.add_argument("--repeats", type=int, default=repeats, help="timed repeats per measurement (median taken)")
    if threads is not False:
        p.add_argument("--threads", type=int, default=threads,
                       help=f"torch threads (default: {threads or 'torch default, one per core'})")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON and PNG results")
    return p


def set_threads(threads: int | None) -> int:
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    """The machine and software a figure was measured with."""
    import numpy

    import statten_hw

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": _cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "memory_bytes": _memory_bytes(), "gpu": gpu, "torch_threads": torch.get_num_threads(),
            "os": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "statten_hw_from": str(Path(statten_hw.__file__).parent),
            "git_commit": _git("rev-parse", "HEAD"),
            "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no"))}


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: how contended the machine's cores were."""
    return [round(x, 2) for x in os.getloadavg()]


def paired(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, dict]:
    """Time each function ``repeats`` times, interleaved, after ``warmup`` untimed rounds.

    Returns per name ``{"wall_s": [...], "cpu_s": [...], "median_s", "median_cpu_s"}``."""
    out = {name: {"wall_s": [], "cpu_s": []} for name in fns}
    for r in range(warmup + repeats):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            if r >= warmup:
                out[name]["wall_s"].append(time.perf_counter() - w)
                out[name]["cpu_s"].append(time.process_time() - c)
    for t in out.values():
        t["median_s"], t["median_cpu_s"] = statistics.median(t["wall_s"]), statistics.median(t["cpu_s"])
    return out


def ratio(timings: dict[str, dict], num: str, den: str) -> dict:
    """``num / den``: the median of the per-repeat ratios (each pair timed back to back) and, on CPU
    time, the ratio of the medians."""
    per = [a / b for a, b in zip(timings[num]["wall_s"], timings[den]["wall_s"])]
    return {"median": statistics.median(per), "per_repeat": per,
            "cpu_ratio_of_medians": timings[num]["median_cpu_s"] / timings[den]["median_cpu_s"]}


def agreement(a, b) -> dict:
    """Spikes, logits and counts of two simulations (`statten_hw.simulator.simulate`) of the same input,
    field by field: engines, devices and code versions must all agree exactly."""
    spikes = all(torch.equal(a.spikes[k].cpu(), b.spikes[k].cpu()) for k in a.spikes)
    return {"spikes_equal": spikes, "logits_equal": torch.equal(a.logits_int.cpu(), b.logits_int.cpu()),
            "count_fields_differing": a.counts.equal(b.counts)}


def identical(check: dict) -> bool:
    """Whether an `agreement` found no difference at all."""
    return check["spikes_equal"] and check["logits_equal"] and not check["count_fields_differing"]


def peak_rss_bytes() -> int:
    """Peak resident memory of this program since it started (Linux ``VmHWM``). Not ``ru_maxrss``:
    a child process counts its parent's memory at ``fork`` there, so a small pipeline started from a
    large benchmark process would report the parent's size."""
    try:
        return _status_kib("VmHWM") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak resident memory added while the ``with`` body runs, in bytes (``.extra``), read from Linux's
    ``VmHWM`` after resetting it through ``/proc/self/clear_refs``; None where that is unavailable."""

    def __enter__(self):
        self.extra = None
        try:
            Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS to the current RSS
            self.before = _status_kib("VmRSS")
        except OSError:
            self.before = None
        return self

    def __exit__(self, *exc):
        if self.before is not None:
            self.extra = (_status_kib("VmHWM") - self.before) * 1024


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {key}")


def run_child(argv: list[str], timeout_s: float | None = None, env: dict[str, str] | None = None) -> dict:
    """Run ``python argv`` in a child process (``env`` added to this one's): exit code (None when
    killed after ``timeout_s``), wall time and stdout; stderr passes through. A child reports its own
    memory (`peak_rss_bytes`)."""
    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              timeout=timeout_s, env={**os.environ, **(env or {})})
        code, stdout, timed_out = proc.returncode, proc.stdout, False
    except subprocess.TimeoutExpired as err:
        code, timed_out = None, True
        stdout = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
    return {"returncode": code, "wall_s": time.perf_counter() - t, "timed_out": timed_out, "stdout": stdout}


def command() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def write_result(folder: Path, name: str, doc: dict, load_before: list[float]) -> Path:
    """``folder/name.json`` with the machine, the command and the load around the measurement."""
    doc = {**doc, "benchmark": name, "command": command(), "machine": machine(),
           "load_average": {"before": load_before, "after": load_average()},
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = write_json(Path(folder) / f"{name}.json", _plain(doc))
    print(f"wrote {path}")
    return path


def _plain(x):
    """JSON-ready: numpy scalars and arrays to Python numbers and lists."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float):
        return float(f"{x:.6g}")  # six significant digits: a slope of 3e-7 s per event must survive
    return x


def save_png(fig, path: Path) -> Path:
    """A matplotlib figure as PNG, written atomically; closes the figure."""
    import io

    from statten_hw.reports.html import pyplot

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    print(f"wrote {path}")
    return path
