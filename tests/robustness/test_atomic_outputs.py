"""Outputs are written atomically: an interrupted write or run leaves every previous file whole.

* ``atomic_write_bytes`` interrupted (KeyboardInterrupt) at each of its steps (3 cases): the
  previous file is unchanged and no temporary remains; files get the mode ``open`` would give
  under the same umask (2 umasks).
* ``statten-hw export`` and ``statten-hw map`` run as real processes over a folder holding a
  previous run's outputs, interrupted by SIGINT or SIGTERM as soon as they start writing (a
  temporary file appears or an output is replaced): the process ends without a traceback, no
  temporary file is left, and every file is byte for byte either the previous run's or the
  complete new one (the new ones come from an uninterrupted run of the same command). After
  SIGINT, running the command again gives exactly the uninterrupted outputs.
"""
from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from robust_helpers import popen_cli, scratch_files
from statten_hw.cli import main
from statten_hw.reports.files import atomic_write_bytes


@pytest.mark.parametrize("step", ["open", "fsync", "replace"])
def test_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch, step):
    path = tmp_path / "report.json"
    path.write_bytes(b"previous")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, step, interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new contents")
    monkeypatch.undo()
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_mode_open_gives(tmp_path, umask):
    old = os.umask(umask)
    try:
        with open(tmp_path / "reference", "w"):
            pass
        atomic_write_bytes(tmp_path / "atomic", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "atomic").stat().st_mode == (tmp_path / "reference").stat().st_mode


# ------------------------------------------------------------------ interrupted real runs

def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _stats(folder: Path) -> dict[str, tuple]:
    return {p.name: (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def _writing(out: Path, before: dict, temps_only: bool) -> bool:
    """The run has begun writing: a temporary exists or (unless ``temps_only``) a file was replaced."""
    try:
        return bool(scratch_files(out)) or (not temps_only and _stats(out) != before)
    except FileNotFoundError:  # a temporary vanished between listing and stat
        return True


def interrupt_when_writing(args: list[str], out: Path, sig: int, temps_only: bool = False):
    """Run ``statten-hw *args`` and send ``sig`` the moment it starts writing into ``out``."""
    before = _stats(out)
    proc = popen_cli(*args)
    try:
        while proc.poll() is None and not _writing(out, before, temps_only):
            time.sleep(0.001)
        sent = proc.poll() is None
        if sent:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sent, "the command finished before the signal could be sent"
    return proc.returncode, err


# (previous run's arguments, new run's arguments): the new run must change every output file
RUNS = {
    "export": (["export", "--format", "ir,onnx,nir", "--bits", "8"],
               ["export", "--format", "ir,onnx,nir", "--bits", "4"]),
    "map": (["map", "--target", "loihi2"], ["map", "--target", "layerwise"]),
}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """command -> (previous outputs folder, new outputs by name): uninterrupted in-process runs."""
    data = tmp_path_factory.mktemp("atomic_data") / "small.npz"
    _small_dataset(data)
    made = {}
    for command, (previous, new) in RUNS.items():
        extra = ["--calibration", str(data)] if command == "export" else []
        folders = [tmp_path_factory.mktemp(f"{command}_{kind}") for kind in ("previous", "new")]
        for argv, folder in zip((previous, new), folders):
            assert main([*argv, *extra, "-o", str(folder)]) == 0
        made[command] = (folders[0], _files(folders[1]), extra)
    return made


def _small_dataset(path: Path) -> None:
    """8 digits test samples: calibration and comparison in a second instead of a minute."""
    import numpy as np

    from statten_hw.data import load_digits_split

    x, y = load_digits_split("digits", "test")
    np.savez(path, x=x[:8].numpy(), y=y[:8].numpy())


def _check_whole(out: Path, previous: dict, new: dict, err: str) -> dict:
    assert "Traceback" not in err, err[-3000:]
    assert scratch_files(out) == [], f"left behind: {scratch_files(out)}"
    now = _files(out)
    assert set(now) == set(previous), f"files appeared or vanished: {sorted(set(now) ^ set(previous))}"
    torn = [name for name, data in now.items() if data not in (previous[name], new[name])]
    assert not torn, f"neither the previous nor the new version: {torn}"
    return now


@pytest.mark.parametrize("command", sorted(RUNS))
def test_sigint_leaves_whole_files_and_rerun_is_safe(outputs, tmp_path, command):
    previous_folder, new, extra = outputs[command]
    out = tmp_path / "out"
    shutil.copytree(previous_folder, out)
    args = [*RUNS[command][1], *extra, "-o", str(out)]
    rc, err = interrupt_when_writing(args, out, signal.SIGINT)
    assert rc == 130 and err.strip().endswith("statten-hw: interrupted"), (rc, err[-3000:])
    _check_whole(out, _files(previous_folder), new, err)
    assert main(args) == 0
    assert _files(out) == new


@pytest.mark.parametrize("command", sorted(RUNS))
def test_sigterm_leaves_whole_files_and_no_temporary(outputs, tmp_path, command):
    previous_folder, new, extra = outputs[command]
    out = tmp_path / "out"
    shutil.copytree(previous_folder, out)
    # export: wait for a temporary (nir.write holds one for a while); map: its writes are too short to see
    rc, err = interrupt_when_writing([*RUNS[command][1], *extra, "-o", str(out)], out, signal.SIGTERM,
                                     temps_only=command == "export")
    assert rc > 0, f"killed by signal {-rc}, not a clean exit"
    _check_whole(out, _files(previous_folder), new, err)
