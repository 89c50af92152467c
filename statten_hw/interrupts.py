"""How a command is interrupted: Ctrl-C and SIGTERM unwind as ``KeyboardInterrupt``, so every writer's
cleanup runs (no temporary files, previous outputs intact), none is lost, and forked workers (Lava's
actors) leave the shutdown to the parent. `signal_handling` wraps every command (`statten_hw.cli.main`).
"""
from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from contextlib import contextmanager

#: Delay before an interrupt lost in an exception-ignoring context is raised again (`_redeliver_interrupt`).
REDELIVER_S = 0.05


def _terminate(signum, frame):
    """SIGTERM unwinds like Ctrl-C, so every writer's cleanup (temporary files) runs."""
    raise KeyboardInterrupt


def _forked_worker_signals() -> None:
    """In a forked worker (Lava's actors) SIGTERM kills at once, which is how Lava stops them (the
    inherited `_terminate` would print tracebacks from their exit handlers), and Ctrl-C, which a
    terminal sends to the whole process group, is left to the parent, which stops its workers."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _redeliver_interrupt(previous_hook, unraisable) -> None:
    """A KeyboardInterrupt raised where Python can only ignore exceptions (an at-fork handler while
    Lava forks its actors, a ``__del__``) would be lost and the run would go on: a moment later (raised
    here, in the hook, it would be lost too), SIGINT is sent to the main thread again, which also
    wakes it from a blocking call. Other unraisable exceptions go to the previous hook."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        main_thread = threading.main_thread().ident
        timer = threading.Timer(REDELIVER_S, signal.pthread_kill, (main_thread, signal.SIGINT))
        timer.daemon = True  # never holds up the interpreter's exit
        timer.start()
    else:
        previous_hook(unraisable)


_fork_hook_registered = False


@contextmanager
def signal_handling():
    """SIGTERM as Ctrl-C, no lost interrupts and quiet workers while a command runs (see above)."""
    global _fork_hook_registered
    if not _fork_hook_registered:  # at-fork hooks cannot be removed: once per process
        os.register_at_fork(after_in_child=_forked_worker_signals)
        _fork_hook_registered = True
    signal.signal(signal.SIGTERM, _terminate)
    previous = sys.unraisablehook
    sys.unraisablehook = functools.partial(_redeliver_interrupt, previous)
    try:
        yield
    finally:
        sys.unraisablehook = previous


@contextmanager
def deferred_interrupts(second_stops: bool = False):
    """Hold Ctrl-C and SIGTERM back until the block ends, then raise ``KeyboardInterrupt`` once.

    For steps that must not be cut in two: creating a staging folder before the ``try`` that removes
    it, moving its files into place, removing it (an interrupt between two left a stray staging
    folder); starting a sweep's LocalCluster inside the ``ExitStack`` that shuts it down (raised in
    its constructor, Ctrl-C left a half-started cluster whose close at exit printed a traceback).
    With ``second_stops`` a second signal does not wait (a cluster start that hangs would hold the
    first for ever). A block that fails after a signal ends as interrupted (a worker killed by the
    same Ctrl-C fails the start). Signals reach only the main thread, so elsewhere the block runs as
    it is; an ignored signal stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous = {sig: handler for sig, handler in previous.items() if handler is not signal.SIG_IGN}

    def restore() -> None:
        while previous:
            sig, handler = previous.popitem()
            signal.signal(sig, handler)

    def hold(signum, frame) -> None:
        received.append(signum)
        if second_stops and len(received) > 1:
            restore()
            raise KeyboardInterrupt

    for sig in previous:
        signal.signal(sig, hold)
    try:
        yield
    except Exception as err:
        if received:
            raise KeyboardInterrupt from err
        raise
    finally:
        restore()
    if received:
        raise KeyboardInterrupt
