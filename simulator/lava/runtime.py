"""Start, step and always stop a Lava runtime, also when a process fails or the user presses Ctrl-C.

Lava 0.10 runs every ProcessModel in its own OS process. When one of them raises, the runtime
receives an error and then joins *every* actor, while the others wait forever for the failed one's
messages: ``Process.run`` never returns and ``stop()`` hangs too. So a run here is started
non-blocking, and `LavaSession.run` waits by polling: either every runtime service reports done, or
an actor died or the run outlived any plausible duration (a deadlocked actor), in which case we stop
by force (terminate every actor, release the shared memory, disarm the runtime so that nothing later
waits on the dead). A normal run ends with Lava's own ``stop()``. Either way no child process of
ours outlives `started`.
"""
from __future__ import annotations

import multiprocessing
import time
from contextlib import contextmanager
from typing import Iterator

from statten_hw.errors import StattenError

from . import _compat

lava = _compat.import_lava()

#: Seconds between two looks at the runtime while a run is in flight.
POLL_S = 0.002
#: Polls between two looks at the actors (each look is a waitpid per actor).
ACTOR_CHECK_POLLS = 25
#: Seconds an actor gets to exit after SIGTERM before SIGKILL.
TERMINATE_GRACE_S = 2.0
#: A run of n steps that has not finished after RUN_FLOOR_S + n * STEP_LIMIT_S seconds is stuck (a
#: step takes well under a second here even on a loaded machine; a deadlocked process never finishes).
RUN_FLOOR_S = 60.0
STEP_LIMIT_S = 10.0


class LavaRunError(StattenError):
    """A Lava process failed while the network ran (the runtime was stopped by force)."""


def _actors(runtime) -> list:
    # Lava keeps its actor OS processes (multiprocessing.Process subclasses) here; no public accessor.
    return list(runtime._messaging_infrastructure.actors)


def _failure(actors: list) -> str:
    """Why the run failed: the first exception an actor reported, else the first actor that exited."""
    dead = [a for a in actors if not a.is_alive()]
    for actor in dead:
        if actor.exception:
            err, trace = actor.exception
            where = trace.strip().splitlines()[-3].strip() if trace.count("\n") > 2 else ""
            return f"{type(err).__name__}: {err}" + (f" (at {where})" if where else "")
    return f"a Lava actor process exited (exit code {dead[0].exitcode})" if dead else ""


def force_stop(runtime) -> None:
    """Terminate every actor of ``runtime``, free its shared memory and mark it stopped."""
    actors = _actors(runtime)
    for actor in actors:
        if actor.is_alive():
            actor.terminate()
    for actor in actors:
        multiprocessing.Process.join(actor, TERMINATE_GRACE_S)
        if actor.is_alive():
            actor.kill()
            multiprocessing.Process.join(actor)
    infrastructure = runtime._messaging_infrastructure
    if infrastructure.smm is not None:
        infrastructure.smm.shutdown()
    runtime.join()  # the runtime's own channel ports in this process
    # Runtime.__del__ calls stop() while _is_started, which would wait on the dead actors.
    runtime._is_started = runtime._is_running = False


class LavaSession:
    """A started runtime: `run` advances it ``steps`` steps, watching for failed actors."""

    def __init__(self, root):
        self.root = root
        self.runtime = root.runtime
        self.steps = 0

    def run(self, steps: int) -> None:
        """Advance ``steps`` steps; raise `LavaRunError` if a process fails (the caller force-stops)."""
        self.root.run(condition=lava.RunSteps(num_steps=steps, blocking=False))
        actors, ports = _actors(self.runtime), self.runtime.service_to_runtime
        deadline = time.monotonic() + RUN_FLOOR_S + steps * STEP_LIMIT_S
        polls = 0
        while not all(port.probe() for port in ports):
            polls += 1
            if polls % ACTOR_CHECK_POLLS == 0 and _failure(actors):
                self._fail(actors, steps)
            if time.monotonic() > deadline:
                raise LavaRunError(f"Lava run of steps {self.steps + 1}..{self.steps + steps} got no answer within "
                                   f"{RUN_FLOOR_S + steps * STEP_LIMIT_S:.0f} s: a Lava process is stuck")
            time.sleep(POLL_S)
        if not all(lava.enum_equal(port.peek(), lava.MGMT_RESPONSE.DONE) for port in ports):
            self._fail(actors, steps)  # an error report: Runtime.wait() would join the blocked actors
        self.runtime.wait()
        self.steps += steps

    def _fail(self, actors: list, steps: int) -> None:
        deadline = time.monotonic() + TERMINATE_GRACE_S
        while not _failure(actors) and time.monotonic() < deadline:  # let the failed actor exit and report
            time.sleep(POLL_S)
        problem = _failure(actors) or "the runtime reported an error"
        raise LavaRunError(f"Lava run failed within steps {self.steps + 1}..{self.steps + steps}: {problem}")


@contextmanager
def started(root, run_cfg) -> Iterator[LavaSession]:
    """Compile and start the network that ``root`` belongs to; stop it on leaving, whatever happens."""
    try:
        root.create_runtime(run_cfg=run_cfg)
    except BaseException:
        if root.runtime is not None:
            force_stop(root.runtime)
        raise
    session = LavaSession(root)
    try:
        yield session
    except BaseException:
        force_stop(root.runtime)
        raise
    root.runtime.stop()
