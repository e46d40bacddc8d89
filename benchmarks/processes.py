"""A process's own peak memory, not its parent's.

Linux folds the address space a process had before exec into its peak (ru_maxrss, from getrusage or wait4), and a
child started by a parent that has imported TensorFlow begins from the parent's size: measured that way, a
benchmark's child that imports nothing reports the parent's 0.6 GB. So a process reads its own peak from VmHWM
(the high-water mark of its present address space, new at exec), and a command measured from outside runs under a
small launcher process, whose own peak is all its child inherits.
"""
import os
import resource
import subprocess
import sys

# argv: the pipe's write end, then the command. Writes the command's peak (KB) to the pipe, exits with its status.
LAUNCHER = '''import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
os.write(int(sys.argv[1]), b"%d" % usage.ru_maxrss)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
'''


def own_peak_gb():
    """This process's peak resident memory in GB since its exec (getrusage's where /proc is missing)."""
    try:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) for line in f if line.startswith('VmHWM')) / 1024 / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


class PeakProcess:
    """A command started under the launcher, with subprocess.Popen's keyword arguments; after it ends, peak_gb()
    is the command's own peak resident memory (its launcher's, a small Python, is its floor)."""

    def __init__(self, command, **popen_args):
        read, write = os.pipe()
        try:
            self.process = subprocess.Popen([sys.executable, '-c', LAUNCHER, str(write), *command],
                                            pass_fds=(write,), **popen_args)
        finally:
            os.close(write)
        self._peak = os.fdopen(read, 'rb')

    def wait(self):
        """The command's exit code (128 + the signal's number if a signal ended it)."""
        return self.process.wait()

    def peak_gb(self):
        """The command's peak in GB, or None if its launcher ended without reporting it."""
        with self._peak:
            reported = self._peak.read()
        return int(reported) / 1024 / 1024 if reported else None
