"""The process's peak resident set, measured so that a child does not report its parent's peak."""

from __future__ import annotations

import sys
from pathlib import Path


def peak_rss_bytes() -> int:
    """Peak resident set of this process in bytes.

    On Linux this is `VmHWM` from /proc/self/status: the high-water mark of this address space,
    which starts afresh at exec. `getrusage`'s `ru_maxrss` does not: it survives execve, so a
    worker that Python starts with vfork + exec reports its parent's peak when that is larger
    (a bench run from a process that has just trained would show the trainer's memory for every
    engine). Elsewhere `ru_maxrss` is the best there is (bytes on macOS, KiB on other systems).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # "VmHWM:   123456 kB"
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
