"""Streaming, constant-memory normalizer: portal CSV (UTF-8 or CP949, any line ending) -> Parquet + rejects + report.

Pipeline, one pass, bounded memory, three threads sharing the cores:

1. the first 64 KiB decide the encoding and line ending; the header record is parsed with the csv module;
2. the rest is transcoded to UTF-8 in chunks (``transcode``: glibc's iconv, else Python's codecs) and parsed by
   pyarrow's CSV reader in blocks (quoted commas, quotes and line breaks; CRLF, LF and CR), both on the reader's
   thread, at most ``READ_AHEAD_BLOCKS`` ahead of the consumer;
3. groups of blocks are converted column-wise with pyarrow compute (``columns``: trim, empty -> NULL, numbers,
   dates via their few distinct spellings) on the calling thread;
4. a writer thread encodes and writes each Parquet row group while the next is converted.

A record that cannot be stored as the table declares is not stored at all: it goes to the rejects file with its
row number, the reason (naming column and value) and its original fields.
"""
from __future__ import annotations

import codecs
import collections
import concurrent.futures
import csv
import io
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Deque, Dict, List, Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from functions.wifi_ingest import columns, values
from functions.wifi_ingest.layout import COLUMNS, HeaderMapping, UnknownLayout, column_label, map_header
from functions.wifi_ingest.transcode import CodecTranscoder, open_transcoder

SAMPLE_BYTES = 1 << 16          # encoding, line ending and header are decided on the first 64 KiB
BLOCK_BYTES = 3 << 18           # CSV parse block (768 KiB, about 3k records)
READ_AHEAD_BLOCKS = 3           # blocks the reader may fetch ahead of the parser
GROUP_BLOCKS = 2                # parsed blocks converted together
ROW_GROUP_ROWS = 16_384         # records buffered per Parquet row group
BAD_BYTES_TOLERATED = 0.01      # invalid sequences per non-ASCII byte still taken as the detected encoding

ARROW_TYPES = {"string": pa.string(), "date": pa.date32(), "float": pa.float32()}
SCHEMA = pa.schema([pa.field(c.name, ARROW_TYPES[c.glue_type]) for c in COLUMNS])
REJECTS_PREFIX = ("row", "reason")
_COORD_RANGES = {"latitude": values.LATITUDE_RANGE, "longitude": values.LONGITUDE_RANGE}


class UnusableFile(ValueError):
    """The whole file cannot be ingested (empty, not text, not CSV, unknown column layout)."""


def detect_encoding(head: bytes) -> str:
    """``utf-8-sig``, ``utf-8`` or ``cp949`` from the first bytes of a file.

    CP949 rather than EUC-KR: CP949 is its superset and decoding as ``euc-kr`` fails on Hangul such as '똠'."""
    if not head:
        raise UnusableFile("empty file (0 bytes)")
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in head:
        raise UnusableFile("not a CSV text file: it contains NUL bytes (binary, or UTF-16/32 text); "
                           "save it as CSV in UTF-8 or CP949/EUC-KR")
    # The right codec decodes the sample with no (or next to no) invalid sequences; the wrong one fails on
    # nearly every Hangul character. A few bad bytes in the right encoding only reject their records.
    errors = {encoding: _count_undecodable(head, encoding) for encoding in ("utf-8", "cp949")}
    encoding = min(errors, key=errors.get)
    wide = sum(1 for b in head if b >= 0x80)
    if errors[encoding] and errors[encoding] > wide * BAD_BYTES_TOLERATED:
        raise UnusableFile(f"not a CSV text file: neither UTF-8 nor CP949/EUC-KR ({errors['utf-8']} invalid "
                           f"UTF-8 and {errors['cp949']} invalid CP949 sequences in the first {len(head)} bytes)")
    return encoding


def _count_undecodable(data: bytes, encoding: str) -> int:
    transcoder = CodecTranscoder(encoding)
    transcoder.convert(data)
    return transcoder.invalid


def detect_line_ending(head: bytes) -> str:
    cr, lf = head.find(b"\r"), head.find(b"\n")
    if cr < 0 and lf < 0:
        return "none"
    if cr >= 0 and (lf < 0 or cr < lf):
        return "CRLF" if head[cr + 1:cr + 2] == b"\n" else "CR"
    return "LF"


class _Utf8Source(io.RawIOBase):
    """The source after its header, as UTF-8, for pyarrow's CSV reader.

    The reader fetches blocks (one ``read`` each) on a background thread, where the transcoding happens too, and
    would otherwise queue up to 32 of them ahead of the parser; ``read`` waits while ``window`` blocks are ahead of
    the batches the consumer took (``taken``), which keeps memory flat."""

    def __init__(self, transcoder, pending: bytes, stream: BinaryIO, consumed: int, window: int) -> None:
        self._transcoder = transcoder
        self._pending = pending
        self._stream = stream
        self._eof = False
        self._reads = 0
        self._allowed = window
        self._turn = threading.Condition()
        self.bytes_read = consumed
        self.closed_early = False

    @property
    def replacements(self) -> bool:
        """Whether undecodable bytes were replaced by U+FFFD so far."""
        return self._transcoder.invalid > 0

    def taken(self, blocks: int = 1) -> None:
        with self._turn:
            self._allowed += blocks
            self._turn.notify_all()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (fewer is fine for pyarrow; ``b""`` only at the end)."""
        with self._turn:  # the timeout only guards against a parser that needs more than the window
            self._turn.wait_for(lambda: self._reads < self._allowed, timeout=2.0)
            self._reads += 1
        if self.closed_early:
            return b""
        while not self._pending and not self._eof:
            # CP949 Hangul grows by half in UTF-8: reading half of ``size`` keeps most answers unsplit
            chunk = self._stream.read(max(size // 2, 1 << 16) if size > 0 else -1)
            self.bytes_read += len(chunk)
            self._eof = not chunk
            self._pending = self._transcoder.convert(chunk, final=self._eof)
        if 0 <= size < len(self._pending):
            out, self._pending = self._pending[:size], self._pending[size:]
        else:
            out, self._pending = self._pending, b""
        return out

    def finish(self) -> None:
        """Ends the stream early (an error, an interrupt): reads return end-of-file from now on."""
        self.closed_early = True
        self.taken(1 << 62)


@dataclass
class Report:
    source: str
    encoding: str = ""
    transcoder: str = ""
    line_ending: str = ""
    layout: str = ""
    header: List[str] = field(default_factory=list)
    ignored_columns: List[str] = field(default_factory=list)
    rows_in: int = 0
    rows_ok: int = 0
    rows_rejected: int = 0
    rejected_by_column: Dict[str, int] = field(default_factory=dict)
    bytes_in: int = 0
    seconds: float = 0.0
    status: str = "ok"
    error: Optional[str] = None
    outputs: Dict[str, Optional[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(vars(self))


class _Rejects:
    """CSV (UTF-8 with BOM, so spreadsheet programs show Hangul) of rejected records, created on first use.

    Columns: row (CSV row number in the source: header = 1, blank lines not counted), reason, then the record's
    original fields under the source header."""

    def __init__(self, path: str, header: Sequence[str]) -> None:
        self.path = path
        self._header = header
        self._file = None
        self._writer = None

    def add(self, row: int, reason: str, record: Sequence[str]) -> None:
        if self._writer is None:
            self._file = open(self.path, "w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._file, lineterminator="\r\n")
            self._writer.writerow([*REJECTS_PREFIX, *self._header])
        self._writer.writerow([row, reason, *record])

    @property
    def written(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _read_header(text: str):
    """(first non-blank CSV record, characters it and any blank lines before it take) of decoded text."""
    sio = io.StringIO(text, newline="")
    reader = csv.reader(sio)
    try:
        for record in reader:
            if record:
                return record, sio.tell()
    except csv.Error as err:
        raise UnusableFile(f"not a CSV file: {err} at line {reader.line_num}") from None
    raise UnusableFile("no header: the file holds only blank lines")


def normalize(stream: BinaryIO, data_path: str, rejects_path: str, *, source: str,
              progress: Optional[Callable[[int], None]] = None, block_bytes: int = BLOCK_BYTES) -> Report:
    """Reads a portal CSV from ``stream``; writes the table's Parquet file and, if any record is rejected, the
    rejects CSV. Returns the report; raises ``UnusableFile`` when nothing of the file can be used.

    ``progress`` is called with the number of input bytes consumed so far after every block."""
    started = time.perf_counter()
    report = Report(source=source)
    head = stream.read(SAMPLE_BYTES)
    report.encoding = detect_encoding(head)
    report.line_ending = detect_line_ending(head)
    transcoder = open_transcoder("utf-8" if report.encoding == "utf-8-sig" else report.encoding)
    report.transcoder = transcoder.name
    utf8 = transcoder.convert(head[len(codecs.BOM_UTF8):] if report.encoding == "utf-8-sig" else head,
                              final=len(head) < SAMPLE_BYTES)
    text = utf8.decode("utf-8")  # valid: invalid input became U+FFFD, a split sequence waits for the next chunk
    header, header_end = _read_header(text)
    try:
        mapping = map_header(header)
    except UnknownLayout as err:
        raise UnusableFile(str(err)) from None
    report.header, report.layout, report.ignored_columns = header, mapping.layout, list(mapping.ignored)

    rejects = _Rejects(rejects_path, header)
    batcher = _Batcher(mapping, report, rejects)
    source_stream = _Utf8Source(transcoder, utf8[len(text[:header_end].encode("utf-8")):], stream, len(head),
                                READ_AHEAD_BLOCKS)
    names = [f"f{i}" for i in range(mapping.width)]

    def invalid_row(row) -> str:  # rows cut short by an early end (an error being handled) are not rejects
        return "skip" if source_stream.closed_early else batcher.invalid_row(row)

    try:
        reader = pacsv.open_csv(
            source_stream,
            # single-threaded: the invalid-row handler then knows row numbers (and the machine has few cores)
            read_options=pacsv.ReadOptions(column_names=names, block_size=block_bytes, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid_row),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, null_values=[""],
                                                 strings_can_be_null=True, quoted_strings_can_be_null=True),
        )
    except pa.ArrowInvalid as err:
        if "Empty CSV file" not in str(err):
            raise UnusableFile(f"CSV structure broken near row 2: {err}") from None
        reader = iter(())  # header only
    writer = pq.ParquetWriter(data_path, SCHEMA, compression="snappy")
    sink = _RowGroups(writer)
    try:
        # Three threads share the cores: Arrow's reader thread transcodes and parses, this one converts, and the
        # sink's thread encodes and writes the previous row group (the Arrow kernels and iconv release the GIL).
        # Blocks are converted in groups: the Python cost per kernel call is then paid once per group.
        group: List[pa.RecordBatch] = []
        while True:
            try:
                batch = next(reader, None)
            except pa.ArrowInvalid as err:
                raise UnusableFile(f"CSV structure broken near row {batcher.next_row}: {err}") from None
            if batch is not None:
                source_stream.taken()
                group.append(batch)
            if group and (batch is None or len(group) == GROUP_BLOCKS):
                sink.add(batcher.convert(pa.Table.from_batches(group), check_undecodable=source_stream.replacements))
                group = []
            if progress:
                progress(source_stream.bytes_read)
            if batch is None:
                break
        sink.close()
    finally:
        _stop(reader, source_stream)
        transcoder.close()
        writer.close()
        rejects.close()
    report.bytes_in = source_stream.bytes_read
    report.rows_in = report.rows_ok + report.rows_rejected
    report.seconds = round(time.perf_counter() - started, 3)
    report.outputs = {"data": data_path, "rejects": rejects_path if rejects.written else None}
    return report


def _stop(reader, source: _Utf8Source) -> None:
    """Ends Arrow's reader thread before returning: on an error or interrupt it would otherwise still call into
    ``source`` while Python shuts down (a crash). With the source at end-of-file the reader drains in a few blocks."""
    source.finish()
    try:
        for _ in reader:
            pass
    except pa.ArrowInvalid:
        pass


class _RowGroups:
    """Collects converted blocks and writes them as Parquet row groups of about ``ROW_GROUP_ROWS`` records."""

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self._writer = writer
        self._tables: List[pa.Table] = []
        self._rows = 0
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wifi-write")
        self._writing: Optional[concurrent.futures.Future] = None

    def add(self, table: pa.Table) -> None:
        self._tables.append(table)
        self._rows += table.num_rows
        if self._rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        """Hands the collected blocks to the writing thread, after the row group it is writing, if any."""
        if self._rows:
            self._wait()
            self._writing = self._thread.submit(self._writer.write_table, pa.concat_tables(self._tables))
        self._tables, self._rows = [], 0

    def _wait(self) -> None:
        if self._writing is not None:
            self._writing.result()
            self._writing = None

    def close(self) -> None:
        """Writes what is left and waits for it; the file itself is closed by the owner of the writer."""
        try:
            self.flush()
            self._wait()
        finally:
            self._thread.shutdown()


class _Batcher:
    """Turns parsed blocks (all fields as strings) into table batches; rejects what does not fit."""

    def __init__(self, mapping: HeaderMapping, report: Report, rejects: _Rejects) -> None:
        self._mapping = mapping
        self._report = report
        self._rejects = rejects
        self._dates = {ci: columns.DateColumn() for ci, c in enumerate(COLUMNS) if c.glue_type == "date"}
        self._invalid: Deque[int] = collections.deque()   # row numbers of field-count rejects not yet passed
        self.next_row = 2                                    # row number of the next good record (header = 1)
        self._lock = threading.Lock()

    def _reject(self, row: int, record: Sequence[str], reason: str, column: str) -> None:
        with self._lock:  # the parser's thread (field counts) and the converting thread (values) both reject
            self._report.rows_rejected += 1
            counts = self._report.rejected_by_column
            counts[column] = counts.get(column, 0) + 1
            self._rejects.add(row, reason, record)

    def invalid_row(self, row) -> str:
        """pyarrow's handler for a record whose field count differs from the header's."""
        number = row.number + 1  # the parser counts from the first record after the header
        self._invalid.append(number)
        record = next(csv.reader(io.StringIO(row.text, newline="")), [])
        self._reject(number, record, f"expected {row.expected_columns} fields as in the header, got "
                                     f"{row.actual_columns}", "field count")
        return "skip"

    def _row_numbers(self, count: int) -> List[int]:
        """Row numbers of the next ``count`` good records: consecutive, skipping rows the parser rejected."""
        numbers, row, invalid = [], self.next_row, self._invalid
        while len(numbers) < count:
            while invalid and invalid[0] < row:
                invalid.popleft()
            if invalid and invalid[0] == row:
                invalid.popleft()
            else:
                numbers.append(row)
            row += 1
        self.next_row = row
        return numbers

    def _advance(self, count: int) -> None:
        row, invalid = self.next_row, self._invalid
        end = row + count
        while invalid and invalid[0] < end:
            if invalid.popleft() >= row:
                end += 1
        self.next_row = end

    def convert(self, batch: pa.Table, *, check_undecodable: bool) -> pa.Table:
        problems: Dict[int, List[tuple]] = {}   # record index -> [(column index, reason)]

        def note(ci: int, bad: List[int], source: pa.Array, why: Callable[[object], str]) -> None:
            for i in bad:
                problems.setdefault(i, []).append((ci, f"{column_label(ci)}: {why(source[i].as_py())}"))

        arrays = []
        for ci, column in enumerate(COLUMNS):
            raw = batch.column(self._mapping.positions[ci])
            if check_undecodable:
                note(ci, columns.undecodable(raw), raw, self._undecodable_reason)
            strings = columns.clean_strings(raw)
            if column.glue_type == "date":
                dates, bad = self._dates[ci](strings)
                note(ci, bad, strings, lambda v: f"{v!r} is not a date (expected {values.DATE_FORMATS})")
                arrays.append(dates)
            elif column.glue_type == "float":
                low, high = _COORD_RANGES[column.name]
                numbers, bad = columns.coordinates(strings, low, high)
                note(ci, bad, strings, lambda v: _coordinate_reason(v, low, high))
                arrays.append(numbers)
            else:
                arrays.append(strings)
        if all(arr.null_count for arr in arrays):  # else no record can be entirely empty
            all_empty = pc.is_null(arrays[0])
            for arr in arrays[1:]:
                all_empty = pc.and_(all_empty, pc.is_null(arr))
            for i in pc.indices_nonzero(all_empty).to_pylist():
                problems.setdefault(i, []).append((None, "all fields empty"))
        table = pa.Table.from_arrays(arrays, schema=SCHEMA)
        if not problems:
            self._advance(batch.num_rows)
            self._report.rows_ok += batch.num_rows
            return table
        numbers = self._row_numbers(batch.num_rows)
        bad = sorted(problems)
        originals = batch.take(pa.array(bad)).to_pylist()
        for i, original in zip(bad, originals):
            found = problems[i]
            self._reject(numbers[i], list(original.values()), "; ".join(reason for _, reason in found),
                         ",".join(COLUMNS[ci].name if ci is not None else "all" for ci, _ in found))
        self._report.rows_ok += batch.num_rows - len(bad)
        keep = pc.invert(pc.is_in(pa.array(range(batch.num_rows)), pa.array(bad)))
        return table.filter(keep)

    def _undecodable_reason(self, value: str) -> str:
        return (f"bytes not valid {self._report.encoding} (shown as U+FFFD, or text an earlier conversion already "
                f"lost) in {value!r}")


def _coordinate_reason(value: str, low: float, high: float) -> str:
    why = "not a number" if values.parse_coordinate(value, float("-inf"), float("inf")) is None else "out of range"
    return f"{value!r} is {why} (expected a decimal number in [{low:g}, {high:g}])"
