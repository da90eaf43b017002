"""The table ``free_wifi_standard_data`` and how the portal's Korean CSV headers map onto it.

Pure data and header matching, no third-party imports: the CDK stack reads the Glue columns from here too, so the
table definition and the normalizer cannot drift apart.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence

TABLE_NAME = "free_wifi_standard_data"
QUERIES_DIR = Path(__file__).resolve().parent / "queries"   # the seed's two chart queries (Athena SQL files)

# Data bucket layout, shared by the Lambda, the stack and the local lake (which mirrors the bucket).
RAW_PREFIX = "raw/"                          # portal CSV files as uploaded; never modified or deleted
QUARANTINE_PREFIX = "quarantine/"            # rejects + report per raw object version
TABLE_PREFIX = f"tables/{TABLE_NAME}/"       # Parquet read by the Glue table


@dataclass(frozen=True)
class Column:
    name: str            # table column (seed DDL)
    glue_type: str       # Glue/Hive type name as in the seed DDL: string, date, float
    headers: tuple[str, ...]  # Korean header names that feed it; the first is the older 15-column layout's
    comment: str

    @property
    def header(self) -> str:
        return self.headers[0]


# Order and types exactly as the seed's CREATE EXTERNAL TABLE awskrug.free_wifi_standard_data.
# Newer releases of data.go.kr 15013116 rename some headers (설치시설구분명, WGS84위도, WGS84경도) and add others.
COLUMNS: tuple[Column, ...] = (
    Column("name", "string", ("설치장소명",), "installation place"),
    Column("detail", "string", ("설치장소상세",), "place detail"),
    Column("city", "string", ("설치시도명",), "province/metropolitan city (시도)"),
    Column("gungu", "string", ("설치시군구명",), "city/county/district (시군구)"),
    Column("facility", "string", ("설치시설구분", "설치시설구분명"), "facility type"),
    Column("service_provider", "string", ("서비스제공사명",), "telecom service provider"),
    Column("wifi_ssid", "string", ("와이파이SSID",), "Wi-Fi SSID"),
    Column("installed_at", "date", ("설치년월", "설치연월", "설치년월일"),
           "installation month (first day of month when only year-month is known)"),
    Column("road_name_address", "string", ("소재지도로명주소",), "road-name address"),
    Column("parcel_address", "string", ("소재지지번주소",), "parcel (jibun) address"),
    Column("management_agency", "string", ("관리기관명",), "managing agency"),
    Column("management_agency_phone", "string", ("관리기관전화번호",), "managing agency phone"),
    Column("latitude", "float", ("위도", "WGS84위도"), "WGS84 latitude"),
    Column("longitude", "float", ("경도", "WGS84경도"), "WGS84 longitude"),
    Column("created_at", "date", ("데이터기준일자",), "data reference date"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
OLD_LAYOUT_HEADER: tuple[str, ...] = tuple(c.header for c in COLUMNS)


class UnknownLayout(ValueError):
    """The header does not carry every column of the table; the message names the missing ones."""


@dataclass(frozen=True)
class HeaderMapping:
    """Where each table column sits in the file's records."""

    header: tuple[str, ...]          # the file's header as read
    positions: tuple[int, ...]       # positions[i] = field index of COLUMNS[i]
    layout: str                      # "standard-15" (older) or "extended" (renamed and/or extra columns)
    ignored: tuple[str, ...]         # file columns the table does not keep

    @property
    def width(self) -> int:
        return len(self.header)


_SPACE_RE = re.compile(r"\s+")


def _key(name: str) -> str:
    return _SPACE_RE.sub("", name.replace("\ufeff", "")).upper()


_ALIASES: dict[str, int] = {_key(h): i for i, c in enumerate(COLUMNS) for h in c.headers}


def map_header(header: Sequence[str]) -> HeaderMapping:
    """Matches a file header (Korean names, any order, spaces and case ignored) to the table's columns."""
    header = tuple(header)
    found: dict[int, int] = {}
    ignored: list[str] = []
    for pos, name in enumerate(header):
        col = _ALIASES.get(_key(name))
        if col is None or col in found:
            ignored.append(name)
        else:
            found[col] = pos
    missing = [c for i, c in enumerate(COLUMNS) if i not in found]
    if missing:
        shown = ", ".join(f"{c.header} ({c.name})" for c in missing)
        got = ", ".join(header[:20]) + (", ..." if len(header) > 20 else "")
        raise UnknownLayout(f"unknown column layout: missing {len(missing)} of {len(COLUMNS)} columns: {shown}. "
                            f"Header read: [{got}]")
    positions = tuple(found[i] for i in range(len(COLUMNS)))
    old = tuple(_key(h) for h in header) == tuple(_key(h) for h in OLD_LAYOUT_HEADER)
    return HeaderMapping(header=header, positions=positions, layout="standard-15" if old else "extended",
                         ignored=tuple(ignored))


def column_label(index: int) -> str:
    c = COLUMNS[index]
    return f"{c.name} ({c.header})"


def find_column(name: str) -> Column | None:
    return next((c for c in COLUMNS if c.name == name), None)
