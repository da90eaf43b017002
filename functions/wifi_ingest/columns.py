"""Column conversions of the normalizer, one Arrow array at a time: text cleanup, coordinates, dates.

Each takes the parsed strings of one column for a group of parsed blocks (a ChunkedArray, one chunk per block)
and returns the typed column plus the indices of the values that could not be converted (the caller rejects those
records). The work is done by Arrow kernels, a few calls per group, so the per-call cost is shared by the blocks
of a group; Python only sees each distinct date spelling once. (pyarrow only: the Lambda bundle has no numpy.)

Most checks first look for one byte in the column's data buffer (memchr speed, no copy) and only then call a
kernel, so a column without line breaks, ``=`` or U+FFFD costs one search each.
"""
from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa
import pyarrow.compute as pc

from functions.wifi_ingest import values
from functions.wifi_ingest.transcode import REPLACEMENT

_NULL_STRING = pa.scalar(None, pa.string())
_NULL_FLOAT = pa.scalar(None, pa.float32())
# searches in an Arrow buffer without copying it (re takes any buffer; ``in`` would need bytes). One literal byte
# each: re's literal search runs at memchr speed, a character class ([\r\n]) twenty times slower.
_HAS_REPLACEMENT = re.compile(re.escape(REPLACEMENT)).search
_HAS_CR, _HAS_LF, _HAS_EQUALS = re.compile(b"\r").search, re.compile(b"\n").search, re.compile(b"=").search
_HAS_BOM = re.compile(b"\xef\xbb\xbf").search
# Unicode White_Space (what utf8_trim_whitespace trims) and U+FEFF, the byte-order mark concatenated files leave
TRIMMED = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + \
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
# Excel's way of keeping a value as text (leading zeros, dashes): ="02-123-4567", quotes inside doubled
EXCEL_TEXT = r'^="((?:[^"]|"")*)"$'


def _text_has(strings: pa.ChunkedArray, search) -> bool:
    return any(search(chunk.buffers()[2] or b"") for chunk in strings.chunks)


def _indices(mask: pa.ChunkedArray) -> list[int]:
    return pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()


def has_line_breaks(raw: pa.ChunkedArray) -> bool:
    """Whether any value holds a CR or LF (it was quoted across lines). The smallest byte of the column's data
    first (one Arrow kernel on the buffer, SIMD speed and without the GIL): only text holding a byte <= CR (a
    tab, say) is then searched for CR and LF (two literal searches with ``re``, memchr speed but with the GIL)."""
    for chunk in raw.chunks:
        data = chunk.buffers()[2]
        if data is None or not data.size:
            continue
        smallest = pc.min(pa.Array.from_buffers(pa.uint8(), data.size, [None, data])).as_py()
        if smallest <= 13 and (_HAS_LF(data) or _HAS_CR(data)):
            return True
    return False


def long_values(raw: pa.ChunkedArray, limit: int) -> list[int]:
    """Indices of values longer than ``limit`` bytes (a block whose column data fits in ``limit`` has none)."""
    if all(chunk.buffers()[2] is None or chunk.buffers()[2].size <= limit for chunk in raw.chunks):
        return []
    return _indices(pc.greater(pc.binary_length(raw), limit))


def undecodable(raw: pa.ChunkedArray) -> list[int]:
    """Indices of values holding U+FFFD (bytes the source encoding could not decode)."""
    if not _text_has(raw, _HAS_REPLACEMENT):
        return []
    return _indices(pc.match_substring(raw, "\ufffd"))


def _blank_to_null(text: pa.ChunkedArray) -> pa.ChunkedArray:
    blank = pc.equal(text, "")  # values that held only spaces
    if any(chunk.true_count for chunk in blank.chunks):
        text = pc.if_else(blank, _NULL_STRING, text)
    return text


def clean_strings(raw: pa.ChunkedArray, line_breaks: bool = True, equals: bool = True,
                  marks: bool = True) -> pa.ChunkedArray:
    """Trimmed (Unicode spaces too, such as U+3000 and U+00A0, and U+FEFF), line breaks as \\n, Excel's
    ``="..."`` text form unwrapped, blank -> NULL. (``raw``: empty fields are NULL already, the reader's
    ``null_values``; ``line_breaks=False`` / ``equals=False`` / ``marks=False``: the caller knows no value holds
    a line break / an ``=`` / a U+FEFF.)"""
    text = pc.utf8_trim_whitespace(raw)
    if marks and _text_has(text, _HAS_BOM):
        text = pc.utf8_trim(text, TRIMMED)
    if line_breaks and _text_has(text, _HAS_CR):
        text = pc.replace_substring_regex(text, "\r\n?", "\n")  # line breaks inside quoted values
    if equals and _text_has(text, _HAS_EQUALS):
        wrapped = pc.match_substring_regex(text, EXCEL_TEXT)
        if any(chunk.true_count for chunk in wrapped.chunks):
            inner = pc.replace_substring(pc.replace_substring_regex(text, EXCEL_TEXT, r"\1"), '""', '"')
            text = pc.if_else(wrapped, pc.utf8_trim(inner, TRIMMED), text)
    return _blank_to_null(text)


def formulas(text: pa.ChunkedArray) -> list[int]:
    """Indices of (cleaned) values that start like a spreadsheet formula: ``=`` (after ``="..."`` was unwrapped).

    ``+``, ``-`` and ``@`` also start formulas in a spreadsheet, but they start real values here too (``+82 2
    ...``, ``-`` for "none", ``@Free_WiFi``): the table keeps those, the rejects file neutralises them."""
    if not _text_has(text, _HAS_EQUALS):
        return []
    return _indices(pc.starts_with(text, "="))


def coordinates(strings: pa.ChunkedArray, low: float, high: float) -> tuple[pa.ChunkedArray, list[int]]:
    """float32 values in [low, high]; NULL stays NULL. Bad: not a decimal number (incl. nan/inf) or out of range.

    Full-width digits (``３７．５``) are read as ASCII ones (NFKC, ``values.ascii_digits``); that costs nothing
    unless a value fails to parse."""
    try:  # Arrow's parser takes what NUMBER_PATTERN does, plus nan/inf, which the range test rejects
        numbers = pc.cast(strings, pa.float32())
    except pa.ArrowInvalid:
        strings = pc.utf8_normalize(strings, "NFKC")
        numbers = pc.cast(pc.if_else(pc.match_substring_regex(strings, values.NUMBER_PATTERN), strings,
                                     _NULL_STRING), pa.float32())
    if numbers.null_count == strings.null_count:  # everything parsed: the usual case, three kernels
        extremes = pc.min_max(numbers)
        smallest, largest = extremes["min"].as_py(), extremes["max"].as_py()
        if smallest is None or (low <= smallest and largest <= high and not pc.any(pc.is_nan(numbers)).as_py()):
            return numbers, []
    # NULL (empty) passes, NaN compares false and fails; unparsable values are NULL in ``numbers``
    bad = pc.invert(pc.fill_null(pc.and_(pc.greater_equal(numbers, low), pc.less_equal(numbers, high)), True))
    if numbers.null_count > strings.null_count:
        bad = pc.or_(bad, pc.and_(pc.is_valid(strings), pc.is_null(numbers)))
    return pc.if_else(bad, _NULL_FLOAT, numbers), pc.indices_nonzero(bad).to_pylist()


class DateColumn:
    """date32 from the portal's date spellings (``values.parse_date``), within ``accepted`` (``values.date_range``).

    A column holds few distinct spellings, so each is parsed once in Python and kept; a block is then one hash
    lookup per value (``index_in``) and a ``take``. The kept spellings are dropped past ``limit``."""

    def __init__(self, limit: int = 100_000, accepted: tuple[dt.date, dt.date] | None = None) -> None:
        self._limit = limit
        self.accepted = accepted or values.date_range()
        self._reset()

    def _reset(self) -> None:
        self._texts: list[str] = []
        self._known = pa.array([], pa.string())
        self._dates = pa.array([], pa.date32())
        self._bad = pa.array([], pa.bool_())
        self._any_bad = False

    def _learn(self, texts: list[str]) -> None:
        if len(self._texts) + len(texts) > self._limit:
            self._reset()
        low, high = self.accepted
        parsed = [values.parse_date(t) for t in texts]
        bad = [p is None or not low <= p <= high for p in parsed]
        self._texts += texts
        self._known = pa.array(self._texts, pa.string())
        dates = [None if b else p for p, b in zip(parsed, bad, strict=True)]
        self._dates = pa.concat_arrays([self._dates, pa.array(dates, pa.date32())])
        self._bad = pa.concat_arrays([self._bad, pa.array(bad, pa.bool_())])
        self._any_bad = self._any_bad or any(bad)

    def __call__(self, strings: pa.ChunkedArray) -> tuple[pa.ChunkedArray, list[int]]:
        index = pc.index_in(strings, value_set=self._known)
        if index.null_count > strings.null_count:  # spellings not seen yet
            new = pc.unique(pc.filter(strings, pc.and_(pc.is_null(index), pc.is_valid(strings))))
            self._learn(new.to_pylist())
            index = pc.index_in(strings, value_set=self._known)
        dates = pc.take(self._dates, index)
        if not self._any_bad:
            return dates, []
        return dates, _indices(pc.take(self._bad, index))
