"""Value rules of the seed DDL: dates from the portal's year-month spellings, WGS84 coordinates in South Korea.

Pure Python; the normalizer applies them column-wise (see ``columns``) and the tests call them directly.

Rules (docs/wifi-ingest.md, Values):

- **Digits are ASCII.** A date or coordinate written with full-width characters (``２０１５－０３``, ``３７．５``, as a
  Korean IME types them) is read after Unicode NFKC normalization, which maps exactly those to ASCII; text columns
  are stored as written (NFKC would also rewrite Hangul compatibility jamo, circled numbers, ...). Other scripts'
  digits (``٣٧``) are not numbers: Python's ``\\d`` and ``float()`` would take them, Arrow's parser does not, so
  the patterns below are ASCII-only and both paths agree.
- **Dates** (``installed_at``, ``created_at``) must fall in ``DATE_MIN`` (1990-01-01: before any public Wi-Fi) ..
  today + 1 year (an announced installation, not ``9999-12``); ``0001-01`` and ``9999-12`` are rejected as out of
  range, not stored.
- **Coordinates** must lie in South Korea's bounding box ``KOREA_LATITUDE`` x ``KOREA_LONGITUDE``: 33.0-38.7 N
  (Marado 33.11 N .. the DMZ at Goseong 38.61 N) and 124.5-132.0 E (Baengnyeongdo 124.6 E .. Dokdo 131.87 E),
  with a small margin. (0, 0), swapped latitude/longitude and other countries' points are rejected.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata

# 2015-03, 2015.03, 2015/03, 2015. 3., 2015-03-01, 2015.3.1 ... (one separator style per value)
_SEPARATED = re.compile(r"^(\d{4})\s*([-./])\s*(\d{1,2})\s*(?:\2\s*(\d{1,2})\s*)?\.?$", re.ASCII)
# 201503, 20150301
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})?$", re.ASCII)
# 2015-03-01 00:00:00 / 2015-03-01T00:00 (a time of day is dropped: the column is a DATE)
_WITH_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", re.ASCII)

DATE_FORMATS = "YYYY-MM, YYYYMM, YYYY.MM, YYYY/MM or a full date (YYYY-MM-DD, YYYYMMDD, YYYY.MM.DD)"
DATE_MIN = dt.date(1990, 1, 1)

# Decimal number as it appears in the portal files; what float() alone would also take ("nan", "1_0", "inf",
# other scripts' digits) is not a coordinate. (Arrow's regex engine, RE2, reads \d as [0-9] too.)
NUMBER_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
KOREA_LATITUDE = (33.0, 38.7)
KOREA_LONGITUDE = (124.5, 132.0)
LATITUDE_RANGE = KOREA_LATITUDE      # the ranges the normalizer enforces (names kept for callers)
LONGITUDE_RANGE = KOREA_LONGITUDE


def ascii_digits(text: str) -> str:
    """``text`` with full-width forms folded to ASCII (NFKC), unchanged when it is ASCII already."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def date_range(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """Accepted dates: ``DATE_MIN`` .. one year after ``today``."""
    today = today or dt.date.today()
    try:
        latest = today.replace(year=today.year + 1)
    except ValueError:  # 29 February
        latest = today + dt.timedelta(days=365)
    return DATE_MIN, latest


def parse_date(text: str) -> dt.date | None:
    """The date a (stripped, non-empty) value stands for, or None when it is not a date (range not checked).

    Year-month values mean the first day of that month."""
    text = ascii_digits(text)
    m = _WITH_TIME.match(text)
    if m:
        text = m.group(1)
    m = _SEPARATED.match(text) or _COMPACT.match(text)
    if not m:
        return None
    groups = m.groups()
    year, month, day = (groups[0], groups[2], groups[3]) if len(groups) == 4 else groups
    try:
        return dt.date(int(year), int(month), int(day) if day else 1)
    except ValueError:
        return None


def date_problem(text: str, accepted: tuple[dt.date, dt.date]) -> str | None:
    """Why a (stripped, non-empty) value is not an acceptable date, or None."""
    date = parse_date(text)
    if date is None:
        return f"{text!r} is not a date (expected {DATE_FORMATS})"
    low, high = accepted
    if not low <= date <= high:
        return f"{text!r} is out of range (expected a date from {low.isoformat()} to {high.isoformat()})"
    return None


_NUMBER = re.compile(NUMBER_PATTERN, re.ASCII)


def parse_coordinate(text: str, low: float, high: float) -> float | None:
    """A float within [low, high] from a (stripped, non-empty) value, or None."""
    text = ascii_digits(text)
    if not _NUMBER.match(text):
        return None
    value = float(text)
    return value if low <= value <= high else None


def coordinate_problem(text: str, low: float, high: float, what: str) -> str:
    """Why a (stripped, non-empty) value is not an acceptable coordinate."""
    if parse_coordinate(text, float("-inf"), float("inf")) is None:
        why = "not a number"
    else:
        why = "outside South Korea"
    return f"{text!r} is {why} (expected a decimal {what} in [{low:g}, {high:g}])"
