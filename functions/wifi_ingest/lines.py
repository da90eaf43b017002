"""The normalizer's recovering CSV reader: physical lines -> records, damaged records isolated.

Arrow's CSV reader (the fast path, ``normalize``) trusts the quoting: one opening quote without its closing one
makes the rest of the file one value (small files: the following records are swallowed; big files: "straddling
object" and nothing at all), and a record longer than its block stops it too. The normalizer therefore reads a file
with this reader instead whenever Arrow's view of it would contain a record that spans lines or fails (see
``normalize``), and then everything is decided here, line by line:

- a record is one physical line (CRLF, LF or CR), unless a quoted value opened on it is still open at its end:
  then it continues on the next lines until the quote closes (CSV's quoted line breaks);
- but never across a line that **starts a record the way a CSV writer does**: by itself a complete, well-formed
  record (the header's number of fields, every quote balanced and in place), or well-formed fields followed by a
  quoted value that continues on the next line. Such a line starts a new record, and the record whose quote never
  closed is rejected, alone ("unbalanced quote"). A legitimate continuation line cannot look like either: it
  starts inside a quoted value, where a quote is doubled or closes the value;
- a record whose text grows past ``max_chars`` is rejected as one record (its text is not kept beyond that), and
  reading resumes after it: where its quote closes, at the next complete line, or at the end of an over-long line;
- the quote rules are CSV's (and Arrow's and Python's): a quote is special only at the start of a field, ``""``
  inside quotes is one quote, text after a closing quote belongs to the same value.

Memory is bounded by ``max_chars`` per record plus one chunk, whatever the input.
"""
from __future__ import annotations

import collections
import csv
import itertools
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Deque, Iterable, Iterator, List, Optional

# One field from "outside quotes, at a field start": quoted (closed) + what follows until the delimiter, unquoted,
# or empty. The quoted part is atomic (a lookahead captures it, a backreference consumes it: Python < 3.11 has no
# possessive quantifiers), so '"ab"",x' is not misread as a closed "ab" followed by '",x'.
_FIELD = r'(?:"(?=((?:[^"]|"")*))\{n}"[^,\r\n]*|[^,"\r\n][^,\r\n]*|)'
# From a record's start: the fields that close on this text; stops at a quote that stays open.
_OUT = re.compile(_FIELD.replace("{n}", "1") + "(?:," + _FIELD.replace("{n}", "2") + ")*")
# From inside an open quoted value: up to its closing quote, then the rest of the record as above.
_IN = re.compile(r'(?=((?:[^"]|"")*))\1"[^,\r\n]*(?:,' + _FIELD.replace("{n}", "2") + ")*")
_STRICT_FIELD = r'(?:"(?:[^"]|"")*"|[^,"\r\n]*)'
_LINE_END = re.compile(r"\r\n|\r|\n")

csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))   # records are bounded by ``max_chars`` instead


def open_quote(content: str) -> bool:
    """Whether a line (without its line ending) read from a record's start ends inside a quoted value."""
    return _OUT.match(content).end() != len(content)


@lru_cache(maxsize=8)
def _complete_line(width: int):
    return re.compile(_STRICT_FIELD + ("(?:," + _STRICT_FIELD + "){%d}" % (width - 1) if width > 1 else "")).fullmatch


@lru_cache(maxsize=8)
def _record_start(width: int):
    """A line a CSV writer begins a record with that continues on the next line: well-formed fields, then a quoted
    value still open at the end. Inside an open quoted value no such line occurs (a quote there is doubled, or it
    closes the value: ``...,"abc`` would be a closing quote with text glued to it)."""
    return re.compile("(?:" + _STRICT_FIELD + ",){0,%d}\"(?:[^\"]|\"\")*" % max(width - 1, 0)).fullmatch


@dataclass
class Record:
    """One record of the source (``fields``), or a damaged one (``problem``: why, ``key``: its count key)."""

    fields: List[str]
    problem: Optional[str] = None
    key: Optional[str] = None


class _Cut(str):
    """An over-long physical line: only its first ``max_chars`` characters, without its line ending."""


def line_batches(chunks: Iterable[str], max_chars: int) -> Iterator[List[str]]:
    """The physical lines of the text in ``chunks``, a list per chunk, each line with its ending (CRLF, LF or CR);
    a line longer than ``max_chars`` is a ``_Cut``. (``str.splitlines`` at C speed, then re-joined where it split
    at characters that end no line in CSV, such as U+2028 or a form feed.)"""
    carry, skipping, drop_lf = "", False, False
    for chunk in chunks:
        if drop_lf and chunk:
            chunk, drop_lf = chunk[1:] if chunk[0] == "\n" else chunk, False
        if skipping:                                   # the rest of an over-long line
            m = _LINE_END.search(chunk)
            if m is None:
                continue
            chunk, skipping = chunk[m.end():], False
            drop_lf = m.group() == "\r" and not chunk
        text = carry + chunk if carry else chunk
        if not text:
            continue
        lines = text.splitlines(True)
        if any(line[-1] not in "\r\n" for line in lines[:-1]):
            joined, pending = [], ""
            for line in lines:
                pending += line
                if line[-1] in "\r\n":
                    joined.append(pending)
                    pending = ""
            lines = joined + ([pending] if pending else [])
        carry = lines.pop() if lines[-1][-1] not in "\n" else ""   # no ending yet, or maybe the CR of a CRLF
        if len(carry) > max_chars:
            lines.append(_Cut(carry[:max_chars]))
            skipping, drop_lf, carry = not carry.endswith("\r"), carry.endswith("\r"), ""
        if lines and max(map(len, lines)) > max_chars:
            lines = [_Cut(line[:max_chars]) if len(line) > max_chars else line for line in lines]
        if lines:
            yield lines
    if carry:
        yield [carry]


def _fields(text: str) -> List[str]:
    """The fields of a record's text as CSV reads them (lenient: an open quote runs to the end)."""
    try:
        return next(csv.reader([text]), [""])
    except csv.Error:  # e.g. NUL on Python < 3.11
        return [text]


class _LineSource:
    """Lines in order, by batch (for the fast loop) or one at a time (for a damaged region), with push-back."""

    def __init__(self, batches: Iterator[List[str]]) -> None:
        self._batches = batches
        self._back: Deque[str] = collections.deque()

    def batch(self) -> Optional[List[str]]:
        if self._back:
            lines = list(self._back)
            self._back.clear()
            return lines
        return next(self._batches, None)

    def line(self) -> Optional[str]:
        if not self._back:
            lines = next(self._batches, None)
            if lines is None:
                return None
            self._back.extend(lines)
        return self._back.popleft()

    def push_back(self, lines: List[str]) -> None:
        self._back.extendleft(reversed(lines))


_SENTINEL = "\uffff\n"   # after a batch: a quote still open at its end takes it in


def records(chunks: Iterable[str], width: int, max_chars: int, too_long: str = "") -> Iterator[List]:
    """The records of the text after the header (``chunks``), blank lines skipped, in source order, as lists:
    a good record's fields (``list`` of ``str``, the header's width) or a damaged one (``Record`` with a problem).

    Lines are read in bulk by the csv module; where a record spans lines (or a line is over-long, or the csv
    module refuses one) that region is read line by line by the rules above. ``too_long``: what the reason of a
    record longer than ``max_chars`` adds (why that is too long)."""
    long_reason = f"record longer than {max_chars} characters{too_long} (not kept beyond that)"
    source = _LineSource(line_batches(chunks, max_chars))
    while True:
        lines = source.batch()
        if lines is None:
            return
        out: List = []
        done = _read_lines(lines, width, out)
        yield out
        if done < len(lines):
            source.push_back(lines[done:])
            yield _damaged_region(source, width, max_chars, long_reason)


def _read_lines(lines: List[str], width: int, out: List) -> int:
    """Appends the records of ``lines`` that are one line each to ``out``; returns how many lines that took (the
    rest starts with a record that spans lines, an over-long line, or a line the csv module refuses)."""
    reader = csv.reader(itertools.chain(lines, (_SENTINEL,)))
    seen, end = 0, len(lines)
    try:
        for fields in reader:
            if reader.line_num != seen + 1 or seen == end or type(lines[seen]) is _Cut:
                return min(seen, end)
            seen += 1
            if not fields:
                continue                       # blank line
            out.append(fields if len(fields) == width else
                       Record(fields, f"expected {width} fields as in the header, got {len(fields)}", "field count"))
    except csv.Error:
        return seen
    return end


def _damaged_region(source: _LineSource, width: int, max_chars: int, long_reason: str) -> List:
    """One record read line by line (see the module docstring): a good one, or a damaged one."""
    complete, start = _complete_line(width), _record_start(width)
    unit: List[str] = []          # lines of a record whose quote is still open
    size, overlong = 0, False

    def finish_open(reason: str) -> Record:
        text = "".join(unit)
        if overlong:
            return Record(_fields(text), long_reason, "value length")
        lines = len(unit)
        return Record(_fields(text), f"unbalanced quote: a quoted value opened in this record is not closed "
                                     f"{reason} ({lines} line{'s' if lines != 1 else ''})", "quote")

    while True:
        line = source.line()
        if line is None:
            return [finish_open("before the end of the file")] if unit else []
        cut = type(line) is _Cut
        content = str(line) if cut else line.rstrip("\r\n")
        if unit:
            if cut:                            # an over-long line inside an open record: both end here
                overlong = True
                return [finish_open("")]
            if '"' not in content and content.count(",") == width - 1 or '"' in content and (
                    complete(content) or start(content)):
                source.push_back([line])
                return [finish_open("before a line that starts a record")]
            m = _IN.match(content)
            size += len(line)
            if size > max_chars:
                overlong = True
            if not overlong:
                unit.append(line)
            if m is not None and m.end() == len(content):
                if overlong:
                    return [finish_open("")]
                fields = _fields("".join(unit))
                return [_checked(fields, width)]
            continue
        if cut:
            return [Record(_fields(content), long_reason, "value length")]
        if not content:
            continue                           # blank line
        if '"' not in content:
            return [_checked(content.split(","), width)]
        if _OUT.match(content).end() == len(content):
            return [_checked(_fields(content), width)]
        unit, size = [line], len(line)


def _checked(fields: List[str], width: int):
    if len(fields) != width:
        return Record(fields, f"expected {width} fields as in the header, got {len(fields)}", "field count")
    return fields
