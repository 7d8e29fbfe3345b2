"""The process's peak resident set, measured so that a child does not report its parent's peak."""

from __future__ import annotations

import sys

from jsontune.io import proc_status


def peak_rss_bytes() -> int:
    """Peak resident set of this process in bytes.

    On Linux this is `VmHWM` from /proc/self/status: the high-water mark of this address space,
    which starts afresh at exec. `getrusage`'s `ru_maxrss` does not: it survives execve, so a
    worker that Python starts with vfork + exec reports its parent's peak when that is larger
    (a bench run from a process that has just trained would show the trainer's memory for every
    engine). Elsewhere `ru_maxrss` is the best there is (bytes on macOS, KiB on other systems).
    """
    peak = proc_status("VmHWM")  # "123456 kB"
    if peak is not None:
        return int(peak.split()[0]) * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
