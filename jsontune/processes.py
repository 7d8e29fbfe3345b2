"""The processes jsontune starts, and how they end with it: `start` is the one way it starts a child.

    process = start(guarded([sys.executable, "-m", "vllm.entrypoints.openai.api_server", ...]), start_new_session=True)

`start` asks the kernel to send the child SIGTERM when this process dies (Linux prctl PR_SET_PDEATHSIG, set in the
child between fork and exec), so no handler of the parent has to run: a SIGKILL, the OOM killer and a closed
terminal all reach the child. A child that starts processes of its own (vLLM's server starts its engine core)
runs under `guard`, which ends its whole process group when it is told to end or its parent dies, and which
starts the child with `start` too: whichever of the two dies first, the other learns it from the kernel.

    python -m jsontune.processes -- COMMAND...     # COMMAND under the guard
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

STOP_GRACE_S = 30.0  # how long a group told to end has before what is left of it is killed
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def start(argv: list[str], **popen: Any) -> subprocess.Popen:
    """`subprocess.Popen(argv, **popen)` for a child the kernel sends SIGTERM when this process dies. (The
    kernel watches the thread that starts the child: call it from one that lives as long as the child should,
    as the main thread does.)"""
    return subprocess.Popen(argv, preexec_fn=_dies_with(os.getpid()), **popen)


def _dies_with(parent: int) -> Callable[[], None] | None:
    """What the child runs between fork and exec: the parent-death signal, then a check that the parent did not die
    before it was set (the child then ends at once). Linux only; elsewhere None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the forked child only calls it

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def guarded(argv: list[str]) -> list[str]:
    """`argv` run under `guard`: start the result with `start`, in a session of its own (`start_new_session`),
    and the group `argv` starts ends with this process."""
    return [sys.executable, "-m", "jsontune.processes", "--", *argv]


def guard(argv: list[str], grace_s: float = STOP_GRACE_S) -> int:
    """Run `argv` in this process group and end the whole group (the command and anything it started) on SIGTERM:
    from the kernel when the parent dies (this process was started with `start`), or from anyone else
    (`serving.server.stop_server`). The handler is in place before the command starts, so a SIGTERM at any
    moment ends the group; should this process itself be SIGKILLed, the kernel sends the command SIGTERM. The
    command's own exit ends the group too, and is this process's exit status."""
    told: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: told.append(signum))
    child = start(argv)
    # Poll rather than block in wait(): a handler that waited for the child while wait() holds its lock would
    # hang until its timeout.
    while not told and (code := child.poll()) is None:
        time.sleep(0.1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's SIGTERM below is for the others
    _end_group(child, grace_s if told else 5.0)
    return 128 + told[0] if told else code


def _end_group(child: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to this process group but this process, SIGKILL to whatever of it is left after `grace_s`."""
    import psutil

    def others() -> list[psutil.Process]:
        group, me = os.getpgrp(), os.getpid()
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if process.pid != me and os.getpgid(process.pid) == group:
                    found.append(process)
        return found

    for process in others():
        with contextlib.suppress(psutil.Error):
            process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=grace_s)
    _, alive = psutil.wait_procs(others(), timeout=1.0)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5.0)


def _exit(code: int) -> None:
    """Exit as the command did: with its status, or by the signal that ended it (its parent reads the same)."""
    if code < 0:
        with contextlib.suppress(OSError):  # SIGKILL's action cannot be set, nor needs to be
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--":
        print("usage: python -m jsontune.processes -- COMMAND...", file=sys.stderr)
        sys.exit(2)
    _exit(guard(sys.argv[2:]))
