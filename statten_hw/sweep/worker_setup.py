"""Preload of the sweep's local Dask workers (``LocalCluster(preload=[__name__])``): ignore SIGINT.

A terminal's Ctrl-C reaches the whole process group. The command answers it (one line, exit 130) and
shuts its cluster down; a worker that took it as well printed its own KeyboardInterrupt traceback
(63 lines for two workers, review). Dask runs ``dask_setup`` in each worker process as it starts.
"""
from __future__ import annotations

import signal


def dask_setup(worker) -> None:  # noqa: ARG001 (Dask's preload interface passes the worker)
    """Ignore SIGINT in this worker process: its cluster's owner stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
