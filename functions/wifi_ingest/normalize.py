"""Streaming, constant-memory normalizer: portal CSV (UTF-8 or CP949, any line ending) -> Parquet + rejects + report.

Pipeline, one pass, bounded memory, three threads sharing the cores:

1. the first 64 KiB decide the encoding and line ending; the header record is parsed with the csv module;
2. the rest is transcoded to UTF-8 in chunks (``transcode``: glibc's iconv, else Python's codecs) and parsed by
   pyarrow's CSV reader in blocks (quoted commas, quotes and line breaks; CRLF, LF and CR), both on the reader's
   thread, at most ``READ_AHEAD_BLOCKS`` ahead of the consumer;
3. groups of blocks are converted column-wise with pyarrow compute (``columns``: trim, empty -> NULL, numbers,
   dates via their few distinct spellings) on the calling thread;
4. a writer thread encodes and writes each Parquet row group while the next is converted.

**When Arrow's reading cannot be trusted** the file is read again from the start with the recovering line reader
(``lines``; the report says ``parser: lines`` and why in ``parser_note``): Arrow's reader stopped (a record longer
than two blocks, a broken structure), or a record it read spans lines (a quoted line break, legitimate or an
unbalanced quote swallowing what follows), or the last line ends inside a quote. Files without those, nearly all,
are read once by Arrow; both readers give the same records for them (a property test holds them to it).

A record that cannot be stored as the table declares is not stored at all: it goes to the rejects file with its
row number, the reason (naming column and value) and its original fields. The input is only read, never changed.
"""
from __future__ import annotations

import codecs
import collections
import concurrent.futures
import contextlib
import csv
import datetime as dt
import io
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO
from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from functions.wifi_ingest import columns, lines, values
from functions.wifi_ingest.layout import COLUMNS, HeaderMapping, UnknownLayout, column_label, map_header
from functions.wifi_ingest.transcode import CodecTranscoder, Transcoder, open_transcoder

if TYPE_CHECKING:
    from _csv import Writer as CsvWriter

SAMPLE_BYTES = 1 << 16          # encoding, line ending and header are decided on the first 64 KiB
BLOCK_BYTES = 3 << 18           # CSV parse block (768 KiB, about 3k records)
READ_AHEAD_BLOCKS = 3           # blocks the reader may fetch ahead of the parser
GROUP_BLOCKS = 2                # parsed blocks converted together
ROW_GROUP_ROWS = 16_384         # records buffered per Parquet row group
BAD_BYTES_TOLERATED = 0.1       # invalid sequences per non-ASCII byte still taken as the detected encoding
BAD_SEQUENCES_TOLERATED = 8     # ... and at least this many (one bad 5-byte sequence in a small file is 5)
MAX_VALUE_BYTES = 100_000       # a longer value (UTF-8 bytes) rejects its record
MAX_RECORD_CHARS = 16 << 20     # the line reader keeps at most this much of one record (memory bound)
LINE_CHUNK_BYTES = 1 << 20      # input read per step by the line reader
LINE_BATCH_RECORDS = 8192       # records the line reader converts together
PARSERS = ("auto", "arrow", "lines")

ARROW_TYPES = {"string": pa.string(), "date": pa.date32(), "float": pa.float32()}
SCHEMA = pa.schema([pa.field(c.name, ARROW_TYPES[c.glue_type]) for c in COLUMNS])
REJECTS_PREFIX = ("row", "reason")
_COORD_RANGES = {"latitude": values.LATITUDE_RANGE, "longitude": values.LONGITUDE_RANGE}
_COORD_WHAT = {"latitude": "latitude", "longitude": "longitude"}


class UnusableFile(ValueError):
    """The whole file cannot be ingested (empty, not text, not CSV, unknown column layout)."""


class _UseLineReader(Exception):
    """Arrow's reading of this file cannot be trusted (the message says why); read it with ``lines``."""


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
    # nearly every Hangul character. A few bad bytes in the right encoding only reject their records (also in a
    # small file, where one bad sequence is a large share); binary data fails both codecs on most of its bytes.
    errors = {encoding: _count_undecodable(head, encoding) for encoding in ("utf-8", "cp949")}
    encoding = min(errors, key=errors.__getitem__)
    wide = sum(1 for b in head if b >= 0x80)
    if errors[encoding] > max(wide * BAD_BYTES_TOLERATED, min(BAD_SEQUENCES_TOLERATED, wide / 2)):
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


def _line_break(find, start: int, end: int) -> int:
    """Position of the first CR or LF in [start, end) of a bytes object (its ``find``), -1 if none."""
    lf, cr = find(b"\n", start, end), find(b"\r", start, end)
    return lf if cr < 0 else cr if lf < 0 else min(lf, cr)


class _Utf8Source(io.RawIOBase):
    """The source after its header, as UTF-8, for pyarrow's CSV reader.

    The reader fetches blocks (one ``read`` each) on a background thread, where the transcoding happens too, and
    would otherwise queue up to 32 of them ahead of the parser; ``read`` waits while ``window`` blocks are ahead of
    the batches the consumer took (``taken``), which keeps memory flat. ``finish`` ends the stream early.

    Every Python object Arrow holds (the file object it reads, ``for_arrow``; each block ``read`` returns; the
    invalid-row handler, ``lend``) is released by Arrow with the GIL taken, on whichever of its threads drops the
    last reference. Should that happen while Python shuts down, that thread is ended inside a C++ destructor and the
    process aborts ("terminate called without an active exception", exit -6): ``wait_returned`` waits until Arrow
    has released all of them (see ``_stop``)."""

    def __init__(self, transcoder, pending: bytes, stream: BinaryIO, consumed: int, window: int) -> None:
        self._transcoder = transcoder
        self._pending = pending
        self._stream = stream
        self._eof = False
        self._reads = 0
        self._allowed = window
        self._turn = threading.Condition()
        self._tail: collections.deque[bytes] = collections.deque(maxlen=3)
        # Python objects Arrow still holds, by the identity of their weak reference: a set would hash the referents
        # (a memoryview hashes its whole block) and take two blocks of the same bytes for one
        self._lent: dict[int, weakref.ref] = {}
        self.bytes_read = consumed
        self.closed_early = False
        self.may_have_equals = False
        self.may_have_marks = False
        self.may_have_long_values = False
        self._since_break = 0

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

    def lend(self, obj):
        """``obj``, counted as held by Arrow until the last reference to it goes (``wait_returned``)."""
        with self._turn:
            ref = weakref.ref(obj, self._returned)
            self._lent[id(ref)] = ref
        return obj

    def _returned(self, ref: weakref.ref) -> None:
        with self._turn:   # (a reentrant lock: this may run in a thread that holds it)
            self._lent.pop(id(ref), None)
            self._turn.notify_all()

    def for_arrow(self) -> io.RawIOBase:
        """The file object to give Arrow: this source, behind an object only Arrow holds (so it can be seen to be
        released)."""
        return self.lend(_ArrowFile(self))

    def read(self, size: int = -1) -> memoryview:
        """Up to ``size`` bytes (fewer is fine for pyarrow; empty only at the end), as a view ``lend`` counts:
        pyarrow wraps it without a copy, and the block lives as long as Arrow's buffers refer to it."""
        with self._turn:  # the timeout only guards against a parser that needs more than the window
            if not self._turn.wait_for(lambda: self._reads < self._allowed or self.closed_early, timeout=2.0):
                # no batch came out of the last window (a file whose rows all fail, lined up with the blocks): from
                # now on Arrow's own read-ahead bounds memory; throttling on would wait 2 s per block
                self._allowed = 1 << 62
            self._reads += 1
        out = b""
        if not self.closed_early:
            out = self._next(size)
            if out:
                self._tail.append(out)
                self._look(out)
        return self.lend(memoryview(out))

    def _next(self, size: int) -> bytes:
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

    def _look(self, out: bytes) -> None:
        """Cheap hints for the converter (memchr-speed finds, a few per block): no ``=`` and no line longer than
        ``MAX_VALUE_BYTES`` so far means no value can start like a formula or be too long."""
        if not self.may_have_equals and out.find(b"=") >= 0:
            self.may_have_equals = True
        if not self.may_have_marks and out.find(b"\xef") >= 0 and out.find(codecs.BOM_UTF8) >= 0:
            self.may_have_marks = True   # (one byte first: memchr; Hangul is EA..ED in UTF-8)
        if self.may_have_long_values:
            return
        first, last = _line_break(out.find, 0, len(out)), max(out.rfind(b"\n"), out.rfind(b"\r"))
        if first < 0:
            self._since_break += len(out)
        else:
            step = MAX_VALUE_BYTES // 2   # a gap over twice this holds a whole window without a line break
            gap_found = self._since_break + first > MAX_VALUE_BYTES or any(
                _line_break(out.find, start, start + step) < 0 for start in range(first, last - step + 1, step))
            self._since_break = len(out) - last - 1
            self.may_have_long_values = gap_found
        if self._since_break > MAX_VALUE_BYTES:
            self.may_have_long_values = True

    def ends_inside_quotes(self) -> bool:
        """Whether the text ends (without a line break) on a line whose quoted value never closes: Arrow takes
        that value to the end of the file, the line reader rejects it."""
        tail = b"".join(self._tail)
        if not tail or tail.endswith((b"\n", b"\r")):
            return False  # a value open across the final line break would hold it: found by the line check
        last = tail[max(tail.rfind(b"\n"), tail.rfind(b"\r")) + 1:].decode("utf-8", "replace")
        return '"' in last and lines.open_quote(last)

    def finish(self) -> None:
        """Ends the stream early (an error, an interrupt): reads return end-of-file from now on."""
        self.closed_early = True
        self.taken(1 << 62)

    def wait_returned(self, timeout: float = 10.0) -> bool:
        """Waits until Arrow holds none of the objects ``lend`` counted (the reader, with its queued blocks, must
        be gone first); ``False`` if some are still held after ``timeout`` seconds. Waiting releases the GIL, which
        Arrow's threads take to release them."""
        with self._turn:
            return self._turn.wait_for(lambda: not self._lent, timeout=timeout)


class _ArrowFile(io.RawIOBase):
    """What Arrow reads: ``source``'s ``read``, from an object of its own (see ``_Utf8Source.for_arrow``). ``read`` is
    the source's bound method, not a method of this class: an error raised in a read carries a traceback, which would
    hold a frame of this object's own (its ``self``) until the error is handled, and ``wait_returned`` would wait in
    vain for Arrow to let go of it."""

    def __init__(self, source: _Utf8Source) -> None:
        super().__init__()
        self.read = source.read   # type: ignore[method-assign]

    def readable(self) -> bool:
        return True


@dataclass
class Report:
    source: str
    encoding: str = ""
    transcoder: str = ""
    line_ending: str = ""
    layout: str = ""
    header: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    rows_in: int = 0
    rows_ok: int = 0
    rows_rejected: int = 0
    rejected_by_column: dict[str, int] = field(default_factory=dict)
    bytes_in: int = 0
    seconds: float = 0.0
    status: str = "ok"
    error: str | None = None
    parser: str = ""                    # "arrow" (the fast path) or "lines" (the recovering reader)
    parser_note: str | None = None   # why the line reader was used
    outputs: dict[str, str | None] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(vars(self))


# A cell starting with one of these is a formula to a spreadsheet program (OWASP "CSV injection": = + - @, tab,
# CR, LF; the full-width forms too, which some programs fold). A leading apostrophe makes it text, and the program
# does not show it; the record's original bytes stay in the source file, which is never modified.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
CELL_CHARS = 32_000   # Excel holds at most 32,767 characters in a cell


def spreadsheet_cell(value) -> str:
    """``value`` as a cell of a CSV meant for spreadsheet programs: never a formula, never over a cell's size."""
    text = "" if value is None else str(value)
    if len(text) > CELL_CHARS:
        text = f"{text[:CELL_CHARS]}... [cut: {len(text)} characters]"
    return "'" + text if text.startswith(FORMULA_START) else text


class _Rejects:
    """CSV (UTF-8 with BOM, so spreadsheet programs show Hangul) of rejected records, created on first use.

    Columns: row (CSV row number in the source: header = 1, blank lines not counted), reason, then the record's
    original fields under the source header, every cell through ``spreadsheet_cell`` (people open this file)."""

    def __init__(self, path: str, header: Sequence[str]) -> None:
        self.path = path
        self._header = header
        self._file: TextIO | None = None
        self._writer: CsvWriter | None = None

    def add(self, row: int, reason: str, record: Sequence[str]) -> None:
        writer = self._writer
        if writer is None:
            self._file = file = open(self.path, "w", encoding="utf-8-sig", newline="")
            self._writer = writer = csv.writer(file, lineterminator="\r\n")
            writer.writerow([spreadsheet_cell(c) for c in (*REJECTS_PREFIX, *self._header)])
        writer.writerow([row, *(spreadsheet_cell(c) for c in (reason, *record))])

    @property
    def written(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


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


@contextlib.contextmanager
def _seekable(stream: BinaryIO):
    """``stream`` if it can be read twice, else a temporary copy of it (the line reader may need a second pass)."""
    try:
        seekable = stream.seekable()
    except (AttributeError, ValueError, OSError):
        seekable = False
    if seekable:
        yield stream
        return
    with tempfile.TemporaryFile() as copy:
        shutil.copyfileobj(stream, copy, 1 << 20)
        copy.seek(0)
        yield copy


@dataclass
class _Text:
    """The start of a file: its header and the UTF-8 text after it, with the transcoder to continue."""

    transcoder: Transcoder
    header: list[str]
    rest: bytes          # UTF-8 after the header (from the sample)
    consumed: int        # source bytes read for the sample


def _open_text(stream: BinaryIO, report: Report) -> _Text:
    head = stream.read(SAMPLE_BYTES)
    report.encoding = detect_encoding(head)
    report.line_ending = detect_line_ending(head)
    transcoder = open_transcoder("utf-8" if report.encoding == "utf-8-sig" else report.encoding)
    report.transcoder = transcoder.name
    utf8 = transcoder.convert(head[len(codecs.BOM_UTF8):] if report.encoding == "utf-8-sig" else head,
                              final=len(head) < SAMPLE_BYTES)
    text = utf8.decode("utf-8", "replace")  # valid: invalid input became U+FFFD, a split sequence waits
    header, header_end = _read_header(text)
    return _Text(transcoder, header, utf8[len(text[:header_end].encode("utf-8")):], len(head))


class _Pass:
    """One reading of the file into fresh outputs (the Parquet file and the rejects are rewritten)."""

    def __init__(self, data_path: str, rejects_path: str, mapping: HeaderMapping, report: Report) -> None:
        report.rows_ok = report.rows_rejected = 0
        report.rejected_by_column = {}
        self.rejects = _Rejects(rejects_path, mapping.header)
        self.batcher = _Batcher(mapping, report, self.rejects)
        self.writer = pq.ParquetWriter(data_path, SCHEMA, compression="snappy")
        self.sink = _RowGroups(self.writer)

    def close(self, complete: bool) -> None:
        """Ends the pass; an incomplete one removes the rejects it wrote (the next pass writes its own)."""
        try:
            if complete:
                self.sink.close()
            else:
                self.sink.abandon()
        finally:
            self.writer.close()
            self.rejects.close()
            if not complete and self.rejects.written and os.path.exists(self.rejects.path):
                os.remove(self.rejects.path)


def normalize(stream: BinaryIO, data_path: str, rejects_path: str, *, source: str,
              progress: Callable[[int], None] | None = None, block_bytes: int = BLOCK_BYTES,
              parser: str = "auto") -> Report:
    """Reads a portal CSV from ``stream``; writes the table's Parquet file and, if any record is rejected, the
    rejects CSV. Returns the report; raises ``UnusableFile`` when nothing of the file can be used.

    ``progress`` is called with the number of input bytes consumed so far after every block (from 0 again when
    the file is read a second time). ``parser``: ``auto`` (Arrow, the line reader where Arrow cannot be trusted),
    ``lines`` (only the line reader) or ``arrow`` (only Arrow: ``UnusableFile`` where it cannot be trusted); the
    last two are for tests and diagnosis."""
    if parser not in PARSERS:
        raise ValueError(f"parser must be one of {PARSERS}, not {parser!r}")
    started = time.perf_counter()
    report = Report(source=source)
    with _seekable(stream) as stream:
        start = stream.tell()
        text = _open_text(stream, report)
        try:
            mapping = map_header(text.header)
        except UnknownLayout as err:
            raise UnusableFile(str(err)) from None
        report.header, report.layout, report.ignored_columns = text.header, mapping.layout, list(mapping.ignored)
        written = None
        if parser != "lines":
            try:
                written = _arrow_pass(stream, text, mapping, report, data_path, rejects_path, progress, block_bytes)
                report.parser = "arrow"
            except _UseLineReader as why:
                if parser == "arrow":
                    raise UnusableFile(str(why)) from None
                report.parser_note = str(why)
                stream.seek(start)
                text = _open_text(stream, report)
        if written is None:
            written = _line_pass(stream, text, mapping, report, data_path, rejects_path, progress)
            report.parser = "lines"
    report.rows_in = report.rows_ok + report.rows_rejected
    report.seconds = round(time.perf_counter() - started, 3)
    report.outputs = {"data": data_path, "rejects": rejects_path if written else None}
    return report


def _arrow_pass(stream, text: _Text, mapping: HeaderMapping, report: Report, data_path: str, rejects_path: str,
                progress, block_bytes: int) -> bool:
    """The fast path; returns whether rejects were written. Raises ``_UseLineReader`` (outputs abandoned)."""
    out = _Pass(data_path, rejects_path, mapping, report)
    batcher = out.batcher
    # Arrow drops a byte-order mark at the start of what it reads, which here is a record (U+FEFF is text after
    # the header): a blank line first keeps it (blank lines are skipped and not counted).
    rest = b"\n" + text.rest if not text.rest or text.rest.startswith(codecs.BOM_UTF8) else text.rest
    source_stream = _Utf8Source(text.transcoder, rest, stream, text.consumed, READ_AHEAD_BLOCKS)
    names = [f"f{i}" for i in range(mapping.width)]

    def invalid_row(row) -> str:  # rows cut short by an early end (an error being handled) are not rejects
        return "skip" if source_stream.closed_early else batcher.invalid_row(row)

    reader, complete = None, False
    quiet = _QuietTextErrors(invalid_row)
    quiet.__enter__()
    try:
        reader = _open_arrow_reader(source_stream.for_arrow(), names, block_bytes, source_stream.lend(invalid_row))
        # Three threads share the cores: Arrow's reader thread transcodes and parses, this one converts, and the
        # sink's thread encodes and writes the previous row group (the Arrow kernels and iconv release the GIL).
        # Blocks are converted in groups: the Python cost per kernel call is then paid once per group.
        group: list[pa.RecordBatch] = []
        while reader is not None:
            try:
                batch = next(reader, None)
            except pa.ArrowInvalid as err:
                raise _UseLineReader(f"Arrow's CSV reader stopped near row {batcher.next_row}: {err}") from None
            if batcher.spanning_row is not None:
                raise _UseLineReader(f"record {batcher.spanning_row} spans lines, or Arrow could not give its text")
            if batch is not None:
                source_stream.taken()
                group.append(batch)
            if group and (batch is None or len(group) == GROUP_BLOCKS):
                out.sink.add(_convert_group(batcher, group, source_stream))
                group = []
            if progress:
                progress(source_stream.bytes_read)
            if batch is None:
                break
        if source_stream.ends_inside_quotes():
            raise _UseLineReader("the last line ends inside a quoted value")
        complete = True
    finally:
        _drain(reader, source_stream)
        quiet.__exit__()
        reader = None                 # the last references but Arrow's own: ``_stop`` waits for those
        del invalid_row
        _stop(source_stream)
        out.close(complete)
    report.bytes_in = source_stream.bytes_read
    return out.rejects.written


def _open_arrow_reader(source_file: io.RawIOBase, names: list[str], block_bytes: int, invalid_row):
    """Arrow's streaming CSV reader over ``source_file`` (every field a string), ``None`` for an empty file."""
    try:
        return pacsv.open_csv(
            source_file,
            # single-threaded: the invalid-row handler then knows row numbers (and the machine has few cores)
            read_options=pacsv.ReadOptions(column_names=names, block_size=block_bytes, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid_row),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 null_values=[""], strings_can_be_null=True,
                                                 quoted_strings_can_be_null=True),
        )
    except pa.ArrowInvalid as err:
        message = str(err)
    # raised here, without this frame's arguments: the error must not keep what Arrow was lent (``_stop`` waits)
    del source_file, invalid_row
    if "Empty CSV file" not in message:
        raise _UseLineReader(f"Arrow's CSV reader stopped near row 2: {message}")
    return None


def _convert_group(batcher: _Batcher, group: list[pa.RecordBatch], source_stream: _Utf8Source) -> pa.Table:
    """One group of Arrow's blocks converted; what the source saw lets the converter skip checks."""
    return batcher.convert(pa.Table.from_batches(group), check_undecodable=source_stream.replacements,
                           spanning_ok=False, check_equals=source_stream.may_have_equals,
                           check_marks=source_stream.may_have_marks,
                           check_lengths=source_stream.may_have_long_values)


class _QuietTextErrors:
    """pyarrow decodes an invalid row's text before calling the handler; where Arrow hands it a text cut inside a
    UTF-8 sequence (seen now and then with rows of many kilobytes) that fails, pyarrow prints "Exception ignored
    in ... invalid_row" to stderr and stops the reader, and the file is then read by the line reader (the report's
    ``parser_note`` says so). Only that print is left out, and only while the pass runs."""

    def __init__(self, handler) -> None:
        self._handler = handler
        self._previous: Callable[[sys.UnraisableHookArgs], Any] = sys.unraisablehook

    def _hook(self, unraisable: sys.UnraisableHookArgs) -> None:
        if unraisable.object is self._handler and issubclass(unraisable.exc_type, UnicodeDecodeError):
            return
        self._previous(unraisable)

    def __enter__(self) -> None:
        self._previous = sys.unraisablehook
        sys.unraisablehook = self._hook

    def __exit__(self, *exc) -> None:
        if sys.unraisablehook == self._hook:
            sys.unraisablehook = self._previous
        self._handler = None   # (Arrow's threads must be left the last reference: see ``_stop``)


def _drain(reader, source: _Utf8Source) -> None:
    """Ends the stream and reads what Arrow's reader still has (a few blocks with the source at end-of-file)."""
    source.finish()
    if reader is not None:
        try:
            for _ in reader:
                pass
        except Exception:  # noqa: BLE001 - already ending (an error being handled, or a clean end)
            pass


def _stop(source: _Utf8Source) -> None:
    """Waits, once ``_drain`` ran and the reader is dropped, until Arrow's threads have released every Python object
    of ``source`` (the file, its blocks, the handler): one released while Python shuts down aborts the process (see
    ``_Utf8Source``). That covers a thread still reading ahead when there is no reader (``open_csv`` failed)."""
    if not source.wait_returned():
        print("normalize: Arrow still holds some of the reader's objects after 10 s; going on", file=sys.stderr)


def _line_pass(stream, text: _Text, mapping: HeaderMapping, report: Report, data_path: str, rejects_path: str,
               progress) -> bool:
    """The recovering reader (``lines``) over the whole file; returns whether rejects were written."""
    out = _Pass(data_path, rejects_path, mapping, report)
    batcher, width, transcoder = out.batcher, mapping.width, text.transcoder
    read = {"bytes": text.consumed}
    max_chars = min(MAX_RECORD_CHARS, width * (2 * MAX_VALUE_BYTES + 3) + 2)
    too_long = f": a value is longer than {MAX_VALUE_BYTES} bytes" if max_chars < MAX_RECORD_CHARS else ""
    names = [f"f{i}" for i in range(width)]
    rows: list[list[str]] = []
    row = 1

    def flush() -> None:
        if rows:
            table = pa.table([pa.chunked_array([pa.array(column, pa.string())]) for column in zip(*rows, strict=True)],
                             names=names)
            out.sink.add(batcher.convert(table, check_undecodable=transcoder.invalid > 0, spanning_ok=True))
            rows.clear()

    complete = False
    try:
        for batch in lines.records(_text_chunks(stream, text, read, progress), width, max_chars, too_long):
            for record in batch:
                row += 1
                if type(record) is list:
                    rows.append(record)
                    continue
                batcher.parser_reject(row, record.fields, record.problem, record.key)
            if len(rows) >= LINE_BATCH_RECORDS:
                flush()
        flush()
        complete = True
    finally:
        out.close(complete)
    report.bytes_in = read["bytes"]
    return out.rejects.written


def _text_chunks(stream, text: _Text, read: dict[str, int], progress) -> Iterator[str]:
    """The text after the header (the rest of the first read, then ``stream`` transcoded), counting the bytes read in
    ``read["bytes"]``."""
    yield text.rest.decode("utf-8", "replace")
    while True:
        chunk = stream.read(LINE_CHUNK_BYTES)
        read["bytes"] += len(chunk)
        yield text.transcoder.convert(chunk, final=not chunk).decode("utf-8", "replace")
        if progress:
            progress(read["bytes"])
        if not chunk:
            return


class _RowGroups:
    """Collects converted blocks and writes them as Parquet row groups of about ``ROW_GROUP_ROWS`` records."""

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self._writer = writer
        self._tables: list[pa.Table] = []
        self._rows = 0
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wifi-write")
        self._writing: concurrent.futures.Future | None = None

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

    def abandon(self) -> None:
        """Drops what is not written yet and waits for the row group being written (its errors too: the file
        is being given up)."""
        self._tables, self._rows = [], 0
        try:
            self._wait()
        except Exception:  # noqa: BLE001
            pass
        finally:
            self._thread.shutdown()


def _shown(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


_Problems = dict[int, list[tuple[str, str]]]   # record index -> [(count key, reason)]


class _Batcher:
    """Turns parsed blocks (all fields as strings) into table batches; rejects what does not fit."""

    def __init__(self, mapping: HeaderMapping, report: Report, rejects: _Rejects) -> None:
        self._mapping = mapping
        self._report = report
        self._rejects = rejects
        self._dates = {ci: columns.DateColumn() for ci, c in enumerate(COLUMNS) if c.glue_type == "date"}
        self._invalid: collections.deque[int] = collections.deque()   # row numbers of parser rejects not yet passed
        self.next_row = 2                                    # row number of the next good record (header = 1)
        self.spanning_row: int | None = None              # Arrow read a record spanning lines (row number)
        self._lock = threading.Lock()
        mapped = {pos: ci for ci, pos in enumerate(mapping.positions)}
        self._labels = [column_label(mapped[i]) if i in mapped else repr(name)
                        for i, name in enumerate(mapping.header)]
        self._keys = [COLUMNS[mapped[i]].name if i in mapped else name for i, name in enumerate(mapping.header)]

    def _reject(self, row: int, record: Sequence[str], reason: str, column: str) -> None:
        with self._lock:  # the parser's thread (field counts) and the converting thread (values) both reject
            self._report.rows_rejected += 1
            counts = self._report.rejected_by_column
            counts[column] = counts.get(column, 0) + 1
            self._rejects.add(row, reason, record)

    def invalid_row(self, row) -> str:
        """pyarrow's handler for a record whose field count differs from the header's."""
        number = row.number + 1  # the parser counts from the first record after the header
        text = row.text
        if "\n" in text or "\r" in text or '"' in text and lines.open_quote(text):
            # spans lines, or its quote never closes: the line reader decides what it is
            if self.spanning_row is None:
                self.spanning_row = number
            return "skip"
        record = next(csv.reader(io.StringIO(text, newline="")), [])
        if len(record) != row.actual_columns:   # Arrow cut the text short (seen with rows near 100 KB)
            if self.spanning_row is None:
                self.spanning_row = number
            return "skip"
        self.parser_reject(number, record, f"expected {row.expected_columns} fields as in the header, got "
                                           f"{row.actual_columns}", "field count")
        return "skip"

    def parser_reject(self, number: int, record: Sequence[str], reason: str, key: str) -> None:
        """A record the parser rejects (row ``number``), before the next good records are converted."""
        self._invalid.append(number)
        self._reject(number, record, reason, key)

    def _row_numbers(self, count: int) -> list[int]:
        """Row numbers of the next ``count`` good records: consecutive, skipping rows the parser rejected."""
        numbers: list[int] = []
        row, invalid = self.next_row, self._invalid
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

    def convert(self, batch: pa.Table, *, check_undecodable: bool, spanning_ok: bool, check_equals: bool = True,
                check_marks: bool = True, check_lengths: bool = True) -> pa.Table:
        """The table rows of ``batch`` (every field a string); ``spanning_ok=False`` (Arrow's batches): raises
        ``_UseLineReader`` when a value holds a line break. ``check_*=False``: the caller knows that no value holds
        U+FFFD / ``=`` / U+FEFF / more than ``MAX_VALUE_BYTES``."""
        problems: _Problems = {}
        raw_columns = batch.columns
        if not spanning_ok and any(columns.has_line_breaks(raw) for raw in raw_columns):
            raise _UseLineReader(f"a record near row {self.next_row} spans lines (a quoted line break)")
        if check_lengths:
            self._note_unkept_lengths(raw_columns, problems)
        arrays = []
        for ci, column in enumerate(COLUMNS):
            position = self._mapping.positions[ci]
            raw, key, label = raw_columns[position], column.name, self._labels[position]
            if check_lengths:
                _note(problems, key, label, columns.long_values(raw, MAX_VALUE_BYTES), raw, _too_long)
            if check_undecodable:
                _note(problems, key, label, columns.undecodable(raw), raw, self._undecodable_reason)
            strings = columns.clean_strings(raw, line_breaks=spanning_ok, equals=check_equals, marks=check_marks)
            arrays.append(self._typed(ci, column, strings, key, label, problems, check_equals))
        _note_all_empty(arrays, problems)
        table = pa.Table.from_arrays(arrays, schema=SCHEMA)
        if not problems:
            self._advance(batch.num_rows)
            self._report.rows_ok += batch.num_rows
            return table
        return self._without_rejects(batch, table, problems)

    def _note_unkept_lengths(self, raw_columns: list, problems: _Problems) -> None:
        """Over-long values in the columns the table does not keep: they still make the record a reject."""
        mapped = set(self._mapping.positions)
        for i, raw in enumerate(raw_columns):
            if i not in mapped:
                _note(problems, self._keys[i], self._labels[i], columns.long_values(raw, MAX_VALUE_BYTES), raw,
                      _too_long)

    def _typed(self, ci: int, column, strings, key: str, label: str, problems: _Problems, check_equals: bool):
        """Column ``ci`` of the table (a date, a coordinate or text) from its cleaned ``strings``."""
        if column.glue_type == "date":
            dates_of = self._dates[ci]
            dates, bad = dates_of(strings)
            _note(problems, key, label, bad, strings, lambda v: _date_reason(v, dates_of.accepted))
            return dates
        if column.glue_type == "float":
            low, high = _COORD_RANGES[column.name]
            what = _COORD_WHAT[column.name]
            numbers, bad = columns.coordinates(strings, low, high)
            _note(problems, key, label, bad, strings, lambda v: values.coordinate_problem(v, low, high, what))
            return numbers
        if check_equals:
            _note(problems, key, label, columns.formulas(strings), strings, _formula_reason)
        return strings

    def _without_rejects(self, batch: pa.Table, table: pa.Table, problems: _Problems) -> pa.Table:
        """``table`` less the records with ``problems``, which are rejected with their original text."""
        numbers = self._row_numbers(batch.num_rows)
        bad = sorted(problems)
        originals = batch.take(pa.array(bad)).to_pylist()
        for i, original in zip(bad, originals, strict=True):
            found = problems[i]
            keys = list(dict.fromkeys(key for key, _ in found))
            self._reject(numbers[i], list(original.values()), "; ".join(reason for _, reason in found),
                         ",".join(keys))
        self._report.rows_ok += batch.num_rows - len(bad)
        keep = pc.invert(pc.is_in(pa.array(range(batch.num_rows)), pa.array(bad)))
        return table.filter(keep)

    def _undecodable_reason(self, value: str) -> str:
        return (f"bytes not valid {self._report.encoding} (shown as U+FFFD, or text an earlier conversion already "
                f"lost) in {_shown(value)}")


def _date_reason(value: str, accepted: tuple[dt.date, dt.date]) -> str:
    """Why a date ``columns.DateColumn`` rejected is not acceptable (it rejects what ``values.date_problem`` finds
    a problem with)."""
    problem = values.date_problem(value, accepted)
    if problem is None:
        raise RuntimeError(f"DateColumn rejected the date {value!r}, which values.date_problem accepts within "
                           f"{accepted[0]} .. {accepted[1]}")
    return problem


def _note(problems: _Problems, key: str, label: str, bad: list[int], source, why: Callable[[Any], str]) -> None:
    """Records ``bad`` (indexes into ``source``) have a problem with this column: ``why`` tells it from the value."""
    for i in bad:
        problems.setdefault(i, []).append((key, f"{label}: {why(source[i].as_py())}"))


def _note_all_empty(arrays: list, problems: _Problems) -> None:
    if all(arr.null_count for arr in arrays):  # else no record can be entirely empty
        all_empty = pc.is_null(arrays[0])
        for arr in arrays[1:]:
            all_empty = pc.and_(all_empty, pc.is_null(arr))
        for i in pc.indices_nonzero(all_empty).to_pylist():
            problems.setdefault(i, []).append(("all", "all fields empty"))


def _too_long(value: str) -> str:
    return f"value of {len(value.encode('utf-8'))} bytes, longer than the limit of {MAX_VALUE_BYTES}"


def _formula_reason(value: str) -> str:
    return (f"{_shown(value)} starts like a spreadsheet formula (a value may not start with '='; Excel's "
            f"=\"...\" text form is unwrapped)")
