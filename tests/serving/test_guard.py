"""The guard `jsontune serve` runs vLLM's server under (`processes.guard`): the server never outlives its
supervisor, nor the guard itself.

No vLLM here: the "server" is a Python process that starts a grandchild of its own (as vLLM's server starts its
engine core), so the test sees the whole group end when the supervisor is SIGKILLed, not just its child; or
Python's own HTTP server on a port, to see the port freed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from jsontune.errors import JsontuneError

SERVER = textwrap.dedent(
    """
    import subprocess, sys, time
    core = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(core.pid, flush=True)
    time.sleep(600)
    """
)

# A supervisor that starts the guarded "server" (the command in argv[1], as JSON) as `start_server` does, says
# the guard's pid and the server's first line, then waits to be killed.
SUPERVISOR = textwrap.dedent(
    """
    import json, subprocess, sys
    from jsontune.processes import guarded, start
    server = start(guarded(json.loads(sys.argv[1])), stdout=subprocess.PIPE, start_new_session=True, text=True)
    said = server.stdout.readline().strip()
    print(json.dumps({"guard": server.pid, "said": said}), flush=True)
    server.wait()
    """
)
# A guard that is sent SIGTERM the moment its command has started, before its next line runs: it says the
# command's pid first.
TOLD_AT_START = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    from jsontune.processes import guard

    class ToldAtStart(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            print(self.pid, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)

    subprocess.Popen = ToldAtStart
    sys.exit(guard([sys.executable, "-c", "import time; time.sleep(600)"]))
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


def _start(server: list[str]) -> tuple[subprocess.Popen, dict[str, int], list[int]]:
    """The supervisor of guarded `server`, what it said (the guard's pid, the server's first line) and the
    guard's process group."""
    command = [sys.executable, "-c", SUPERVISOR, json.dumps(server)]
    supervisor = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    said = json.loads(supervisor.stdout.readline())
    group = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == said["guard"]]
    return supervisor, said, group


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_sigkilled_supervisor_takes_the_whole_server_with_it():
    supervisor, pids, group = _start([sys.executable, "-c", SERVER])
    assert int(pids["said"]) in group and len(group) >= 3  # the guard, the "server" and its "engine core"
    assert _gone(group, timeout=0.5) == group  # all running before the kill
    supervisor.send_signal(signal.SIGKILL)  # no handler of the supervisor runs
    supervisor.wait()
    assert not _gone(group), "the server outlived its supervisor"


def test_sigterm_to_the_group_ends_it_as_stop_server_does():
    from jsontune.serving.server import STOP_GRACE_S

    supervisor, pids, group = _start([sys.executable, "-c", SERVER])
    os.killpg(pids["guard"], signal.SIGTERM)
    assert not _gone(group, timeout=STOP_GRACE_S)
    supervisor.wait(timeout=10)


def test_a_sigkilled_guard_takes_its_server_with_it_and_frees_the_port():
    """The kernel tells the server when its guard dies (the OOM killer may pick the guard): the server stops."""
    from jsontune.serving.server import _check_port_free

    port = _free_port()
    supervisor, pids, group = _start([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", str(port)])
    try:
        assert "Serving HTTP" in pids["said"]
        server = [pid for pid in group if pid != pids["guard"]]
        assert len(server) == 1 and _gone(server, timeout=0.5) == server  # serving, before the kill
        with pytest.raises(JsontuneError, match="is taken"):
            _check_port_free("127.0.0.1", port)
        os.kill(pids["guard"], signal.SIGKILL)  # no handler of the guard runs
        assert not _gone(server), "the server outlived its SIGKILLed guard"
        _check_port_free("127.0.0.1", port)  # a new `jsontune serve` may take the port
    finally:
        supervisor.kill()
        supervisor.wait()


def test_a_sigterm_the_moment_the_server_starts_still_ends_it():
    """The guard's SIGTERM handler is in place before it starts the server: a SIGTERM right after the start is
    the guard's to handle (exit 128 + SIGTERM, having ended the group), not a death that leaves the server."""
    guard = subprocess.Popen(
        [sys.executable, "-c", TOLD_AT_START], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    server = int(guard.stdout.readline())
    assert guard.wait(timeout=60) == 128 + signal.SIGTERM
    assert not _gone([server]), "the server outlived a guard told to end as it started it"


@pytest.mark.parametrize(
    ("command", "status"), [("raise SystemExit(3)", 3), ("import os; os.kill(os.getpid(), 9)", -signal.SIGKILL)]
)
def test_the_guard_exits_as_its_command_did(command, status):
    """A bench worker runs under the guard: the bench still reads its exit code, or the signal that killed it
    (-9: "out of memory?")."""
    from jsontune.processes import guarded

    assert subprocess.run(guarded([sys.executable, "-c", command]), start_new_session=True).returncode == status
