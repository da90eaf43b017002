"""An error or Ctrl-C in the middle of a file ends the process normally: the reader's thread is stopped first
(it used to call into Python while the interpreter shut down, a segmentation fault about half the time)."""
from __future__ import annotations

import subprocess
import sys

from functions.wifi_ingest import sample
from tests.conftest import ROOT

SCRIPT = """
import sys
from functions.wifi_ingest.normalize import normalize
calls = []
def progress(done):
    calls.append(done)
    if len(calls) == 3:
        raise RuntimeError("stopped by the test")
with open(sys.argv[1], "rb") as f:
    normalize(f, sys.argv[2], sys.argv[3], source="big", progress=progress, block_bytes=64 << 10)
"""


def test_an_error_mid_file_ends_the_process_cleanly(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("wb") as f:
        sample.write_big(f, 8 << 20)
    for attempt in range(4):
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(path), str(tmp_path / "t.parquet"),
                               str(tmp_path / "rejects.csv")], cwd=ROOT, capture_output=True, timeout=120)
        assert proc.returncode == 1, (attempt, proc.returncode, proc.stderr[-1500:])
        assert b"RuntimeError: stopped by the test" in proc.stderr
