import subprocess
import sys
from pathlib import Path

from jsontune.io import share_like_umask
from jsontune.memory import peak_rss_bytes

MB = 1024 * 1024


def _in_a_fresh_interpreter(code: str) -> list[int]:
    """Run `code` in a new Python (whose peak no earlier test has raised); the ints it prints."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [int(x) for x in run.stdout.split()]


def test_peak_rss_grows_with_what_the_process_touches():
    before, after = _in_a_fresh_interpreter(
        "from jsontune.memory import peak_rss_bytes as p; b = p(); x = bytearray(200 << 20); "
        "x[::4096] = b'\\1' * len(x[::4096]); print(b, p())"
    )
    assert after >= before + 150 * MB


def test_a_child_reports_its_own_peak_not_its_parents():
    # The bench's workers are started by this kind of Popen from a process that may have just
    # trained a model; ru_maxrss survives exec and would report the parent's peak for each one.
    block = bytearray(1024 * MB)
    block[::4096] = b"\1" * len(block[::4096])
    parent = peak_rss_bytes()
    (child,) = _in_a_fresh_interpreter("from jsontune.memory import peak_rss_bytes; print(peak_rss_bytes())")
    del block
    assert parent >= 1024 * MB
    assert 0 < child < 200 * MB  # a bare interpreter: tens of MB


def test_share_like_umask_gives_plain_modes(tmp_path):
    import os
    import stat
    import tempfile

    old = os.umask(0o022)
    try:
        folder = Path(tempfile.mkdtemp(dir=tmp_path))  # 0700
        (folder / "sub").mkdir(mode=0o700)
        fd, name = tempfile.mkstemp(dir=folder / "sub")  # 0600
        os.close(fd)
        share_like_umask(folder)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "sub").stat().st_mode) == 0o755
    assert stat.S_IMODE(Path(name).stat().st_mode) == 0o644
