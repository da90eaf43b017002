"""Value rules of the seed DDL: dates from the portal's year-month spellings, WGS84 coordinates.

Pure Python; the normalizer applies them column-wise (see ``normalize``) and the tests call them directly.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Optional

# 2015-03, 2015.03, 2015/03, 2015. 3., 2015-03-01, 2015.3.1 ... (one separator style per value)
_SEPARATED = re.compile(r"^(\d{4})\s*([-./])\s*(\d{1,2})\s*(?:\2\s*(\d{1,2})\s*)?\.?$")
# 201503, 20150301
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})?$")
# 2015-03-01 00:00:00 / 2015-03-01T00:00 (a time of day is dropped: the column is a DATE)
_WITH_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")

DATE_FORMATS = "YYYY-MM, YYYYMM, YYYY.MM, YYYY/MM or a full date (YYYY-MM-DD, YYYYMMDD, YYYY.MM.DD)"

# Decimal number as it appears in the portal files; what float() alone would also take ("nan", "1_0", "inf")
# is not a coordinate.
NUMBER_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
LATITUDE_RANGE = (-90.0, 90.0)
LONGITUDE_RANGE = (-180.0, 180.0)


def parse_date(text: str) -> Optional[dt.date]:
    """The date a (stripped, non-empty) value stands for, or None when it is not a date.

    Year-month values mean the first day of that month."""
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


_NUMBER = re.compile(NUMBER_PATTERN)


def parse_coordinate(text: str, low: float, high: float) -> Optional[float]:
    """A float within [low, high] from a (stripped, non-empty) value, or None."""
    if not _NUMBER.match(text):
        return None
    value = float(text)
    return value if low <= value <= high else None
