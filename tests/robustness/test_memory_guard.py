"""The memory guard of ``statten-hw simulate`` (``statten_hw.resources``).

* ``--max-memory`` sizes: 12 good spellings read to the right number of bytes, 10 bad ones refused
  in one line (also through the command line).
* A run refused before it starts, for every backend (event, lava, sanafe): ``--max-memory 1K``
  gives one line naming the estimate and the limit, exit code 2, and writes nothing; the default
  limit (a share of the available memory, here made small) refuses the same way, naming it.
* A run allowed with a large ``--max-memory`` writes its report.
* The available memory honours a cgroup v2 limit (``memory.max`` minus ``memory.current``).
* The estimate covers a measured run: the embedded model, fast event engine, 64 samples, in a
  fresh process (``memory_calibration.py``: peak RSS increase after ``malloc_trim``); it is also
  no more than 5x the measurement (2.8x measured), so that the guard does not refuse runs that
  would fit several times over.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from memory_calibration import measure_in_subprocess
from robust_helpers import assert_one_line_error
from statten_hw import resources
from statten_hw.cli import main
from statten_hw.errors import InputError
from statten_hw.resources import MiB, parse_size

GOOD_SIZES = {"1": 1, "100000": 100_000, "100B": 100, "2K": 2048, "2k": 2048, "512M": 512 * MiB, "512MiB": 512 * MiB,
              "2G": 2 << 30, "2GiB": 2 << 30, "2gb": 2 << 30, " 1.5 GiB ": 3 << 29, "1T": 1 << 40}
BAD_SIZES = ["", "abc", "-1", "0", "0.1", "1e9", "2 GiBs", "2PiB", "GiB", "9" * 400]
BACKENDS = {"event": [], "lava": ["--backend", "lava"], "sanafe": ["--backend", "sanafe", "--target", "sanafe:loihi"]}
SIZE = r"[\d.]+ (B|KiB|MiB|GiB|TiB)"


@pytest.mark.parametrize("text", sorted(GOOD_SIZES))
def test_sizes_are_read(text):
    assert parse_size(text) == GOOD_SIZES[text]


@pytest.mark.parametrize("text", BAD_SIZES)
def test_bad_sizes_are_refused(text):
    with pytest.raises(InputError, match=r"^--max-memory"):
        parse_size(text)


def test_bad_size_through_the_cli(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["simulate", "--max-memory", "lots", "-o", str(out)])
    assert_one_line_error(rc, capsys.readouterr().err, r"--max-memory: cannot read 'lots' as a size")
    assert not out.exists()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_run_over_the_limit_is_refused_before_it_starts(tmp_path, capsys, backend):
    out = tmp_path / "out"
    rc = main(["simulate", *BACKENDS[backend], "--samples", "4", "--max-memory", "1K", "-o", str(out)])
    assert_one_line_error(rc, capsys.readouterr().err,
                          rf"this simulation needs an estimated {SIZE} of memory, more than the limit of "
                          rf"1\.0 KiB \(--max-memory\)")
    assert not out.exists()


def test_default_limit_is_a_share_of_the_available_memory(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda: 64 * MiB)
    out = tmp_path / "out"
    rc = main(["simulate", "--samples", "450", "-o", str(out)])
    err = capsys.readouterr().err
    assert_one_line_error(rc, err, rf"needs an estimated {SIZE} of memory, more than the limit of 51\.2 MiB "
                                   rf"\(80% of the 64\.0 MiB available\)")
    assert not out.exists()


def test_run_within_a_large_limit_is_allowed(tmp_path):
    out = tmp_path / "out"
    assert main(["simulate", "--samples", "2", "--max-memory", "1TiB", "-o", str(out)]) == 0
    assert (out / "report.json").is_file()


@pytest.mark.parametrize("files, expected", [
    ({"memory.max": "1000000\n", "memory.current": "400000\n"}, 600_000),  # the container's limit binds
    ({"memory.max": "max\n", "memory.current": "400000\n"}, 5_000_000),  # no limit set
    ({"memory.max": "10000000000\n", "memory.current": "0\n"}, 5_000_000),  # the machine binds
    ({}, 5_000_000),  # no cgroup v2 files
])
def test_available_memory_honours_the_cgroup_limit(tmp_path, monkeypatch, files, expected):
    import psutil

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(resources, "CGROUP", tmp_path)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("Memory", (), {"available": 5_000_000})())
    assert resources.available_memory() == expected


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures with Linux's /proc/self/clear_refs")
def test_estimate_covers_a_measured_run():
    row = measure_in_subprocess("embedded-fast-64")
    assert row["estimate"] >= row["measured"], row
    assert row["estimate"] <= 5 * row["measured"], row
