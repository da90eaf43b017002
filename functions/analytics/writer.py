"""Local lake writer: events -> the Parquet + partition layout Firehose writes to S3 (``layout``).

``ingest_lines`` reads JSON-lines (the device's local sink writes one event per line), validates every event with
the schema module, writes accepted events as Snappy Parquet under ``<lake>/inference/dt=<day>/`` (one file per
``layout.FLUSH_SECONDS`` window, like a Firehose buffer flush) and rejected lines, each with its reasons, as JSON
lines under ``<lake>/errors/local-ingest/``. ``read == accepted + rejected`` always holds, and every line that is
not blank (JSON whitespace only) is in exactly one of the two outputs: no line can make another disappear.

The local writer is stricter than the cloud path: it applies every schema rule, while Firehose only rejects what it
cannot convert or partition (wrong types, missing ``ts``); queries filter on ``event_type`` either way. Beyond the
schema, a value must fit its column as stored (``EVENT_SCHEMA``): integers in 32/64 bits, finite doubles (JSON has no
``NaN``/``Infinity``; ``1e400`` is out of a double's range), text that is valid Unicode, no fields a struct column
does not have, nesting at most ``MAX_DEPTH`` levels.
"""
from __future__ import annotations

import json
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.analytics import layout
from functions.analytics.arrow_schema import EVENT_SCHEMA
from maskcam import schema

_INGEST_NAMES = tuple(name for name, _, _ in layout.INGEST_COLUMNS)
MAX_DEPTH = 16                  # a valid event nests 4 levels (event, detections, detection, box)
MAX_INT_DIGITS = 19             # 2**63 has 19 digits: a longer integer literal fits no column
_JSON_WHITESPACE = " \t\r\n"    # RFC 8259; a line of only these is blank (not a record)
_MAX_PROBLEMS = 10
_DOUBLE_EXACT = 1 << 53          # Arrow refuses larger integers in a double column


@dataclass
class IngestReport:
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    files: list[Path] = field(default_factory=list)
    errors_file: Path | None = None
    blank: int = 0              # lines of JSON whitespace only: not records, not in ``read``

    def __post_init__(self) -> None:
        self.files = list(self.files)

    def add(self, other: IngestReport) -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.blank += other.blank
        self.files.extend(other.files)


class _NotRepresentable(ValueError):
    """A JSON number no column can hold (raised by the parser hooks, reported as the line's problem)."""


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _parse_constant(name: str):
    raise _NotRepresentable(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotRepresentable(f"number {_clip(text)} is out of the range of a double")
    return value


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _NotRepresentable(f"integer {_clip(text)} ({digits} digits) does not fit in 64 bits")
    return int(text)


def _loads(text: str):
    return json.loads(text, parse_constant=_parse_constant, parse_float=_parse_float, parse_int=_parse_int)


def _too_deep(value, limit: int = MAX_DEPTH) -> bool:
    """True when ``value`` nests containers deeper than ``limit`` (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _fit(path: str, dtype: pa.DataType, value, found: list[str]) -> None:
    """Appends to ``found`` why ``value`` cannot be stored as ``dtype`` (Arrow/Parquet), if it cannot."""
    if value is None or len(found) >= _MAX_PROBLEMS:
        return
    if pa.types.is_list(dtype):
        _fit_list(path, dtype, value, found)
    elif pa.types.is_struct(dtype):
        _fit_struct(path, dtype, value, found)
    else:
        problem = _scalar_problem(path, dtype, value)
        if problem:
            found.append(problem)


def _fit_list(path: str, dtype: pa.DataType, value, found: list[str]) -> None:
    if not isinstance(value, list):
        found.append(f"{path} must be a list, got {_clip(repr(value))}")
        return
    for i, item in enumerate(value):
        _fit(f"{path}[{i}]", dtype.value_type, item, found)


def _fit_struct(path: str, dtype: pa.DataType, value, found: list[str]) -> None:
    if not isinstance(value, dict):
        found.append(f"{path} must be an object, got {_clip(repr(value))}")
        return
    names = [dtype.field(i).name for i in range(dtype.num_fields)]
    unknown = sorted(set(value) - set(names))
    if unknown:
        found.append(f"{path} has unknown field(s) {_clip(', '.join(unknown))}")
    for i, name in enumerate(names):
        _fit(f"{path}.{name}", dtype.field(i).type, value.get(name), found)


def _integer_problem(path: str, dtype: pa.DataType, value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{path} must be an integer, got {_clip(repr(value))}"
    if not -(1 << (dtype.bit_width - 1)) <= value < 1 << (dtype.bit_width - 1):
        return f"{path} {value} does not fit the column ({dtype.bit_width}-bit integer)"
    return None


def _float_problem(path: str, dtype: pa.DataType, value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{path} must be a number, got {_clip(repr(value))}"
    if isinstance(value, int) and abs(value) > _DOUBLE_EXACT:
        return f"{path} {value} is an integer a double cannot hold exactly (over 2**53)"
    if not math.isfinite(value):
        return f"{path} {value!r} is not a finite number"
    return None


def _string_problem(path: str, dtype: pa.DataType, value) -> str | None:
    if not isinstance(value, str):
        return f"{path} must be a string, got {_clip(repr(value))}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return (f"{path} is not valid Unicode text ({err.reason} at character {err.start}: "
                "a lone surrogate escape, or bytes that are not UTF-8)")
    return None


def _boolean_problem(path: str, dtype: pa.DataType, value) -> str | None:
    if not isinstance(value, bool):
        return f"{path} must be true or false, got {_clip(repr(value))}"
    return None


_SCALAR_CHECKS = ((pa.types.is_integer, _integer_problem), (pa.types.is_floating, _float_problem),
                  (pa.types.is_string, _string_problem), (pa.types.is_boolean, _boolean_problem))


def _scalar_problem(path: str, dtype: pa.DataType, value) -> str | None:
    """Why ``value`` cannot be a ``dtype`` scalar; ``None`` when it can, or for a column type this checker does not
    know (the table conversion decides, see _flush)."""
    for is_type, problem in _SCALAR_CHECKS:
        if is_type(dtype):
            return problem(path, dtype, value)
    return None


def column_problems(event: dict) -> list[str]:
    """Why the event's values cannot be stored in their ``EVENT_SCHEMA`` columns (empty when they all fit)."""
    found: list[str] = []
    for column in EVENT_SCHEMA:
        _fit(column.name, column.type, event.get(column.name), found)
    return found


def _schema_problems(event: dict) -> list[str]:
    """``schema.problems``, which must judge and not raise: an ``event_type`` object or list made it raise
    (``TypeError: unhashable type``), so such a value is named here first, and anything else it raises becomes
    the line's problem instead of ending the ingest."""
    event_type = event.get("event_type")
    if event_type is not None and not isinstance(event_type, str):
        return [f"event_type must be a string, got {_clip(repr(event_type))}"]
    try:
        return schema.problems(event)
    except Exception as err:  # noqa: BLE001 - a line the schema check cannot judge is rejected, never fatal
        return [f"the schema check failed on this event: {type(err).__name__}: {_clip(str(err), 200)}"]


def check_event(text: str, now_ms: int) -> tuple[dict | None, list[str]]:
    """Parses and validates one JSON line; returns (event, []) or (None, problems). Besides the schema, every value
    must fit its column and ``ts`` must fall into a partition the table's projection covers at ``now_ms`` (as in the
    cloud). Never raises for any text."""
    try:
        event = _loads(text)
    except _NotRepresentable as err:
        return None, [f"not storable JSON: {err}"]
    except RecursionError:
        return None, ["not JSON this reader can parse: nested too deeply"]
    except ValueError as err:
        return None, [f"not JSON: {err}"]
    if _too_deep(event):
        return None, [f"nested deeper than {MAX_DEPTH} levels (an event nests 4)"]
    if isinstance(event, dict):
        device_fields = {k: v for k, v in event.items() if k not in _INGEST_NAMES}
        found = _schema_problems(device_fields)
        if not found:
            found = column_problems(event)
        if not found:
            found = [p for p in [layout.partition_problem(event.get("ts"), event.get("ingest_ts", now_ms))] if p]
    else:
        found = schema.problems(event)
    return (event, []) if not found else (None, found)


def day_of(ts_ms: pa.Array) -> pa.Array:
    """UTC day ``yyyy-MM-dd`` of epoch-millisecond timestamps (the partition value)."""
    stamps = pc.cast(ts_ms, pa.timestamp("ms", tz="UTC"))
    return pc.strftime(stamps, format=layout.PARTITION_STRFTIME)


def write_table(table: pa.Table, lake: Path, *, flush_seconds: int = layout.FLUSH_SECONDS) -> list[Path]:
    """Writes valid events (``EVENT_SCHEMA`` columns) into the partitioned layout; returns the files written.

    Rows are grouped by event day and by ``flush_seconds`` window of ``ts`` (one file each), sorted by ``ts``. Each
    file is written under a temporary name and renamed, so a crash never leaves a partial ``.parquet`` in the lake."""
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
        partial = path.with_name(path.name + ".tmp")
        try:
            pq.write_table(part, partial, compression="snappy")
            os.replace(partial, path)
        finally:
            if partial.exists():
                partial.unlink()
        written.append(path)
    return written


def _rows_to_table(events: list[dict], now_ms: int) -> pa.Table:
    for event in events:
        event.setdefault("ingest_ts", now_ms)
    return pa.Table.from_pylist(events, schema=EVENT_SCHEMA)


@dataclass
class _Line:
    source: str
    number: int
    text: str


def _raw(text: str) -> str:
    """The line without its terminator (one ``\\n``), otherwise as read."""
    return text[:-1] if text.endswith("\n") else text


class _Rejects:
    """The rejects file, opened on the first rejected line. One JSON object per line: source, line, problems, raw
    (the line as read; for files read by ``read_json_lines``, bytes that were not UTF-8 appear as the surrogate
    escapes U+DC80-U+DCFF, so ``raw.encode("utf-8", "surrogateescape")`` gives the original bytes back)."""

    def __init__(self, directory: Path, now_ms: int, report: IngestReport) -> None:
        self.directory, self.now_ms, self.report = directory, now_ms, report
        self.out: BinaryIO | None = None

    def add(self, line: _Line, problems: list[str]) -> None:
        if self.out is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime('%Y%m%dT%H%M%S', time.gmtime(self.now_ms / 1000))
            self.report.errors_file = self.directory / f"rejected-{stamp}-{uuid.uuid4().hex[:8]}.jsonl"
            self.out = self.report.errors_file.open("wb")
        record = {"source": line.source, "line": line.number, "problems": problems, "raw": _raw(line.text)}
        try:
            data = json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: JSON's \\uXXXX escapes keep them exactly
            data = json.dumps(record, ensure_ascii=True).encode("ascii")
        self.out.write(data + b"\n")
        self.report.rejected += 1

    def close(self) -> None:
        if self.out is not None:
            self.out.close()


def _flush(pending: list[tuple[_Line, dict]], lake: Path, now_ms: int, report: IngestReport, rejects: _Rejects) -> None:
    """Writes the accepted lines of one batch. Should the batch not convert to the table as a whole (a value
    ``check_event`` let through that Arrow refuses), each line is converted alone: the ones that fail are rejected
    with Arrow's reason, the others are written. Errors writing the lake (disk, permissions) propagate."""
    if not pending:
        return
    try:
        table = _rows_to_table([event for _, event in pending], now_ms)
    except Exception:
        good = []
        for line, event in pending:
            try:
                _rows_to_table([event], now_ms)
                good.append((line, event))
            except Exception as err:
                rejects.add(line, [f"cannot be stored in the table: {type(err).__name__}: {_clip(str(err), 200)}"])
        pending = good
        table = _rows_to_table([event for _, event in pending], now_ms)
    report.files.extend(write_table(table, lake))
    report.accepted += len(pending)


def ingest_lines(lines: Iterable[tuple[str, int, str]], lake: Path, *, batch_size: int = 50_000,
                 now_ms: int | None = None, progress=None) -> IngestReport:
    """Ingests ``(source, line_number, text)`` tuples into ``lake``; rejected lines go to the errors location.
    Lines of JSON whitespace only are counted in ``blank``; every other line is read, then accepted or rejected."""
    lake = Path(lake)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    report = IngestReport()
    rejects = _Rejects(lake / layout.LOCAL_ERRORS_PREFIX, now_ms, report)
    batch: list[tuple[_Line, dict]] = []
    try:
        for source, number, text in lines:
            if not text.strip(_JSON_WHITESPACE):
                report.blank += 1
                continue
            report.read += 1
            line = _Line(source, number, text)
            event, found = check_event(text, now_ms)
            if event is None:
                rejects.add(line, found)
            else:
                batch.append((line, event))
            if len(batch) >= batch_size:
                _flush(batch, lake, now_ms, report, rejects)
                batch = []
            if progress is not None:
                progress.update(1)
        _flush(batch, lake, now_ms, report, rejects)
    finally:
        rejects.close()
    return report


def read_json_lines(paths: Iterable[Path]) -> Iterator[tuple[str, int, str]]:
    """``(path, line_number, text)`` for every line of the given JSON-lines files. Bytes that are not UTF-8 are
    kept as surrogate escapes (the line is then rejected, its raw text recoverable byte for byte)."""
    for path in paths:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            for number, text in enumerate(handle, start=1):
                yield str(path), number, text
