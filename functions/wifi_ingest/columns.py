"""Column conversions of the normalizer, one Arrow array at a time: text cleanup, coordinates, dates.

Each takes the parsed strings of one column for a group of parsed blocks (a ChunkedArray, one chunk per block)
and returns the typed column plus the indices of the values that could not be converted (the caller rejects those
records). The work is done by Arrow kernels, a few calls per group, so the per-call cost is shared by the blocks
of a group; Python only sees each distinct date spelling once. (pyarrow only: the Lambda bundle has no numpy.)
"""
from __future__ import annotations

import re
from typing import List, Tuple

import pyarrow as pa
import pyarrow.compute as pc

from functions.wifi_ingest import values
from functions.wifi_ingest.transcode import REPLACEMENT

_NULL_STRING = pa.scalar(None, pa.string())
_NULL_FLOAT = pa.scalar(None, pa.float32())
# searches in an Arrow buffer without copying it (re takes any buffer; ``in`` would need bytes)
_HAS_REPLACEMENT, _HAS_CR = re.compile(re.escape(REPLACEMENT)).search, re.compile(b"\r").search


def _text_has(strings: pa.ChunkedArray, search) -> bool:
    return any(search(chunk.buffers()[2] or b"") for chunk in strings.chunks)


def undecodable(raw: pa.ChunkedArray) -> List[int]:
    """Indices of values holding U+FFFD (bytes the source encoding could not decode)."""
    if not _text_has(raw, _HAS_REPLACEMENT):
        return []
    return pc.indices_nonzero(pc.match_substring(raw, "\ufffd")).to_pylist()


def clean_strings(raw: pa.ChunkedArray) -> pa.ChunkedArray:
    """Trimmed (Unicode spaces too, such as U+3000 and U+00A0), line breaks as \\n, blank -> NULL.
    (``raw``: empty fields are NULL already, the reader's ``null_values``.)"""
    text = pc.utf8_trim_whitespace(raw)
    if _text_has(text, _HAS_CR):
        text = pc.replace_substring_regex(text, "\r\n?", "\n")  # line breaks inside quoted values
    blank = pc.equal(text, "")  # values that held only spaces
    if any(chunk.true_count for chunk in blank.chunks):
        text = pc.if_else(blank, _NULL_STRING, text)
    return text


def coordinates(strings: pa.ChunkedArray, low: float, high: float) -> Tuple[pa.ChunkedArray, List[int]]:
    """float32 values in [low, high]; NULL stays NULL. Bad: not a decimal number (incl. nan/inf) or out of range."""
    try:  # Arrow's parser takes what NUMBER_PATTERN does, plus nan/inf, which the range test rejects
        numbers = pc.cast(strings, pa.float32())
    except pa.ArrowInvalid:
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
    """date32 from the portal's date spellings (``values.parse_date``).

    A column holds few distinct spellings, so each is parsed once in Python and kept; a block is then one hash
    lookup per value (``index_in``) and a ``take``. The kept spellings are dropped past ``limit``."""

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._reset()

    def _reset(self) -> None:
        self._texts: List[str] = []
        self._known = pa.array([], pa.string())
        self._dates = pa.array([], pa.date32())
        self._bad = pa.array([], pa.bool_())
        self._any_bad = False

    def _learn(self, texts: List[str]) -> None:
        if len(self._texts) + len(texts) > self._limit:
            self._reset()
        parsed = [values.parse_date(t) for t in texts]
        self._texts += texts
        self._known = pa.array(self._texts, pa.string())
        self._dates = pa.concat_arrays([self._dates, pa.array(parsed, pa.date32())])
        self._bad = pa.concat_arrays([self._bad, pa.array([p is None for p in parsed], pa.bool_())])
        self._any_bad = self._any_bad or None in parsed

    def __call__(self, strings: pa.ChunkedArray) -> Tuple[pa.ChunkedArray, List[int]]:
        index = pc.index_in(strings, value_set=self._known)
        if index.null_count > strings.null_count:  # spellings not seen yet
            new = pc.unique(pc.filter(strings, pc.and_(pc.is_null(index), pc.is_valid(strings))))
            self._learn(new.to_pylist())
            index = pc.index_in(strings, value_set=self._known)
        dates = pc.take(self._dates, index)
        if not self._any_bad:
            return dates, []
        return dates, pc.indices_nonzero(pc.fill_null(pc.take(self._bad, index), False)).to_pylist()
