"""A 200 MB CP949 file: memory stays flat (peak RSS as for a 20 MB file), counts add up, data reads back exactly."""
from __future__ import annotations

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.wifi_ingest import sample
from functions.wifi_ingest.measure import measure
from functions.wifi_ingest.normalize import SCHEMA
from tests.conftest import ROOT

BLOCK = 2000


def normalize_in_child(path, out):
    run = measure([sys.executable, "-m", "functions.wifi_ingest", "normalize", str(path), "--out", str(out),
                   "--no-progress"])
    assert run.returncode == 0
    return run, json.loads(run.stdout)


@pytest.mark.slow
def test_200_mb_file_flat_memory_and_exact_read_back(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    runs = {}
    for mb in (20, 200):
        path = tmp_path / f"wifi_{mb}mb.csv"
        with path.open("wb") as f:
            written = sample.write_big(f, mb << 20, block_records=BLOCK)
        run, report = normalize_in_child(path, tmp_path / "out")
        assert (report["rows_in"], report["rows_ok"], report["rows_rejected"]) == (written, written, 0)
        assert report["bytes_in"] == path.stat().st_size
        runs[mb] = (run, path, written)

    small, big = runs[20][0], runs[200][0]
    # ten times the input, (nearly) the same peak memory: nothing grows with the file
    assert big.peak_rss_mb - small.peak_rss_mb < 25, (small.peak_rss_mb, big.peak_rss_mb)

    _, path, written = runs[200]
    table = pq.read_table(tmp_path / "out" / f"{path.stem}.parquet")
    assert table.num_rows == written
    expected = [sample.expected(r) for r in sample.records(BLOCK)]
    block = pa.Table.from_pylist(expected, schema=SCHEMA)
    for start in range(0, written, BLOCK):
        assert table.slice(start, BLOCK).equals(block), f"records {start}..{start + BLOCK}"
