"""Wall time, CPU time and peak RSS of a child process (for the benchmark and the flat-memory test)."""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from collections.abc import Sequence


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: bytes


def measure(command: Sequence[str], env=None) -> Run:
    """Runs ``command`` to completion; its own rusage (os.wait4), not that of other children."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    if proc.stdout is None:                    # stdout=PIPE always gives one
        raise RuntimeError("Popen(stdout=PIPE) gave no stdout pipe for %r" % (list(command),))
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(seconds=elapsed, cpu_seconds=usage.ru_utime + usage.ru_stime, peak_rss_mb=usage.ru_maxrss / 1024,
               returncode=proc.returncode, stdout=out)
