"""Atomic output files: a reader sees the previous file or the new one, never half of either."""
from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from statten_hw.interrupts import deferred_interrupts


@contextmanager
def replacing(path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder for the caller to write; ``os.replace`` onto ``path``
    when the block ends, removed instead when it raises.

    The temporary name is chosen before the file exists, so an exception at any point (Ctrl-C
    included) finds it and removes it: an interrupted write leaves the previous file and no stray
    temporary. The caller creates the file, with mode 0o666 less the umask as ``open`` does
    (``tempfile.mkstemp`` would make every output 0o600, unreadable to the user's group).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with deferred_interrupts():
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to a temporary file in the same folder, fsync, then replace ``path`` (`replacing`)."""
    with replacing(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


#: What reading a JSON file another program or a person wrote can raise: the file system's errors,
#: bad UTF-8 or JSON and an integer past Python's 4,300 digits (ValueErrors), nesting past the
#: recursion limit. One tuple, so no reader forgets one.
JSON_READ_ERRORS = (OSError, ValueError, RecursionError)

#: Significant digits a written float keeps. Cycles and energies are sums of integer counts times
#: per-event costs such as 8.4 cycles or 23.6 pJ, which binary floats hold only approximately, so a
#: sum reads 1789849.5999999999 where the cost model says 1789849.6; 12 digits drop that noise (about
#: 1e-16 relative) and keep every digit the model means.
SIGNIFICANT_DIGITS = 12


def tidy_floats(value):
    """``value`` with every float (in nested dicts, lists and tuples) rounded to `SIGNIFICANT_DIGITS`."""
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(value, dict):
        return {k: tidy_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [tidy_floats(v) for v in value]
    return value


def write_json(path, obj) -> Path:
    """Deterministic JSON (sorted keys, fixed indent, `tidy_floats`) so equal reports are byte-identical."""
    text = json.dumps(tidy_floats(obj), indent=2, sort_keys=True, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def write_csv(path, rows: list[dict]) -> Path:
    """A CSV table of ``rows`` (their first row's keys are the header), floats as `tidy_floats` writes them."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(tidy_floats(rows))
    return atomic_write_text(path, buf.getvalue())


def check_output_folder(path) -> None:
    """Refuse, before any work, an output folder that cannot be written: a file in its place or on
    its path, or a first existing folder without write permission. Creates nothing: a command that
    fails later must not leave an empty folder behind."""
    from statten_hw.errors import InputError

    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise InputError(f"output folder {str(path)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"output folder {str(path)!r}: no permission to write in {str(existing)!r}")


@contextmanager
def staged_folder(out_dir) -> Iterator[Path]:
    """A hidden folder inside ``out_dir`` for a command to write every file of one result into; when
    the block ends each file is moved into ``out_dir`` (``os.replace``), and when it raises the
    staging folder goes (with ``out_dir`` itself if this call created it): a command that fails half
    way leaves what was there before and none of its own files."""
    out = Path(out_dir)
    created = next((p for p in reversed((out, *out.parents)) if not p.exists()), None)
    stage = out / f".statten-hw.{secrets.token_hex(8)}.tmp"
    try:
        with deferred_interrupts():  # an interrupt after mkdir, before this try, left the folder behind
            out.mkdir(parents=True, exist_ok=True)
            stage.mkdir()
        yield stage
        check_replaceable(out, [f.name for f in stage.iterdir()])
        with deferred_interrupts():  # all of the new files or none of them
            for f in sorted(stage.iterdir()):
                os.replace(f, out / f.name)
            stage.rmdir()
    except BaseException:
        with deferred_interrupts():
            shutil.rmtree(created if created is not None else stage, ignore_errors=True)
        raise


def check_replaceable(out: Path, names: list[str]) -> None:
    """Refuse, before the first file moves, a name in ``out`` that a file cannot replace (a folder):
    ``os.replace`` would fail there after the earlier files had moved, leaving half of the result."""
    from statten_hw.errors import InputError

    if blocked := sorted(name for name in names if (out / name).is_dir()):
        raise InputError(f"output folder {str(out)!r}: {blocked[0]!r} is a folder, so the new file cannot replace "
                         "it; nothing was written")


def write_report_folder(out_dir, tables: dict[str, list[dict]], markdown: str, html: str, doc: dict) -> dict:
    """Write one report folder: ``tables`` as CSV files, report.md, report.html and report.json.

    The caller computes every file's content first (plots included), so a failing plot writes
    nothing; the files then go through `staged_folder`, so a folder never holds one run's CSV beside
    another run's report.json. Returns ``doc`` as report.json holds it (`tidy_floats`)."""
    doc = tidy_floats(doc)
    with staged_folder(out_dir) as stage:
        for name, rows in tables.items():
            write_csv(stage / name, rows)
        atomic_write_text(stage / "report.md", markdown)
        atomic_write_text(stage / "report.html", html)
        write_json(stage / "report.json", doc)
    return doc
