"""A benchmark's child reports its own peak memory, not the parent's it would inherit (benchmarks/processes.py)."""
import os
import subprocess
import sys

from benchmarks.processes import PeakProcess, own_peak_gb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ALLOCATE = 'import sys; block = b"x" * (int(sys.argv[1]) << 20); print(len(block))'


def test_a_childs_peak_is_its_own_and_not_the_large_parents():
    parent_block = b'p' * (400 << 20)  # written, so resident: the parent is at least 0.4 GB
    assert own_peak_gb() > 0.4
    launched = PeakProcess([sys.executable, '-c', ALLOCATE, '50'], stdout=subprocess.PIPE)
    assert launched.process.communicate()[0].decode().strip() == str(50 << 20)
    assert launched.wait() == 0
    assert 0.05 < launched.peak_gb() < 0.25  # its 50 MB and an interpreter; a parent's 0.4 GB would show
    script = ALLOCATE + '; from benchmarks.processes import own_peak_gb; print(own_peak_gb())'
    done = subprocess.run([sys.executable, '-c', script, '50'], capture_output=True, text=True, check=True, cwd=ROOT)
    assert 0.05 < float(done.stdout.split()[-1]) < 0.25  # read inside a plain child, as the benchmarks' children do
    del parent_block


def test_a_failing_command_keeps_its_exit_code_and_a_signal_gives_128_plus_its_number():
    assert PeakProcess([sys.executable, '-c', 'raise SystemExit(3)']).wait() == 3
    killed = PeakProcess([sys.executable, '-c', 'import os, signal; os.kill(os.getpid(), signal.SIGTERM)'])
    assert killed.wait() == 128 + 15
    assert killed.peak_gb() > 0

