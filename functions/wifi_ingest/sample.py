"""Synthetic portal files (both column layouts, any encoding and line ending) for tests and the benchmark.

The values look like the real data.go.kr release (Hangul place names, addresses with commas, year-month dates) and
include Hangul that only CP949 can encode ('똠', '햏'); ``expected`` gives what the table must hold for a record.
"""
from __future__ import annotations

import csv
import io
import random
from typing import BinaryIO
from collections.abc import Sequence

from functions.wifi_ingest.layout import COLUMNS, OLD_LAYOUT_HEADER

# A newer release's header: renamed columns, a leading id and trailing provider columns.
EXTENDED_HEADER = ("관리번호", "설치장소명", "설치장소상세", "설치시도명", "설치시군구명", "설치시설구분명",
                   "서비스제공사명", "와이파이SSID", "설치년월", "소재지도로명주소", "소재지지번주소", "관리기관명",
                   "관리기관전화번호", "WGS84위도", "WGS84경도", "데이터기준일자", "제공기관코드", "제공기관명")
_EXTENDED_SOURCE = {h: c.name for c in COLUMNS for h in c.headers}

_CITIES = [("서울특별시", ["종로구", "중구", "강남구", "마포구"]), ("부산광역시", ["해운대구", "사하구"]),
           ("경기도", ["수원시", "성남시", "고양시"]), ("강원도", ["춘천시", "원주시"]),
           ("제주특별자치도", ["제주시", "서귀포시"]), ("전라남도", ["목포시", "여수시"])]
_PROVIDERS = ["KT", "SKT", "LGU+", "자가망", "SKT, KT"]
_FACILITIES = ["주민센터", "버스정류장", "공원", "전통시장", "도서관", "관광지"]
_PLACES = ["똠방각하 마을회관", "햏복 작은도서관", "시청 민원실", "\"중앙\" 전통시장", "해변 공원", "버스터미널"]
_MONTH_SPELLINGS = ["{y}-{m:02d}", "{y}{m:02d}", "{y}.{m:02d}", "{y}-{m:02d}-01"]


def records(n: int, seed: int = 6) -> list[dict[str, str]]:
    """``n`` source records as {table column: field text as it appears in the file}."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        city, districts = rng.choice(_CITIES)
        gungu = rng.choice(districts)
        year, month = rng.randint(2011, 2020), rng.randint(1, 12)
        out.append({
            "name": f"{rng.choice(_PLACES)} {i}",
            "detail": rng.choice(["1층 로비", "", "2층, 열람실", "입구 \"A\"동"]),
            "city": city,
            "gungu": gungu,
            "facility": rng.choice(_FACILITIES),
            "service_provider": rng.choice(_PROVIDERS),
            "wifi_ssid": rng.choice(["Public WiFi Free", "PublicWiFi@Seoul", "KT_Free", "T wifi zone"]),
            "installed_at": rng.choice(_MONTH_SPELLINGS).format(y=year, m=month),
            "road_name_address": f"{city} {gungu} 세종대로 {rng.randint(1, 300)}, {rng.randint(1, 9)}층",
            "parcel_address": f"{city} {gungu} 똠동 {rng.randint(1, 999)}-{rng.randint(1, 99)}",
            "management_agency": f"{gungu}청",
            "management_agency_phone": f"02-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
            "latitude": f"{rng.uniform(33.1, 38.6):.6f}",
            "longitude": f"{rng.uniform(124.6, 131.9):.6f}",
            "created_at": rng.choice(["2020-06-30", "2020-07-31", "2021-01-15"]),
        })
    return out


def expected(record: dict[str, str]) -> dict[str, object]:
    """What the table holds for a generated record (floats as written to the float32 column)."""
    from functions.wifi_ingest.values import parse_date
    out: dict[str, object] = {}
    for c in COLUMNS:
        text = record[c.name].strip()
        if not text:
            out[c.name] = None
        elif c.glue_type == "date":
            out[c.name] = parse_date(text)
        elif c.glue_type == "float":
            out[c.name] = float(text)
        else:
            out[c.name] = text.replace("\r\n", "\n").replace("\r", "\n")
    return out


def header(layout: str) -> Sequence[str]:
    return OLD_LAYOUT_HEADER if layout == "standard-15" else EXTENDED_HEADER


def row(record: dict[str, str], layout: str, index: int = 0) -> list[str]:
    if layout == "standard-15":
        return [record[c.name] for c in COLUMNS]
    extra = {"관리번호": f"W{index:08d}", "제공기관코드": "3000000", "제공기관명": record["management_agency"]}
    return [extra.get(h) or record[_EXTENDED_SOURCE[h]] for h in EXTENDED_HEADER]


def csv_text(rows: Sequence[Sequence[str]], newline: str = "\r\n") -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline).writerows(rows)
    return buf.getvalue()


def file_bytes(recs: Sequence[dict[str, str]], *, layout: str = "standard-15", encoding: str = "cp949",
               newline: str = "\r\n", bom: bool = False) -> bytes:
    text = csv_text([header(layout)] + [row(r, layout, i) for i, r in enumerate(recs)], newline)
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding)


def write_big(out: BinaryIO, target_bytes: int, *, block_records: int = 2000, layout: str = "standard-15",
              encoding: str = "cp949", newline: str = "\r\n", seed: int = 6) -> int:
    """Writes a file of about ``target_bytes``: the header, then one block of records repeated.

    Record ``k`` (0-based, after the header) is ``records(block_records, seed)[k % block_records]``.
    Returns the number of records written."""
    recs = records(block_records, seed)
    out.write(csv_text([header(layout)], newline).encode(encoding))
    block = csv_text([row(r, layout, i) for i, r in enumerate(recs)], newline).encode(encoding)
    written, count = 0, 0
    while written < target_bytes:
        out.write(block)
        written += len(block)
        count += block_records
    return count
