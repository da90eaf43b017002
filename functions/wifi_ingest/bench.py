"""Benchmark: ``python -m functions.wifi_ingest.bench [--mb 200] [--repeat 3]``.

Generates a CP949 + CRLF portal file of the given size and prints, side by side, the normalizer (the CLI, as a
child process) and ``iconv -f cp949 -t utf-8`` on the same file: wall seconds, MB/s of input, CPU seconds and peak
RSS. Time: the fastest of ``--repeat`` runs each (the machine may be shared); memory: the largest peak of those
runs. Targets: at least a third of iconv's speed, peak memory under 100 MB.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

from functions.wifi_ingest import sample
from functions.wifi_ingest.measure import Run, measure


def best(command, repeat: int) -> Run:
    """The fastest run, carrying the largest peak RSS seen over all runs."""
    runs = [measure(command) for _ in range(repeat)]
    for run in runs:
        if run.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed with exit code {run.returncode}")
    return dataclasses.replace(min(runs, key=lambda r: r.seconds), peak_rss_mb=max(r.peak_rss_mb for r in runs))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.wifi_ingest.bench")
    parser.add_argument("--mb", type=int, default=200, help="input size in MiB (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the fastest counts (default 3)")
    args = parser.parse_args(argv)
    iconv = shutil.which("iconv")
    if iconv is None:
        raise SystemExit("iconv not found (Debian: package libc-bin)")
    with tempfile.TemporaryDirectory(prefix="wifi-bench-") as tmp:
        path = Path(tmp) / "wifi_cp949_crlf.csv"
        with path.open("wb") as f:
            records = sample.write_big(f, args.mb << 20)
        size_mb = path.stat().st_size / 1e6
        norm = best([sys.executable, "-m", "functions.wifi_ingest", "normalize", str(path), "--out",
                     str(Path(tmp) / "out"), "--no-progress"], args.repeat)
        report = json.loads(norm.stdout)
        assert report["rows_ok"] == records, report
        ref = best([iconv, "-f", "cp949", "-t", "utf-8", str(path), "-o", "/dev/null"], args.repeat)

    print(f"input: {size_mb:.0f} MB CP949 + CRLF, {records} records; {args.repeat} runs each: fastest time, "
          f"largest peak RSS; normalizer transcoding with {report['transcoder']}")
    print(f"{'tool':<34}{'seconds':>9}{'MB/s':>9}{'cpu s':>8}{'peak RSS MB':>13}")
    for name, run in (("normalizer (CSV -> Parquet)", norm), ("iconv -f cp949 -t utf-8", ref)):
        print(f"{name:<34}{run.seconds:>9.2f}{size_mb / run.seconds:>9.1f}{run.cpu_seconds:>8.2f}"
              f"{run.peak_rss_mb:>13.1f}")
    ratio = ref.seconds / norm.seconds
    speed_ok, memory_ok = ratio >= 1 / 3, norm.peak_rss_mb < 100
    print(f"normalizer speed = {ratio:.2f} x iconv (target >= 0.33: {'met' if speed_ok else 'NOT met'}); "
          f"peak memory {norm.peak_rss_mb:.0f} MB (target < 100: {'met' if memory_ok else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
