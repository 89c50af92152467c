"""The same inputs and options give byte-identical reports, in separate processes.

Each command runs twice as a real process, with different ``PYTHONHASHSEED`` values (set and dict
iteration orders then differ), into two folders; every file they write, report.json included, must
be byte-identical. 2 runs x 2 processes: ``map`` over two block sizes on the temporal-digits
model, ``energy`` on rates measured on 16 samples.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from statten_hw.defaults import seq_checkpoint


def _copy(path, tmp):
    """Outside the package folder, so map skips the accuracy column (one test-set pass per B)."""
    copy = tmp / path.name
    copy.write_bytes(path.read_bytes())
    return copy


RUNS = {
    "map": lambda tmp: ["map", str(_copy(seq_checkpoint(2), tmp)), "-B", "1,2", "--target", "layerwise"],
    "energy": lambda tmp: ["energy", "--samples", "16"],
}


def _run(args, out, hash_seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-m", "statten_hw.cli", *args, "-o", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("case", sorted(RUNS))
def test_two_processes_write_identical_bytes(tmp_path, case):
    args = RUNS[case](tmp_path)
    first, second = tmp_path / "first", tmp_path / "second"
    _run(args, first, "1")
    _run(args, second, "2")
    names = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(second)) for p in second.rglob("*") if p.is_file())
    assert any(name.endswith("report.json") for name in names)
    differ = [n for n in names if (first / n).read_bytes() != (second / n).read_bytes()]
    assert not differ, f"differ between runs: {differ}"
