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


def test_two_lent_blocks_of_the_same_bytes_are_both_waited_for():
    import io

    from functions.wifi_ingest.normalize import _Utf8Source

    source = _Utf8Source(None, b"", io.BytesIO(b""), 0, 4)
    first, second = source.lend(memoryview(b"same row\n" * 4)), source.lend(memoryview(b"same row\n" * 4))
    del first   # Arrow let go of one; the other, with the same bytes, is still held
    assert source.wait_returned(timeout=0) is False
    del second
    assert source.wait_returned(timeout=0) is True


def test_an_input_error_mid_file_is_raised_once_arrow_has_let_go_of_everything(tmp_path, monkeypatch):
    """The error's traceback must not keep a lent object alive: the wait would run out (10 s) and protect nothing."""
    import io

    import pytest

    from functions.wifi_ingest import normalize as n

    data = sample.file_bytes(sample.records(20000), encoding="utf-8")

    class Failing(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > len(data) // 2:
                raise OSError("network went away")
            return super().read(size)
    waits = []
    real = n._Utf8Source.wait_returned
    monkeypatch.setattr(n._Utf8Source, "wait_returned", lambda self, timeout=10.0: waits.append(real(self, timeout))
                        or waits[-1])
    with pytest.raises(OSError, match="network went away"):
        n.normalize(Failing(data), str(tmp_path / "t.parquet"), str(tmp_path / "r.csv"), source="x",
                    block_bytes=1 << 20)
    assert waits == [True]
