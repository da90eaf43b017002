"""Local lake writer: events -> the Parquet + partition layout Firehose writes to S3 (``layout``).

``ingest_lines`` reads JSON-lines (the device's local sink writes one event per line), validates every event with
the schema module, writes accepted events as Snappy Parquet under ``<lake>/inference/dt=<day>/`` (one file per
``layout.FLUSH_SECONDS`` window, like a Firehose buffer flush) and rejected lines, each with its reasons, as JSON
lines under ``<lake>/errors/local-ingest/``. ``read == accepted + rejected`` always holds.

The local writer is stricter than the cloud path: it applies every schema rule, while Firehose only rejects what it
cannot convert or partition (wrong types, missing ``ts``); queries filter on ``event_type`` either way.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.analytics import layout
from functions.analytics.arrow_schema import EVENT_SCHEMA
from functions.edge.maskcam import schema

_INGEST_NAMES = tuple(name for name, _, _ in layout.INGEST_COLUMNS)


@dataclass
class IngestReport:
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    files: List[Path] = field(default_factory=list)
    errors_file: Optional[Path] = None

    def __post_init__(self) -> None:
        self.files = list(self.files)

    def add(self, other: "IngestReport") -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.files.extend(other.files)


def check_event(text: str, now_ms: int) -> Tuple[Optional[dict], List[str]]:
    """Parses and validates one JSON line; returns (event, []) or (None, problems). Besides the schema, ``ts`` must
    fall into a partition the table's projection covers at ``now_ms`` (as in the cloud)."""
    try:
        event = json.loads(text)
    except ValueError as err:
        return None, [f"not JSON: {err}"]
    if isinstance(event, dict):
        device_fields = {k: v for k, v in event.items() if k not in _INGEST_NAMES}
        found = schema.problems(device_fields)
        if not found:
            found = [p for p in [layout.partition_problem(event.get("ts"), event.get("ingest_ts", now_ms))] if p]
    else:
        found = schema.problems(event)
    return (event, []) if not found else (None, found)


def day_of(ts_ms: pa.Array) -> pa.Array:
    """UTC day ``yyyy-MM-dd`` of epoch-millisecond timestamps (the partition value)."""
    stamps = pc.cast(ts_ms, pa.timestamp("ms", tz="UTC"))
    return pc.strftime(stamps, format=layout.PARTITION_STRFTIME)


def write_table(table: pa.Table, lake: Path, *, flush_seconds: int = layout.FLUSH_SECONDS) -> List[Path]:
    """Writes valid events (``EVENT_SCHEMA`` columns) into the partitioned layout; returns the files written.

    Rows are grouped by event day and by ``flush_seconds`` window of ``ts`` (one file each), sorted by ``ts``."""
    if table.num_rows == 0:
        return []
    table = table.select(list(EVENT_SCHEMA.names)).cast(EVENT_SCHEMA)
    table = table.sort_by("ts")
    ts = table.column("ts")
    window = pc.divide(ts, pa.scalar(flush_seconds * 1000, pa.int64()))
    days = day_of(ts)
    keys = pa.table({"dt": days, "window": window}).group_by(["dt", "window"], use_threads=False) \
        .aggregate([]).to_pylist()
    written = []
    for key in keys:
        mask = pc.and_(pc.equal(days, key["dt"]), pc.equal(window, key["window"]))
        part = table.filter(mask)
        directory = Path(lake) / layout.partition_path(key["dt"])
        directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(key["window"] * flush_seconds))
        path = directory / f"local-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
        pq.write_table(part, path, compression="snappy")
        written.append(path)
    return written


def _rows_to_table(events: List[dict], now_ms: int) -> pa.Table:
    for event in events:
        event.setdefault("ingest_ts", now_ms)
    return pa.Table.from_pylist(events, schema=EVENT_SCHEMA)


def ingest_lines(lines: Iterable[Tuple[str, int, str]], lake: Path, *, batch_size: int = 50_000,
                 now_ms: Optional[int] = None, progress=None) -> IngestReport:
    """Ingests ``(source, line_number, text)`` tuples into ``lake``; rejected lines go to the errors location."""
    lake = Path(lake)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    errors_dir = lake / layout.LOCAL_ERRORS_PREFIX
    report = IngestReport()
    errors_out = None
    batch: List[dict] = []
    try:
        for source, number, text in lines:
            if not text.strip():
                continue
            report.read += 1
            event, found = check_event(text, now_ms)
            if event is None:
                if errors_out is None:
                    errors_dir.mkdir(parents=True, exist_ok=True)
                    report.errors_file = errors_dir / f"rejected-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now_ms / 1000))}-{uuid.uuid4().hex[:8]}.jsonl"
                    errors_out = report.errors_file.open("w", encoding="utf-8")
                errors_out.write(json.dumps({"source": source, "line": number, "problems": found,
                                             "raw": text.rstrip("\n")}, ensure_ascii=False) + "\n")
                report.rejected += 1
            else:
                batch.append(event)
                report.accepted += 1
            if len(batch) >= batch_size:
                report.files.extend(write_table(_rows_to_table(batch, now_ms), lake))
                batch = []
            if progress is not None:
                progress.update(1)
        report.files.extend(write_table(_rows_to_table(batch, now_ms), lake))
    finally:
        if errors_out is not None:
            errors_out.close()
    return report


def read_json_lines(paths: Iterable[Path]) -> Iterator[Tuple[str, int, str]]:
    """``(path, line_number, text)`` for every line of the given JSON-lines files."""
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, text in enumerate(handle, start=1):
                yield str(path), number, text
