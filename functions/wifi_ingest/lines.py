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
from collections.abc import Iterable, Iterator

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
    return _closed_end(content) != len(content)


def _closed_end(content: str) -> int:
    """Where the fields that close on ``content`` (from a record's start) end: where a quote stays open, or its end."""
    match = _OUT.match(content)
    if match is None:                          # every field may be empty, so the pattern matches at least ""
        raise RuntimeError("the closed-fields pattern did not match %r; it matches the empty string" % content[:80])
    return match.end()


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

    fields: list[str]
    problem: str | None = None
    key: str | None = None


class _Cut(str):
    """An over-long physical line: only its first ``max_chars`` characters, without its line ending."""


def line_batches(chunks: Iterable[str], max_chars: int) -> Iterator[list[str]]:
    """The physical lines of the text in ``chunks``, a list per chunk, each line with its ending (CRLF, LF or CR);
    a line longer than ``max_chars`` is a ``_Cut``. (``str.splitlines`` at C speed, then re-joined where it split
    at characters that end no line in CSV, such as U+2028 or a form feed.)"""
    carry, skipping, drop_lf = "", False, False
    for chunk in chunks:
        if drop_lf and chunk:
            chunk, drop_lf = chunk[1:] if chunk[0] == "\n" else chunk, False
        if skipping:                                   # the rest of an over-long line
            rest = _after_line_end(chunk)
            if rest is None:
                continue
            chunk, skipping, drop_lf = rest
        text = carry + chunk if carry else chunk
        if not text:
            continue
        lines = _csv_lines(text)
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


def _after_line_end(chunk: str) -> tuple[str, bool, bool] | None:
    """While skipping the rest of an over-long line: ``None`` if ``chunk`` does not end it, else the text after its
    line ending, ``False`` (skipping ends) and whether an LF at the start of the next chunk still belongs to it."""
    m = _LINE_END.search(chunk)
    if m is None:
        return None
    rest = chunk[m.end():]
    return rest, False, m.group() == "\r" and not rest


def _csv_lines(text: str) -> list[str]:
    """``text.splitlines(True)``, re-joined where it split at a character that ends no line in CSV (U+2028, a form
    feed, ...): only CR and LF do."""
    lines = text.splitlines(True)
    if not any(line[-1] not in "\r\n" for line in lines[:-1]):
        return lines
    joined, pending = [], ""
    for line in lines:
        pending += line
        if line[-1] in "\r\n":
            joined.append(pending)
            pending = ""
    return joined + ([pending] if pending else [])


def _fields(text: str) -> list[str]:
    """The fields of a record's text as CSV reads them (lenient: an open quote runs to the end)."""
    try:
        return next(csv.reader([text]), [""])
    except csv.Error:  # e.g. NUL on Python < 3.11
        return [text]


class _LineSource:
    """Lines in order, by batch (for the fast loop) or one at a time (for a damaged region), with push-back."""

    def __init__(self, batches: Iterator[list[str]]) -> None:
        self._batches = batches
        self._back: collections.deque[str] = collections.deque()

    def batch(self) -> list[str] | None:
        if self._back:
            lines = list(self._back)
            self._back.clear()
            return lines
        return next(self._batches, None)

    def line(self) -> str | None:
        if not self._back:
            lines = next(self._batches, None)
            if lines is None:
                return None
            self._back.extend(lines)
        return self._back.popleft()

    def push_back(self, lines: list[str]) -> None:
        self._back.extendleft(reversed(lines))


_SENTINEL = "\uffff\n"   # after a batch: a quote still open at its end takes it in


def records(chunks: Iterable[str], width: int, max_chars: int, too_long: str = "") -> Iterator[list]:
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
        out: list = []
        done = _read_lines(lines, width, out)
        yield out
        if done < len(lines):
            source.push_back(lines[done:])
            yield _damaged_region(source, width, max_chars, long_reason)


def _read_lines(lines: list[str], width: int, out: list) -> int:
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


def _damaged_region(source: _LineSource, width: int, max_chars: int, long_reason: str) -> list:
    """One record read line by line (see the module docstring): a good one, or a damaged one."""
    while True:
        line = source.line()
        if line is None:
            return []
        if type(line) is _Cut:
            return [Record(_fields(str(line)), long_reason, "value length")]
        content = line.rstrip("\r\n")
        if not content:
            continue                           # blank line
        if '"' not in content:
            return [_checked(content.split(","), width)]
        if _closed_end(content) == len(content):
            return [_checked(_fields(content), width)]
        return [_open_record(source, line, width, max_chars, long_reason)]


def _open_record(source: _LineSource, first: str, width: int, max_chars: int, long_reason: str):
    """The record that ``first`` begins, whose quoted value is still open at its end: its following lines until the
    quote closes, unless a line that starts a record, an over-long line or the end of the file comes first."""
    complete, start = _complete_line(width), _record_start(width)
    unit, size, overlong = [first], len(first), False   # ``unit``: its lines, as long as it is not over-long
    while True:
        line = source.line()
        if line is None:
            return _unclosed(unit, overlong, "before the end of the file", long_reason)
        if type(line) is _Cut:                 # an over-long line inside an open record: both end here
            return _unclosed(unit, True, "", long_reason)
        content = line.rstrip("\r\n")
        if _starts_record(content, width, complete, start):
            source.push_back([line])
            return _unclosed(unit, overlong, "before a line that starts a record", long_reason)
        m = _IN.match(content)
        size += len(line)
        overlong = overlong or size > max_chars
        if not overlong:
            unit.append(line)
        if m is not None and m.end() == len(content):
            return _unclosed(unit, True, "", long_reason) if overlong else _checked(_fields("".join(unit)), width)


def _starts_record(content: str, width: int, complete, start) -> bool:
    """Whether a line inside an open record starts a new one the way a CSV writer does (module docstring)."""
    if '"' not in content:
        return content.count(",") == width - 1
    return bool(complete(content) or start(content))


def _unclosed(unit: list[str], overlong: bool, reason: str, long_reason: str) -> Record:
    """The rejected record of ``unit``'s lines: over-long, or its quote not closed ``reason``."""
    fields = _fields("".join(unit))
    if overlong:
        return Record(fields, long_reason, "value length")
    lines = len(unit)
    return Record(fields, f"unbalanced quote: a quoted value opened in this record is not closed "
                          f"{reason} ({lines} line{'s' if lines != 1 else ''})", "quote")


def _checked(fields: list[str], width: int):
    if len(fields) != width:
        return Record(fields, f"expected {width} fields as in the header, got {len(fields)}", "field count")
    return fields
