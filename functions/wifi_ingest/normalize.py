"""Streaming, constant-memory normalizer: portal CSV (UTF-8 or CP949, any line ending) -> Parquet + rejects + report.

Pipeline, one pass, bounded memory:

1. the first MiB decides the encoding and line ending; the header record is parsed with the csv module;
2. the rest is transcoded to UTF-8 in chunks (Python's C codecs) and parsed by pyarrow's CSV reader in blocks
   (quoted commas, quotes and line breaks; CRLF, LF and CR) -- about 3x faster than the csv module and the reason
   the benchmark target is met;
3. each block is converted column-wise with pyarrow compute (trim, empty -> NULL, numbers, dates via their few
   distinct spellings) and written as one Parquet row group, then dropped.

A record that cannot be stored as the table declares is not stored at all: it goes to the rejects file with its
row number, the reason (naming column and value) and its original fields.
"""
from __future__ import annotations

import codecs
import collections
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

from functions.wifi_ingest import values
from functions.wifi_ingest.layout import COLUMNS, HeaderMapping, UnknownLayout, column_label, map_header

SAMPLE_BYTES = 1 << 18          # encoding, line ending and header are decided on the first 256 KiB
BLOCK_BYTES = 1 << 20           # CSV parse block (about 5k records)
READ_AHEAD_BLOCKS = 3           # blocks the reader may fetch ahead of the parser
ROW_GROUP_ROWS = 32_768         # records buffered per Parquet row group
_DATE_CACHE_LIMIT = 100_000
BAD_BYTES_TOLERATED = 0.01      # invalid sequences per non-ASCII byte still taken as the detected encoding

ARROW_TYPES = {"string": pa.string(), "date": pa.date32(), "float": pa.float32()}
SCHEMA = pa.schema([pa.field(c.name, ARROW_TYPES[c.glue_type]) for c in COLUMNS])
REJECTS_PREFIX = ("row", "reason")
_COORD_RANGES = {"latitude": values.LATITUDE_RANGE, "longitude": values.LONGITUDE_RANGE}
_BAD_DATE = object()
_NULL_STRING = pa.scalar(None, pa.string())
_NON_ASCII_SPACES = ("\u3000".encode(), "\u00a0".encode())  # ideographic and no-break space, as UTF-8


class UnusableFile(ValueError):
    """The whole file cannot be ingested (empty, not text, not CSV, unknown column layout)."""


class _Undecodable:
    """Codec error handler: U+FFFD for bytes invalid in the source encoding, counted so that only files that had
    such bytes pay for looking for them."""

    name = "wifi_ingest.replace"
    count = 0

    @classmethod
    def handle(cls, err: UnicodeDecodeError):
        cls.count += 1
        return "\ufffd", err.end


codecs.register_error(_Undecodable.name, _Undecodable.handle)


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
    before = _Undecodable.count
    codecs.getincrementaldecoder(encoding)(errors=_Undecodable.name).decode(data, final=False)
    return _Undecodable.count - before


def detect_line_ending(head: bytes) -> str:
    cr, lf = head.find(b"\r"), head.find(b"\n")
    if cr < 0 and lf < 0:
        return "none"
    if cr >= 0 and (lf < 0 or cr < lf):
        return "CRLF" if head[cr + 1:cr + 2] == b"\n" else "CR"
    return "LF"


class _Transcoder(io.RawIOBase):
    """The source after its header, as UTF-8, for pyarrow's CSV reader.

    The reader fetches blocks (one ``read`` each) on a background thread and would otherwise queue up to 32 of
    them ahead of the parser; ``read`` waits while ``window`` blocks are ahead of the batches the consumer took
    (``taken``), which keeps memory flat."""

    def __init__(self, decoder, pending: str, stream: BinaryIO, consumed: int, window: int) -> None:
        self._decoder = decoder
        self._pending = pending.encode("utf-8")
        self.wide_spaces = any(space in self._pending for space in _NON_ASCII_SPACES)
        self._stream = stream
        self._eof = False
        self._reads = 0
        self._allowed = window
        self._turn = threading.Condition()
        self.bytes_read = consumed

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
        while not self._pending and not self._eof:
            # CP949 Hangul grows by half in UTF-8: reading half of ``size`` keeps most answers unsplit
            chunk = self._stream.read(max(size // 2, 1 << 16) if size > 0 else -1)
            self.bytes_read += len(chunk)
            self._eof = not chunk
            self._pending = self._decoder.decode(chunk, final=self._eof).encode("utf-8")
            if not self.wide_spaces:
                self.wide_spaces = any(space in self._pending for space in _NON_ASCII_SPACES)
        if 0 <= size < len(self._pending):
            out, self._pending = self._pending[:size], self._pending[size:]
        else:
            out, self._pending = self._pending, b""
        return out

    def finish(self) -> None:
        """Lets a background read still waiting return, so the reader's thread can end."""
        self.taken(1 << 62)


@dataclass
class Report:
    source: str
    encoding: str = ""
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
    decoder = codecs.getincrementaldecoder(report.encoding)(errors=_Undecodable.name)
    undecodable_before = _Undecodable.count
    text = decoder.decode(head, final=len(head) < SAMPLE_BYTES)
    header, header_end = _read_header(text)
    try:
        mapping = map_header(header)
    except UnknownLayout as err:
        raise UnusableFile(str(err)) from None
    report.header, report.layout, report.ignored_columns = header, mapping.layout, list(mapping.ignored)

    rejects = _Rejects(rejects_path, header)
    batcher = _Batcher(mapping, report, rejects)
    source_stream = _Transcoder(decoder, text[header_end:], stream, len(head), READ_AHEAD_BLOCKS)
    names = [f"f{i}" for i in range(mapping.width)]
    try:
        reader = pacsv.open_csv(
            source_stream,
            # single-threaded: the invalid-row handler then knows row numbers (and the machine has few cores)
            read_options=pacsv.ReadOptions(column_names=names, block_size=block_bytes, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=batcher.invalid_row),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as err:
        source_stream.finish()
        if "Empty CSV file" not in str(err):
            raise UnusableFile(f"CSV structure broken near row 2: {err}") from None
        reader = iter(())  # header only
    writer = pq.ParquetWriter(data_path, SCHEMA, compression="snappy")
    pending: List[pa.Table] = []
    try:
        while True:
            try:
                batch = next(reader)
            except StopIteration:
                break
            except pa.ArrowInvalid as err:
                raise UnusableFile(f"CSV structure broken near row {batcher.next_row}: {err}") from None
            source_stream.taken()
            pending.append(batcher.convert(batch, check_undecodable=_Undecodable.count > undecodable_before,
                                           wide_spaces=source_stream.wide_spaces))
            if sum(t.num_rows for t in pending) >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending))
                pending = []
            if progress:
                progress(source_stream.bytes_read)
        if any(t.num_rows for t in pending):
            writer.write_table(pa.concat_tables(pending))
    finally:
        source_stream.finish()
        writer.close()
        rejects.close()
    report.bytes_in = source_stream.bytes_read
    report.rows_in = report.rows_ok + report.rows_rejected
    report.seconds = round(time.perf_counter() - started, 3)
    report.outputs = {"data": data_path, "rejects": rejects_path if rejects.written else None}
    return report


class _Batcher:
    """Turns parsed blocks (all fields as strings) into table batches; rejects what does not fit."""

    def __init__(self, mapping: HeaderMapping, report: Report, rejects: _Rejects) -> None:
        self._mapping = mapping
        self._report = report
        self._rejects = rejects
        self._dates: Dict[str, object] = {}
        self._invalid: Deque[int] = collections.deque()   # row numbers of field-count rejects not yet passed
        self.next_row = 2                                    # row number of the next good record (header = 1)

    def _reject(self, row: int, record: Sequence[str], reason: str, column: str) -> None:
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

    def convert(self, batch: pa.RecordBatch, *, check_undecodable: bool, wide_spaces: bool) -> pa.Table:
        problems: Dict[int, List[tuple]] = {}   # record index -> [(column index, reason)]
        arrays = []
        for ci, column in enumerate(COLUMNS):
            raw = batch.column(self._mapping.positions[ci])
            if check_undecodable:
                self._find_undecodable(raw, ci, problems)
            strings = self._strings(raw, wide_spaces)
            if column.glue_type == "date":
                arrays.append(self._to_dates(strings, ci, problems))
            elif column.glue_type == "float":
                arrays.append(self._to_floats(strings, ci, problems))
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

    def _find_undecodable(self, raw: pa.Array, ci: int, problems: Dict[int, List[tuple]]) -> None:
        data = raw.buffers()[2]
        if data is None or "\ufffd".encode() not in data.to_pybytes():
            return
        hit = pc.match_substring(raw, "\ufffd")
        if pc.any(hit).as_py():
            for i in pc.indices_nonzero(hit).to_pylist():
                problems.setdefault(i, []).append(
                    (ci, f"{column_label(ci)}: bytes not valid {self._report.encoding} (shown as U+FFFD) in "
                         f"{raw[i].as_py()!r}"))

    @staticmethod
    def _strings(raw: pa.Array, wide_spaces: bool) -> pa.Array:
        """Trimmed, line breaks as \\n, empty -> NULL. (``raw`` has no NULLs: the reader keeps empty strings.)"""
        arr = pc.utf8_trim_whitespace(raw) if wide_spaces else pc.ascii_trim_whitespace(raw)
        data = arr.buffers()[2]
        if data is not None and b"\r" in data.to_pybytes():
            arr = pc.replace_substring_regex(arr, "\r\n?", "\n")  # line breaks inside quoted values
        non_empty = pc.not_equal(pc.binary_length(arr), 0)
        if non_empty.false_count == 0:
            return arr
        # the same strings with a validity bitmap: no copy of the text
        return pa.Array.from_buffers(pa.string(), len(arr), [non_empty.buffers()[1], *arr.buffers()[1:]],
                                     offset=arr.offset)

    @staticmethod
    def _to_floats(strings: pa.Array, ci: int, problems: Dict[int, List[tuple]]) -> pa.Array:
        low, high = _COORD_RANGES[COLUMNS[ci].name]
        try:  # pyarrow's parser takes what NUMBER_PATTERN does, plus nan/inf, which the range test rejects
            numbers = pc.cast(strings, pa.float32())
        except pa.ArrowInvalid:
            is_number = pc.match_substring_regex(strings, values.NUMBER_PATTERN)
            numbers = pc.cast(pc.if_else(is_number, strings, _NULL_STRING), pa.float32())
        # NULL (empty) passes, NaN compares false and fails; unparsable values are NULL here: is_valid(strings)
        in_range = pc.and_(pc.greater_equal(numbers, low), pc.less_equal(numbers, high))
        bad = pc.invert(pc.fill_null(in_range, True))
        if numbers.null_count > strings.null_count:
            bad = pc.or_(bad, pc.and_(pc.is_valid(strings), pc.is_null(numbers)))
        if not bad.true_count:
            return numbers
        for i in pc.indices_nonzero(bad).to_pylist():
            value = strings[i].as_py()
            why = "not a number" if values.parse_coordinate(value, float("-inf"), float("inf")) is None \
                else "out of range"
            problems.setdefault(i, []).append(
                (ci, f"{column_label(ci)}: {value!r} is {why} (expected a decimal number in "
                     f"[{low:g}, {high:g}])"))
        return pc.if_else(bad, pa.scalar(None, pa.float32()), numbers)

    def _to_dates(self, strings: pa.Array, ci: int, problems: Dict[int, List[tuple]]) -> pa.Array:
        encoded = strings.dictionary_encode()
        cache = self._dates
        if len(cache) > _DATE_CACHE_LIMIT:
            cache.clear()
        parsed = []
        for text in encoded.dictionary.to_pylist():
            value = cache.get(text)
            if value is None:
                value = cache[text] = values.parse_date(text) or _BAD_DATE
            parsed.append(value)
        column = pc.take(pa.array([None if v is _BAD_DATE else v for v in parsed], pa.date32()), encoded.indices)
        if any(v is _BAD_DATE for v in parsed):
            bad = pc.fill_null(pc.take(pa.array([v is _BAD_DATE for v in parsed]), encoded.indices), False)
            for i in pc.indices_nonzero(bad).to_pylist():
                problems.setdefault(i, []).append(
                    (ci, f"{column_label(ci)}: {strings[i].as_py()!r} is not a date "
                         f"(expected {values.DATE_FORMATS})"))
        return column
