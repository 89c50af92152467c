"""Bad sweep input: one-line StattenError naming the culprit, before any task starts or file is written."""
from __future__ import annotations

import argparse
import json

import pytest
from sweep_processes import free_port

from statten_hw.errors import CheckpointError, InputError, TargetError
from statten_hw.sweep import add_sweep_parser
from sweep_fixtures import no_stray_processes, tiny  # noqa: F401 (pytest fixtures)


def _args(tiny, out, *extra: str, workers: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_sweep_parser(parser.add_subparsers())
    ckpt, data = tiny
    return parser.parse_args(["sweep", str(ckpt), "--dataset", str(data), "--calibration-samples", "8",
                              *(["--workers", "2"] if workers else []), "--no-progress", "-o", str(out), *extra])


CASES = {
    "unknown target": (["--targets", "loihi2,loihi9"], TargetError, r"loihi9.*no such file and not a built-in"),
    "B does not divide T": (["-B", "1,3"], InputError, r"block size 3: T = 4 is not divisible by the block size B = 3"),
    "B not a number": (["-B", "1,two"], InputError, r"--block-sizes takes integers"),
    "bits too wide": (["--bits", "8,17"], InputError, r"--bits 17: weight_bits must be an int in 1\.\.16"),
    "bits zero": (["--bits", "0"], InputError, r"--bits 0: weight_bits must be an int in 1\.\.16"),
    "no target": (["--targets", ","], InputError, r"--targets: give at least one target"),
    "no samples": (["--samples", "0"], InputError, r"--samples must be >= 1"),
    "no workers": (["--workers", "0"], InputError, r"--workers must be >= 1"),
    "empty shards": (["--shard-size", "0"], InputError, r"--shard-size must be >= 1"),
    "workers for another cluster": (["--scheduler", "tcp://127.0.0.1:1"], InputError,
                                    r"--workers sizes the LocalCluster"),
    "unknown engine": (["--engine", "exact"], InputError, r"--engine must be one of fast, detailed, none, got 'exact'"),
    "unknown precision": (["--precision", "graph,chip"], InputError,
                          r"--precision must be one of graph, target, got 'chip'"),
    "bits beyond the target's": (["--targets", "layerwise", "--bits", "8,12", "--precision", "target"], InputError,
                                 r"--bits 12: layerwise stores 8-bit weights; quantizing for its formats takes"),
    "data of another shape": (["--dataset", "digits"], InputError, r"data samples have shape \[1, 8, 8\]"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_before_anything_runs(tiny, tmp_path, case):
    extra, error, message = CASES[case]
    out = tmp_path / "out"
    args = _args(tiny, out, *extra)
    with pytest.raises(error, match=message) as info:
        args.func(args)
    assert "\n" not in str(info.value)
    assert not out.exists()


def test_missing_checkpoint(tiny, tmp_path):
    args = _args(tiny, tmp_path / "out")
    args.checkpoints = [str(tmp_path / "nope.pth")]
    with pytest.raises(CheckpointError, match="nope.pth: no such file"):
        args.func(args)


def test_unreachable_scheduler(tiny, tmp_path, no_stray_processes):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    out = tmp_path / "out"
    args = _args(tiny, out, "-B", "2", "--scheduler", address, "--connect-timeout", "1", workers=False)
    with pytest.raises(InputError, match=f"--scheduler {address}: cannot reach the Dask scheduler") as info:
        args.func(args)
    assert "\n" not in str(info.value)
    assert not (out / "configurations").exists() and not (out / "report.json").exists()


def test_scheduler_without_workers(tiny, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        args = _args(tiny, tmp_path / "out", "-B", "2", "--scheduler", cluster.scheduler_address,
                     "--connect-timeout", "1", workers=False)
        with pytest.raises(InputError, match="no worker joined within 1 s"):
            args.func(args)



def test_failed_configurations_end_the_command_with_an_error_after_the_report(tiny, tmp_path, monkeypatch):
    from statten_hw.sweep import SweepFailed, SweepOutcome, command

    def execute(configs, out_dir, **_):
        return SweepOutcome(failed=[{"key": c.key, "label": c.label, "error": "KilledWorker: k", "retries": []}
                                    for c in configs])

    monkeypatch.setattr(command, "execute", execute)
    args = _args(tiny, tmp_path, "-B", "2")
    with pytest.raises(SweepFailed, match=r"^2 of 2 configuration\(s\) failed \(first: tiny.pth B=2 loihi2 8-bit: "
                                          r"KilledWorker: k\); finished ones are stored in "):
        args.func(args)
    assert json.loads((tmp_path / "report.json").read_text())["failed"][0]["error"] == "KilledWorker: k"


@pytest.mark.parametrize("address", ["foo", "tcp://localhost", "localhost:8786x", "tcp://127.0.0.1:99999"])
def test_malformed_scheduler_address_is_one_line_and_nothing_else(tiny, tmp_path, address):
    """In a process of its own: a half-built Dask client printed a traceback after the error line, when
    it was collected (20 s later)."""
    import subprocess
    import sys

    ckpt, data = tiny
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "statten_hw", "sweep", str(ckpt), "--dataset", str(data),
                           "--no-progress", "--scheduler", address, "-o", str(out)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"statten-hw: error: --scheduler {address}: not a Dask scheduler address like tcp://HOST")
    assert not out.exists()


def test_labels_beyond_the_models_classes(tiny, tmp_path):
    import numpy as np

    from statten_hw.data import load_dataset
    from statten_hw.models import load_checkpoint

    ckpt, data = tiny
    x, y = load_dataset(str(data))
    classes = load_checkpoint(ckpt).config.num_classes
    np.savez(tmp_path / "other_task.npz", x=x.numpy(), y=np.full(len(y), classes))
    args = _args(tiny, tmp_path / "out", "--dataset", str(tmp_path / "other_task.npz"))
    with pytest.raises(InputError, match=rf"other_task.npz: label {classes} is beyond the model's {classes} classes"):
        args.func(args)
    assert not (tmp_path / "out").exists()


def test_a_target_that_costs_nothing_is_named_once(capsys):
    """sanafe:truenorth sets every cost to 0: its configurations' 0 J and 0 cycles are not estimates."""
    from types import SimpleNamespace

    from statten_hw.sweep.command import _warn_uncosted

    _warn_uncosted([SimpleNamespace(target=t) for t in ("loihi2", "sanafe:truenorth", "sanafe:truenorth")])
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: sanafe:truenorth gives every timing and every energy cost as 0")


@pytest.mark.parametrize("seconds", ["inf", "nan", "-1", "0", "1e30", "abc"])
def test_connect_timeout_beyond_sense_is_refused_by_the_parser(tiny, tmp_path, capsys, seconds):
    """inf and nan were tracebacks from Dask, 1e30 hung past Ctrl-C, -1 got Dask's garbled message (review)."""
    with pytest.raises(SystemExit) as info:
        _args(tiny, tmp_path / "out", "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", seconds)
    assert info.value.code == 2
    assert f"argument --connect-timeout: '{seconds}'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
