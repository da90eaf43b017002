"""CLI: ``python -m functions.wifi_ingest normalize INPUT.csv --out DIR``.

Writes ``DIR/<name>.parquet`` (table data), ``DIR/<name>.rejects.csv`` (only when records were rejected) and
``DIR/<name>.report.json``, and prints the report as one JSON line. Exit 0 when the file was processed (even with
rejected records), 2 with a message on stderr when the file is unusable (empty, not CSV, unknown layout) or missing.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
from pathlib import Path

# Peak memory of a long file (docs/benchmarks.md); all of this must happen before pyarrow loads:
# - pyarrow's allocator (mimalloc) commits whole arenas eagerly and keeps freed pages by default (~40 MB);
MIMALLOC_OPTIONS = {"MIMALLOC_ARENA_EAGER_COMMIT": "0", "MIMALLOC_PURGE_DELAY": "0"}
# - glibc raises its mmap threshold to the largest block freed, after which the reader's ~1 MB buffers stay in
#   the heap; a fixed threshold hands them back (~4 MB);
M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES = -3, 128 << 10
# - pyarrow imports numpy whenever it is installed (~11 MB), but nothing here converts to numpy (the Lambda bundle
#   has no numpy at all); - Arrow's CPU thread pool is unused (the reader runs single-threaded) (~3 MB).


def _lean_process() -> None:
    for key, value in MIMALLOC_OPTIONS.items():
        os.environ.setdefault(key, value)
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc
        pass
    # pyarrow then runs without it, as it does in the Lambda. A None entry makes ``import numpy`` raise ImportError
    # (the import system's documented way to block a module); typeshed types sys.modules' values as modules only.
    sys.modules.setdefault("numpy", None)  # type: ignore[arg-type]
    import pyarrow
    pyarrow.set_cpu_count(1)

PROGRESS_MIN_BYTES = 16 << 20


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m functions.wifi_ingest",
                                     description="Normalize the Korean free Wi-Fi standard data CSV for Athena.")
    sub = parser.add_subparsers(dest="command", required=True)
    norm = sub.add_parser("normalize", help="CSV (UTF-8 or CP949/EUC-KR, any line ending) -> Parquet + rejects "
                                            "+ report")
    norm.add_argument("input", type=Path, help="the portal CSV file")
    norm.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    norm.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    _lean_process()
    from functions.wifi_ingest.outputs import LocalOutputs, run

    if not args.input.is_file():
        print(f"error: {args.input}: no such file", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    outputs = LocalOutputs.in_dir(str(args.out), args.input.stem)
    size = args.input.stat().st_size
    with open(args.input, "rb") as stream:
        if args.no_progress or size < PROGRESS_MIN_BYTES:
            report = run(stream, outputs, source=str(args.input))
        else:
            from tqdm import tqdm
            with tqdm(total=size, unit="B", unit_scale=True, desc=args.input.name, file=sys.stderr,
                      disable=None) as bar:
                report = run(stream, outputs, source=str(args.input),
                             progress=lambda done: bar.update(done - bar.n))
    print(json.dumps(report.as_dict(), ensure_ascii=False, default=str))
    if report.status != "ok":
        print(f"error: {args.input}: {report.error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
