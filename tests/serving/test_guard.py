"""The guard `jsontune serve` runs vLLM's server under: the server never outlives its supervisor.

No vLLM here: the "server" is a Python process that starts a grandchild of its own (as vLLM's server starts its
engine core), so the test sees the whole group end when the supervisor is SIGKILLed, not just its child.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

SERVER = textwrap.dedent(
    """
    import subprocess, sys, time
    core = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(core.pid, flush=True)
    time.sleep(600)
    """
)

# A supervisor that starts the guarded "server" as `start_server` does, says the pids, then waits to be killed.
SUPERVISOR = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from jsontune.serving.server import guarded
    server = subprocess.Popen(guarded([sys.executable, "-c", sys.argv[1]]), stdout=subprocess.PIPE,
                              start_new_session=True, text=True)
    core = int(server.stdout.readline())
    print(json.dumps({"guard": server.pid, "core": core}), flush=True)
    server.wait()
    """
)


def _gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    """The pids still running (not zombies) after waiting up to `timeout` seconds for them to end."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _start() -> tuple[subprocess.Popen, dict[str, int], list[int]]:
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, SERVER], stdout=subprocess.PIPE, text=True)
    pids = json.loads(supervisor.stdout.readline())
    group = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pids["guard"]]
    return supervisor, pids, group


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_a_sigkilled_supervisor_takes_the_whole_server_with_it():
    supervisor, pids, group = _start()
    assert pids["core"] in group and len(group) >= 3  # the guard, the "server" and its "engine core"
    assert _gone(group, timeout=0.5) == group  # all running before the kill
    supervisor.send_signal(signal.SIGKILL)  # no handler of the supervisor runs
    supervisor.wait()
    assert not _gone(group), "the server outlived its supervisor"


def test_sigterm_to_the_group_ends_it_as_stop_server_does():
    from jsontune.serving.server import STOP_GRACE_S

    supervisor, pids, group = _start()
    os.killpg(pids["guard"], signal.SIGTERM)
    assert not _gone(group, timeout=STOP_GRACE_S)
    supervisor.wait(timeout=10)
