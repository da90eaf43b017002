"""The normalizer on the hostile inputs of issue 14: each test failed on the code before the fix.

Invalid bytes anywhere, a record longer than the parser's block, an unbalanced quote, spreadsheet formulas, absurd
dates and places, full-width digits; and every error path ends Arrow's reader thread (no hang, no abort at exit).
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from functions.wifi_ingest import sample, values
from functions.wifi_ingest.__main__ import main
from functions.wifi_ingest.layout import OLD_LAYOUT_HEADER
from functions.wifi_ingest.normalize import normalize
from tests.conftest import ROOT


def normalized(tmp_path, data: bytes, **kwargs):
    """(report, table rows, rejects rows without the header) of ``normalize`` on ``data`` (read from a file)."""
    src = tmp_path / "in.csv"
    src.write_bytes(data)
    with src.open("rb") as f:
        report = normalize(f, str(tmp_path / "t.parquet"), str(tmp_path / "r.csv"), source="test", **kwargs)
    assert src.read_bytes() == data                                     # the input is only read
    assert report.rows_in == report.rows_ok + report.rows_rejected
    rows = pq.read_table(tmp_path / "t.parquet").to_pylist()
    rejects = list(csv.reader((tmp_path / "r.csv").open(encoding="utf-8-sig", newline="")))[1:] \
        if report.outputs["rejects"] else []
    assert (len(rows), len(rejects)) == (report.rows_ok, report.rows_rejected)
    return report, rows, rejects


def names(rows):
    return [r["name"] for r in rows]


def with_name(recs, i):
    return sample.row(recs[i], "standard-15")


# --- invalid byte sequences at any offset ------------------------------------------------------------------------

# glibc's iconv passes these as "valid UTF-8" (above U+10FFFF, 5-byte form); Python's decoder and Arrow do not
BEYOND_UNICODE = [b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfd\xbf\xbf\xbf\xbf\xbf"]


@pytest.mark.parametrize("bad", BEYOND_UNICODE)
def test_an_undecodable_utf8_sequence_in_the_detection_sample_rejects_its_record_not_the_run(tmp_path, capsys,
                                                                                               bad):
    recs = sample.records(20, seed=21)
    recs[3]["name"] = "장소 3"                                          # unquoted in the file
    data = sample.file_bytes(recs, encoding="utf-8")
    at = data.index(recs[3]["name"].encode())
    data = data[:at] + bad + data[at:]
    src = tmp_path / "wifi.csv"
    src.write_bytes(data)
    assert main(["normalize", str(src), "--out", str(tmp_path / "out"), "--no-progress"]) == 0   # no traceback
    report = json.loads(capsys.readouterr().out)
    assert (report["rows_ok"], report["rows_rejected"], report["rejected_by_column"]) == (19, 1, {"name": 1})


@pytest.mark.parametrize("bad", BEYOND_UNICODE)
def test_one_undecodable_sequence_in_a_small_file_does_not_make_it_unusable(tmp_path, bad):
    recs = sample.records(2, seed=33)
    recs[1]["name"] = "장소 1"
    data = sample.file_bytes(recs, encoding="utf-8")
    at = data.index("장소 1".encode())
    report, rows, rejects = normalized(tmp_path, data[:at] + bad + data[at:])   # was "neither UTF-8 nor CP949"
    assert (report.encoding, report.rows_ok, report.rows_rejected) == ("utf-8", 1, 1)


@pytest.mark.parametrize("bad", BEYOND_UNICODE)
def test_an_undecodable_utf8_sequence_far_in_rejects_only_its_row(tmp_path, bad):
    recs = sample.records(3000, seed=22)
    recs[2500]["name"] = "장소 2500"
    data = sample.file_bytes(recs, encoding="utf-8")
    at = data.index(recs[2500]["name"].encode())
    assert at > 1 << 17                                                 # well past the sample and a few blocks
    report, rows, rejects = normalized(tmp_path, data[:at] + bad + data[at:], block_bytes=1 << 15)
    assert (report.rows_in, report.rows_ok, report.rows_rejected) == (3000, 2999, 1)
    assert rejects[0][0] == "2502" and rejects[0][1].startswith("name (설치장소명): bytes not valid utf-8")
    assert recs[2500]["name"] not in names(rows) and recs[2501]["name"] in names(rows)


def test_a_byte_order_mark_after_the_header_is_text_of_a_record(tmp_path):
    """Found by the fuzz run: Arrow drops a BOM at the start of what it reads, which here is the first record."""
    recs = sample.records(2, seed=34)
    data = sample.file_bytes(recs, encoding="utf-8")
    header_end = data.index(b"\r\n") + 2
    data = data[:header_end] + b"\xef\xbb\xbf" + data[header_end:]      # the first record starts with U+FEFF
    report, rows, rejects = normalized(tmp_path, data)
    assert (report.rows_ok, report.rows_rejected) == (2, 0) and rows[0]["name"] == recs[0]["name"]
    report, rows, rejects = normalized(tmp_path, data[:header_end] + b"\xef\xbb\xbf\r\n")
    assert (report.rows_in, report.rows_rejected, rejects[0][1]) == (1, 1, "expected 15 fields as in the header, got 1")


# --- a record longer than the parser's block ---------------------------------------------------------------------

@pytest.mark.parametrize("megabytes, at", [(1, 0), (2, 1), (2, 5000), (10, 50)])
def test_a_record_longer_than_the_block_rejects_only_that_record(tmp_path, megabytes, at):
    recs = sample.records(max(at + 10, 100), seed=23)
    recs[at]["detail"] = "x" * (megabytes << 20)
    report, rows, rejects = normalized(tmp_path, sample.file_bytes(recs))
    assert (report.rows_ok, report.rows_rejected) == (len(recs) - 1, 1)
    assert rejects[0][0] == str(at + 2)
    if megabytes < 3:
        assert rejects[0][1] == (f"detail (설치장소상세): value of {megabytes << 20} bytes, longer than the limit "
                                 "of 100000")
    else:   # not even read whole: longer than any record of 15 values within the limit can be
        assert rejects[0][1].startswith("record longer than 3000047 characters: a value is longer than 100000 bytes")
    assert len(rejects[0][3]) < 33_000                                  # cut to a spreadsheet cell's size
    assert names(rows) == [r["name"] for i, r in enumerate(recs) if i != at]


def test_a_record_longer_than_the_block_but_within_the_value_limit_is_kept(tmp_path):
    recs = sample.records(50, seed=24)
    recs[7]["detail"] = "상세" * 15_000                                   # 90 KB of UTF-8, block of 16 KiB
    report, rows, _ = normalized(tmp_path, sample.file_bytes(recs), block_bytes=1 << 14)
    assert (report.rows_ok, report.rows_rejected, report.parser) == (50, 0, "lines")
    assert rows[7]["detail"] == recs[7]["detail"]


CHILD = """
import json, sys
from functions.wifi_ingest.normalize import normalize
with open(sys.argv[1], "rb") as f:
    report = normalize(f, sys.argv[2], sys.argv[3], source="child", block_bytes=int(sys.argv[4]))
print(json.dumps({k: report.as_dict()[k] for k in ("rows_in", "rows_ok", "rows_rejected", "parser")}))
"""


def broken_files(tmp_path):
    """Files that stop Arrow's reader on each of its error paths: the first block (``open_csv`` fails), a later
    block (``next`` fails), a quote that never closes."""
    recs = sample.records(2000, seed=25)   # 2000 records: the 1 MB value is in a later block
    first, later, quote = ([dict(r) for r in recs] for _ in range(3))
    first[0]["detail"] = "x" * (1 << 20)
    later[1500]["detail"] = "y" * (1 << 20)
    quote_rows = [sample.row(r, "standard-15") for r in quote]
    text = sample.csv_text([OLD_LAYOUT_HEADER, *quote_rows]).replace(f",{quote_rows[1000][10]},",
                                                                     f',"{quote_rows[1000][10]},', 1)
    files = {"first block": sample.file_bytes(first), "later block": sample.file_bytes(later),
             "open quote": text.encode("cp949")}
    for name, data in files.items():
        (tmp_path / f"{name}.csv").write_bytes(data)
    return files


def test_every_error_path_of_arrows_reader_ends_the_process_cleanly(tmp_path):
    """Arrow's reader thread is stopped on every path (it used to call into Python during interpreter shutdown:
    "PyGILState_Release ... finalizing", exit code 134/139, most runs when ``open_csv`` itself failed)."""
    for name in broken_files(tmp_path):
        for attempt in range(4 if name == "first block" else 1):
            proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / f"{name}.csv"),
                                   str(tmp_path / "t.parquet"), str(tmp_path / "r.csv"), str(1 << 16)],
                                  cwd=ROOT, capture_output=True, timeout=120)
            assert proc.returncode == 0, (name, attempt, proc.returncode, proc.stderr[-1500:])
            report = json.loads(proc.stdout)
            assert (report["rows_in"], report["rows_ok"], report["rows_rejected"]) == (2000, 1999, 1), name
            assert report["parser"] == "lines"


# --- unbalanced quotes ---------------------------------------------------------------------------------------------

def open_quote_file(count: int, at: int, newline: str = "\r\n", unquoted: bool = False) -> bytes:
    """Records where record ``at`` opens a quote (at its 관리기관명 field) that never closes on its line;
    ``unquoted``: no other field needs quotes, so the quote stays open to the end of the file."""
    recs = sample.records(count, seed=26)
    if unquoted:
        for r in recs:
            for name, value in r.items():
                r[name] = value.replace(",", " ").replace('"', "")
    rows = [sample.row(r, "standard-15") for r in recs]
    text = sample.csv_text([OLD_LAYOUT_HEADER, *rows], newline)
    damaged = f',"{rows[at][10]},'
    text = text.replace(f",{rows[at][10]},{rows[at][11]}", damaged + rows[at][11], 1)
    assert text.count('"') % 2 == 1
    return text.encode("cp949"), recs


@pytest.mark.parametrize("at", [0, 2, 7])
@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_an_unbalanced_quote_does_not_swallow_the_records_after_it(tmp_path, at, newline):
    data, recs = open_quote_file(8, at, newline)
    report, rows, rejects = normalized(tmp_path, data)
    assert (report.rows_in, report.rows_ok, report.rows_rejected) == (8, 7, 1)
    assert rejects[0][:2] == [str(at + 2), "unbalanced quote: a quoted value opened in this record is not closed "
                                           + ("before the end of the file (1 line)" if at == 7 else
                                              "before a line that starts a record (1 line)")]
    assert report.rejected_by_column == {"quote": 1}
    assert names(rows) == [r["name"] for i, r in enumerate(recs) if i != at]


@pytest.mark.parametrize("unquoted", [False, True], ids=["closed by the next quote", "open to the end"])
def test_an_unbalanced_quote_in_a_large_file_rejects_one_record(tmp_path, unquoted):
    data, recs = open_quote_file(12_000, 2_345, unquoted=unquoted)
    assert len(data) > 3 * (3 << 18)                                    # several of Arrow's blocks
    report, rows, rejects = normalized(tmp_path, data)
    assert (report.rows_in, report.rows_ok, report.rows_rejected) == (12_000, 11_999, 1)
    assert rejects[0][0] == "2347" and report.parser == "lines"
    assert names(rows)[2_344:2_346] == [recs[2_344]["name"], recs[2_346]["name"]]


def test_quoted_line_breaks_are_still_values(tmp_path):
    recs = sample.records(5, seed=27)
    recs[2]["detail"] = "여러\r\n줄,\r\n\"설명\""
    report, rows, _ = normalized(tmp_path, sample.file_bytes(recs))
    assert (report.rows_ok, report.rows_rejected) == (5, 0)
    assert rows[2]["detail"] == '여러\n줄,\n"설명"'


# --- spreadsheet formulas ------------------------------------------------------------------------------------------

def test_excels_text_form_is_unwrapped_and_formulas_are_kept_out_of_the_table(tmp_path):
    recs = sample.records(5, seed=28)
    recs[0]["management_agency_phone"] = '="02-120-0000"'
    recs[1]["name"] = '=HYPERLINK("http://example.com/x","열기")'
    recs[2]["wifi_ssid"] = '="=1+1"'                     # unwrapped, and still a formula
    recs[3]["detail"] = "-"                              # a value, not a formula: kept
    report, rows, rejects = normalized(tmp_path, sample.file_bytes(recs))
    assert (report.rows_ok, report.rows_rejected) == (3, 2)
    assert rows[0]["management_agency_phone"] == "02-120-0000" and rows[1]["detail"] == "-"
    assert report.rejected_by_column == {"name": 1, "wifi_ssid": 1}
    assert rejects[0][1].startswith("name (설치장소명): '=HYPERLINK(\"http://example.com/x\",\"열기\")' starts "
                                    "like a spreadsheet formula")


def test_the_rejects_file_holds_no_formula_and_the_raw_file_is_unchanged(tmp_path):
    recs = sample.records(3, seed=29)
    recs[0].update(name='=HYPERLINK("http://example.com","x")', detail="+1", latitude="-33.9")
    recs[1].update(name="@SUM(1)", detail="\t탭", longitude="0")
    data = sample.file_bytes(recs)
    digest = hashlib.sha256(data).hexdigest()
    report, _, rejects = normalized(tmp_path, data)
    assert report.rows_rejected == 2
    header = next(csv.reader((tmp_path / "r.csv").open(encoding="utf-8-sig", newline="")))
    for row in [header, *rejects]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert rejects[0][2:4] == ["'=HYPERLINK(\"http://example.com\",\"x\")", "'+1"] and rejects[0][14] == "'-33.9"
    assert rejects[1][2:4] == ["'@SUM(1)", "'\t탭"]
    assert hashlib.sha256((tmp_path / "in.csv").read_bytes()).hexdigest() == digest   # the verbatim copy


# --- values --------------------------------------------------------------------------------------------------------

def test_absurd_install_dates_are_rejected(tmp_path):
    recs = sample.records(6, seed=30)
    later = dt.date.today().replace(day=1) + dt.timedelta(days=500)
    for i, value in enumerate(["9999-12", "0001-01", "1989-12", later.strftime("%Y-%m"), "1990-01", "2021-07"]):
        recs[i]["installed_at"] = value
    report, rows, rejects = normalized(tmp_path, sample.file_bytes(recs))
    assert [r["installed_at"] for r in rows] == [dt.date(1990, 1, 1), dt.date(2021, 7, 1)]
    latest = values.date_range()[1].isoformat()
    assert [r[1] for r in rejects] == [f"installed_at (설치년월): {v!r} is out of range (expected a date from "
                                       f"1990-01-01 to {latest})" for v in [recs[i]["installed_at"] for i in range(4)]]
    assert report.rejected_by_column == {"installed_at": 4}


@pytest.mark.parametrize("latitude, longitude, column", [
    ("0", "0", "latitude,longitude"), ("51.5074", "-0.1278", "latitude,longitude"),   # London
    ("127.0", "37.5", "latitude,longitude"),                                          # swapped
    ("40.7", "127.0", "latitude"), ("37.5", "140.0", "longitude"),
])
def test_coordinates_outside_south_korea_are_rejected(tmp_path, latitude, longitude, column):
    recs = sample.records(3, seed=31)
    recs[1].update(latitude=latitude, longitude=longitude)
    report, rows, rejects = normalized(tmp_path, sample.file_bytes(recs))
    assert (report.rows_ok, report.rows_rejected, report.rejected_by_column) == (2, 1, {column: 1})
    assert "is outside South Korea (expected a decimal" in rejects[0][1]


def test_full_width_digits_are_read_and_other_scripts_digits_get_a_true_reason(tmp_path):
    recs = sample.records(4, seed=32)
    recs[0].update(latitude="３７．５６６５", longitude="１２６．９７８０", installed_at="２０１５－０３")
    recs[1].update(latitude="٣٧.٥")                                      # Arabic-Indic: not a number here
    report, rows, rejects = normalized(tmp_path, sample.file_bytes(recs, encoding="utf-8"))
    assert (rows[0]["latitude"], rows[0]["longitude"]) == (pytest.approx(37.5665), pytest.approx(126.978))
    assert rows[0]["installed_at"] == dt.date(2015, 3, 1)
    assert rejects[0][1] == "latitude (위도): '٣٧.٥' is not a number (expected a decimal latitude in [33, 38.7])"


class OneWay(io.RawIOBase):
    """A stream that can be read once, front to back (an S3 body, a pipe)."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, b):
        chunk = self._data.read(len(b))
        b[:len(chunk)] = chunk
        return len(chunk)


def test_a_stream_that_cannot_seek_is_read_again_from_a_copy(tmp_path):
    data, recs = open_quote_file(50, 20)
    report = normalize(io.BufferedReader(OneWay(data)), str(tmp_path / "t.parquet"), str(tmp_path / "r.csv"),
                       source="pipe")
    assert (report.parser, report.rows_ok, report.rows_rejected, report.bytes_in) == ("lines", 49, 1, len(data))
