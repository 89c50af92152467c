"""Outputs are written atomically: an interrupted write or run leaves every previous file whole.

* ``atomic_write_bytes`` interrupted (KeyboardInterrupt) at each of its steps (3 cases): the
  previous file is unchanged and no temporary remains; files written by it and by ``export_nir``
  (h5py creates that file) get the mode ``open`` would give under the same umask (2 umasks).
* ``write_report_folder`` with Ctrl-C just after its staging folder is made (the previous report
  stays, no staging folder) and just after its first file moved into place (the move completes,
  then the interrupt is raised: one run's report, never two runs' files side by side).
* ``statten-hw export`` and ``statten-hw map`` run as real processes over a folder holding a
  previous run's outputs, interrupted by SIGINT or SIGTERM as soon as they start writing (a
  temporary file appears or an output is replaced): the process ends without a traceback, no
  temporary file is left, and every file is byte for byte either the previous run's or the
  complete new one (the new ones come from an uninterrupted run of the same command). After
  SIGINT, running the command again gives exactly the uninterrupted outputs.
* ``statten-hw simulate`` (the embedded model; the event backend's detailed engine on 100
  samples, and Lava on 48) as a real process over a previous run's reports, interrupted while it
  simulates (the engine's progress bar is up; all Lava worker processes are up): SIGINT to the process group, as
  a terminal's Ctrl-C, and SIGTERM to the process alone, as ``kill``. It exits with 130 and
  ``statten-hw: interrupted``, with no traceback (Lava's workers included), the previous reports
  byte-identical, no temporary file, and no child process left running. An interrupt raised
  where Python ignores exceptions (an at-fork handler, a ``__del__``) is raised again.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from robust_helpers import default_sigint, popen_cli, scratch_files
from statten_hw.cli import main
from statten_hw.export.nir_export import export_nir
from statten_hw.reports.files import atomic_write_bytes, write_report_folder


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


@pytest.fixture
def sigint_raises():
    """Ctrl-C as Python's default handler takes it (``KeyboardInterrupt``), whatever the runner set."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _report_files(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_interrupt_just_after_the_staging_folder_is_made_leaves_the_previous_report(tmp_path, monkeypatch,
                                                                                     sigint_raises):
    """Ctrl-C between making the staging folder and entering the block that removes it (the moment
    the CLI test aims at, and once hit) left the folder behind."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_bytes(b"previous")
    real_mkdir = Path.mkdir

    def mkdir_then_ctrl_c(self, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        if self.name.startswith(".statten-hw."):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Path, "mkdir", mkdir_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        write_report_folder(out, {"cores.csv": [{"id": 0}]}, "# new", "<p>new</p>", {"new": True})
    assert _report_files(out) == {"report.json": b"previous"}


def test_interrupt_while_the_new_files_move_in_completes_the_move(tmp_path, monkeypatch, sigint_raises):
    """Ctrl-C after the first file moved into place: the rest follow, then the interrupt is raised,
    so the folder holds one run's report, not a new CSV beside the previous report.json."""
    out = tmp_path / "out"
    write_report_folder(out, {"cores.csv": [{"id": 0}]}, "# old", "<p>old</p>", {"new": False})
    real_replace = os.replace

    def replace_then_ctrl_c(src, dst):
        real_replace(src, dst)
        if Path(dst).parent == out:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        write_report_folder(out, {"cores.csv": [{"id": 1}]}, "# new", "<p>new</p>", {"new": True})
    monkeypatch.undo()
    expected = tmp_path / "expected"
    write_report_folder(expected, {"cores.csv": [{"id": 1}]}, "# new", "<p>new</p>", {"new": True})
    assert _report_files(out) == _report_files(expected)


@functools.cache
def _small_qgraph():
    import sys

    from statten_hw.ir import lower
    from statten_hw.quant import quantize

    sys.path.insert(0, str(Path(__file__).parents[1] / "ir"))
    from ir_nets import small_input, small_model

    model = small_model("statten")
    return quantize(lower(model), small_input(model))


WRITERS = {  # every way an output file is created: bytes (reports, ONNX, IR) and NIR (h5py creates the file)
    "atomic_write_bytes": lambda path: atomic_write_bytes(path, b"x"),
    "export_nir": lambda path: export_nir(_small_qgraph(), path),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("umask", [0o022, 0o077], ids=lambda mask: f"umask{mask:03o}")
def test_written_files_get_the_mode_open_gives(tmp_path, umask, writer):
    old = os.umask(umask)
    try:
        with open(tmp_path / "reference", "w"):
            pass
        WRITERS[writer](tmp_path / "written")
    finally:
        os.umask(old)
    assert (tmp_path / "written").stat().st_mode == (tmp_path / "reference").stat().st_mode
    assert scratch_files(tmp_path) == []


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


# -------------------------------------------------------------- interrupted simulations

def _drain(stream, into: bytearray) -> None:
    """Read a pipe as it fills (tqdm writes its bars without newlines) until EOF."""
    while chunk := os.read(stream.fileno(), 4096):
        into += chunk


def _descendants(pid: int) -> list:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def interrupt_while_simulating(args: list[str], sig: int, ready):
    """Run ``statten-hw *args`` in a process group of its own; as soon as ``ready(stderr so far,
    descendants)``, send ``sig``: SIGINT to the whole group, as a terminal's Ctrl-C does, SIGTERM to
    the process alone, as ``kill`` does. Returns the exit code, stderr and every descendant seen."""
    proc = popen_cli(*args, stdout=subprocess.DEVNULL, text=False, start_new_session=True)
    err = bytearray()
    reader = threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True)
    reader.start()
    seen = {}
    try:
        while proc.poll() is None:
            children = _descendants(proc.pid)
            seen.update((p.pid, p) for p in children)
            if ready(err.decode(errors="replace"), children):
                break
            time.sleep(0.01)
        sent = proc.poll() is None
        if sent:
            os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=60)
    assert sent, "the simulation finished before the signal could be sent"
    return proc.returncode, err.decode(errors="replace"), list(seen.values())


class _Steady:
    """``ready`` for Lava: its worker processes are all up (none added for ``seconds``), so it steps."""

    def __init__(self, seconds: float = 1.0):
        self.seconds, self.count, self.since = seconds, 0, time.monotonic()

    def __call__(self, err: str, children: list) -> bool:
        if len(children) != self.count:
            self.count, self.since = len(children), time.monotonic()
        return self.count > 1 and time.monotonic() - self.since > self.seconds


def _simulating_packets(err: str, children: list) -> bool:
    return "simulating packets" in err  # the detailed engine's progress bar over the samples


SIMULATIONS = {  # backend -> (arguments, a fresh ``ready`` for each run: `_Steady` keeps state)
    # the detailed engine: some 0.25 s per sample here, where the fast one does 450 samples in 1.5 s
    "event": (["simulate", "--engine", "detailed", "--samples", "100"], lambda: _simulating_packets),
    "lava": (["simulate", "--backend", "lava", "--samples", "48"], _Steady),
}
needs_lava = pytest.mark.skipif(not importlib.util.find_spec("lava"), reason="lava-nc is not installed")


@pytest.fixture(scope="module")
def previous_simulation(tmp_path_factory):
    """A previous run's report folder (2 samples, event backend)."""
    folder = tmp_path_factory.mktemp("simulate_previous")
    assert main(["simulate", "--samples", "2", "-o", str(folder)]) == 0
    return folder


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("backend", ["event", pytest.param("lava", marks=[pytest.mark.lava, needs_lava])])
def test_interrupted_simulation_keeps_previous_reports(previous_simulation, tmp_path, backend, sig):
    out = tmp_path / "out"
    shutil.copytree(previous_simulation, out)
    args, ready = SIMULATIONS[backend]
    rc, err, children = interrupt_while_simulating([*args, "-o", str(out)], sig, ready())
    assert rc == 130 and err.rstrip().endswith("statten-hw: interrupted"), (rc, err[-3000:])
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    assert scratch_files(out) == [], f"left behind: {scratch_files(out)}"
    assert _files(out) == _files(previous_simulation)
    _, alive = psutil.wait_procs(children, timeout=10)
    orphans = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not orphans, f"child processes outlived the command: {orphans}"


LOST_INTERRUPT = """
import sys, time
from statten_hw import cli

class Ignored:
    def __del__(self):  # Python prints an exception raised here and carries on ("Exception ignored in")
        raise KeyboardInterrupt

def command(args):
    Ignored()
    time.sleep(30)
    print("the command went on")

cli.cmd_info = command
sys.exit(cli.main(["info"]))
"""


def test_interrupt_lost_where_python_ignores_exceptions_is_raised_again():
    """What happens to a Ctrl-C or SIGTERM that arrives while Lava forks (at-fork handlers ignore
    exceptions too), here made deterministic with a ``__del__``."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", LOST_INTERRUPT], capture_output=True, text=True, timeout=120,
                          preexec_fn=default_sigint)
    assert done.returncode == 130 and done.stderr == "statten-hw: interrupted\n", (done.returncode, done.stderr)
    assert "went on" not in done.stdout and time.monotonic() - began < 25


@pytest.mark.parametrize("command, blocked", [
    (["simulate", "--samples", "2"], "report.json"),  # the CSVs and report.html had moved in before it failed
    (["export", "--format", "onnx,nir"], "digits_statten.nir"),
    (["map", "-B", "1,2"], "block_sizes.csv"),  # B1/ and B2/ were written, then the table failed
])
def test_a_folder_where_a_new_file_goes_writes_nothing(tmp_path, capsys, command, blocked):
    """A name in the output folder that a file cannot replace (review): refused in one line before the
    first new file moves in, so the folder holds what it held before (only the blocking folder)."""
    (tmp_path / blocked / "keep").mkdir(parents=True)
    assert main([*command, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("statten-hw: error")]  # besides progress
    assert f"{blocked!r} is a folder" in line and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [blocked]


def test_a_file_where_a_block_size_folder_goes_writes_no_other_block(tmp_path, capsys):
    (tmp_path / "B2").write_text("x")
    assert main(["map", "-B", "1,2", "-o", str(tmp_path)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B2"]


def test_a_folder_where_the_second_blocks_report_goes_writes_no_block(tmp_path, capsys):
    """B1's report was written before B2's failed on its blocked report.json."""
    (tmp_path / "B2" / "report.json").mkdir(parents=True)
    assert main(["map", "-B", "1,2", "-o", str(tmp_path)]) == 2
    assert "'report.json' is a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B2"]
    assert sorted(p.name for p in (tmp_path / "B2").iterdir()) == ["report.json"]
