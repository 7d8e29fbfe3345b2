import subprocess
import sys

from jsontune.memory import peak_rss_bytes

MB = 1024 * 1024


def test_peak_rss_grows_with_what_this_process_touches():
    before = peak_rss_bytes()
    block = bytearray(200 * MB)
    block[:: 4096] = b"\1" * len(block[:: 4096])  # touch every page so it is resident
    assert peak_rss_bytes() >= before + 150 * MB
    del block


def test_a_child_reports_its_own_peak_not_its_parents():
    # The bench's workers are started by this kind of Popen from a process that may have just
    # trained a model; ru_maxrss survives exec and would report the parent's peak for each one.
    block = bytearray(1024 * MB)
    block[:: 4096] = b"\1" * len(block[:: 4096])
    parent = peak_rss_bytes()
    code = "from jsontune.memory import peak_rss_bytes; print(peak_rss_bytes())"
    child = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    del block
    assert parent >= 1024 * MB
    assert 0 < child < 200 * MB  # a bare interpreter: tens of MB
