"""The one importer of SANA-FE (the ``sanafe`` wheel, its C++ kernel ``sanafecpp``).

SANA-FE's kernel prints progress and warnings with C ``printf`` (``Executed steps: [1/1]``, unused
attribute warnings); `quiet` sends the process's file descriptor 1 to /dev/null while it runs, so a
statten-hw command's own output stays clean.
"""
from __future__ import annotations

import ctypes
import os
import sys
from contextlib import contextmanager

from statten_hw.errors import ConfigError

VERSION = "2.2.9"  # the SANA-FE release whose semantics plan.py and run.py rely on (checked by the tests)


def sanafe():
    """The ``sanafe`` module, or a `ConfigError` saying how to install it."""
    try:
        import sanafe as module
    except ImportError as exc:
        raise ConfigError(f"--backend sanafe needs SANA-FE: pip install sanafe=={VERSION} ({exc})") from exc
    return module


@contextmanager
def quiet():
    """Silence C-level stdout: flush both Python's and libc's buffers around swapping fd 1."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


__all__ = ["VERSION", "quiet", "sanafe"]
