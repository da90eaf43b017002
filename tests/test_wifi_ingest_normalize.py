"""Normalizer and CLI on generated portal files: encodings, line endings, CSV quoting, layouts, bad values."""
from __future__ import annotations

import csv
import datetime as dt
import json

import pyarrow.parquet as pq
import pytest

from functions.wifi_ingest import sample
from functions.wifi_ingest.__main__ import main
from functions.wifi_ingest.layout import COLUMN_NAMES, OLD_LAYOUT_HEADER
from functions.wifi_ingest import normalize as normalize_module
from functions.wifi_ingest.normalize import detect_encoding, normalize
from functions.wifi_ingest.transcode import open_transcoder

_USED = {}


@pytest.fixture(autouse=True, params=["iconv", "python-codecs"])
def transcoder(request, monkeypatch):
    """Every test runs with both transcoders: glibc's iconv (the fast path) and Python's codecs (the fallback)."""
    prefer_iconv = request.param == "iconv"
    monkeypatch.setattr(normalize_module, "open_transcoder",
                        lambda encoding: open_transcoder(encoding, prefer_iconv=prefer_iconv))
    _USED["transcoder"] = request.param
    return request.param


def cli(tmp_path, data: bytes, capsys, name: str = "wifi"):
    """Runs the CLI on ``data``; returns (exit code, printed report, table rows, rejects rows)."""
    src = tmp_path / f"{name}.csv"
    src.write_bytes(data)
    out = tmp_path / "out"
    code = main(["normalize", str(src), "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    lines = printed.out.strip().splitlines()
    assert len(lines) == 1, printed.out
    report = json.loads(lines[0])
    assert json.loads((out / f"{name}.report.json").read_text(encoding="utf-8")) == report
    assert report["rows_in"] == report["rows_ok"] + report["rows_rejected"]
    if report["status"] == "ok":  # UTF-8 is always checked by Python's codecs (glibc's iconv lets bad UTF-8 pass)
        assert report["transcoder"] == (_USED["transcoder"] if report["encoding"] == "cp949" else "python-codecs")
    rows = pq.read_table(out / f"{name}.parquet").to_pylist() if report["status"] == "ok" else None
    rejects_path = out / f"{name}.rejects.csv"
    rejects = list(csv.reader(rejects_path.open(encoding="utf-8-sig", newline=""))) \
        if rejects_path.exists() else []
    if rows is not None:
        assert len(rows) == report["rows_ok"]
        assert len(rejects) == (report["rows_rejected"] + 1 if report["rows_rejected"] else 0)
    return code, report, rows, rejects, printed.err


def assert_rows_equal(rows, records):
    assert len(rows) == len(records)
    for got, rec in zip(rows, records, strict=True):
        want = sample.expected(rec)
        assert list(got) == list(COLUMN_NAMES)
        for name in COLUMN_NAMES:
            if isinstance(want[name], float):
                assert got[name] == pytest.approx(want[name], rel=1e-6), name
            else:
                assert got[name] == want[name], (name, got[name], want[name])


def test_cp949_crlf_old_layout_reads_back_exactly(tmp_path, capsys):
    recs = sample.records(300)
    code, report, rows, rejects, _ = cli(tmp_path, sample.file_bytes(recs), capsys)
    assert code == 0
    assert (report["encoding"], report["line_ending"], report["layout"]) == ("cp949", "CRLF", "standard-15")
    assert (report["rows_in"], report["rows_ok"], report["rows_rejected"]) == (300, 300, 0)
    assert rejects == []
    assert_rows_equal(rows, recs)
    # year-month spellings all mean the first of the month
    assert {r["installed_at"].day for r in rows} == {1}


def test_utf8_bom_lf_extended_layout(tmp_path, capsys):
    recs = sample.records(120, seed=1)
    data = sample.file_bytes(recs, layout="extended", encoding="utf-8", newline="\n", bom=True)
    code, report, rows, _, _ = cli(tmp_path, data, capsys)
    assert code == 0
    assert (report["encoding"], report["line_ending"], report["layout"]) == ("utf-8-sig", "LF", "extended")
    assert report["ignored_columns"] == ["관리번호", "제공기관코드", "제공기관명"]
    assert report["header"][0] == "관리번호"  # the BOM is not part of the first column name
    assert_rows_equal(rows, recs)


def test_utf8_without_bom_cr_only(tmp_path, capsys):
    recs = sample.records(80, seed=2)
    code, report, rows, _, _ = cli(tmp_path, sample.file_bytes(recs, encoding="utf-8", newline="\r"), capsys)
    assert code == 0
    assert (report["encoding"], report["line_ending"]) == ("utf-8", "CR")
    assert_rows_equal(rows, recs)


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_quoted_commas_quotes_and_line_breaks(tmp_path, capsys, newline):
    recs = sample.records(3, seed=3)
    recs[0].update(name='"중앙" 전통시장, 본관', detail=f"1층{newline}로비 \"A\"", road_name_address="서울 중구, 1")
    recs[1].update(detail=f"여러{newline}줄{newline}설명", wifi_ssid='a,"b",c')
    data = sample.file_bytes(recs, newline=newline)
    assert b'"""' in data and newline.encode() + "로비".encode("cp949") in data  # really quoted, really multi-line
    code, report, rows, _, _ = cli(tmp_path, data, capsys)
    assert code == 0 and report["rows_ok"] == 3
    assert rows[0]["name"] == '"중앙" 전통시장, 본관'
    assert rows[0]["detail"] == '1층\n로비 "A"'
    assert rows[1]["detail"] == "여러\n줄\n설명"
    assert rows[1]["wifi_ssid"] == 'a,"b",c'
    assert_rows_equal(rows, recs)


def test_cp949_only_hangul_is_kept(tmp_path, capsys):
    for hangul in "똠햏":  # CP949 extension code points: what makes EUC-KR the wrong codec for these files
        with pytest.raises(UnicodeDecodeError):
            hangul.encode("cp949").decode("euc-kr")
    recs = sample.records(10, seed=4)
    recs[0].update(name="똠방각하 햏 쉼터", management_agency="햏햏구청")
    data = sample.file_bytes(recs)
    with pytest.raises(UnicodeDecodeError):
        data.decode("euc-kr")
    assert detect_encoding(data) == "cp949"
    code, report, rows, _, _ = cli(tmp_path, data, capsys)
    assert code == 0 and report["encoding"] == "cp949"
    assert rows[0]["name"] == "똠방각하 햏 쉼터" and rows[0]["management_agency"] == "햏햏구청"
    assert_rows_equal(rows, recs)


def test_rows_with_wrong_field_count_are_rejected_with_their_fields(tmp_path, capsys):
    recs = sample.records(6, seed=5)
    rows_ = [sample.row(r, "standard-15") for r in recs]
    rows_[1] = rows_[1][:9]                    # short
    rows_[4] = rows_[4] + ["extra"]            # long
    data = sample.csv_text([OLD_LAYOUT_HEADER, *rows_]).encode("cp949")
    code, report, rows, rejects, _ = cli(tmp_path, data, capsys)
    assert code == 0
    assert (report["rows_in"], report["rows_ok"], report["rows_rejected"]) == (6, 4, 2)
    assert report["rejected_by_column"] == {"field count": 2}
    assert rejects[0] == ["row", "reason", *OLD_LAYOUT_HEADER]
    assert rejects[1][:2] == ["3", "expected 15 fields as in the header, got 9"]
    assert rejects[1][2:] == rows_[1]
    assert rejects[2][:2] == ["6", "expected 15 fields as in the header, got 16"]
    assert rejects[2][2:] == rows_[4]
    assert_rows_equal(rows, [recs[i] for i in (0, 2, 3, 5)])


def test_bad_numbers_and_dates_reject_the_row_naming_column_and_value(tmp_path, capsys):
    recs = sample.records(8, seed=7)
    recs[0]["latitude"] = "37.5x"
    recs[1]["longitude"] = "200.5"
    recs[2]["installed_at"] = "2015-13"
    recs[3]["created_at"] = "어제"
    recs[4].update(latitude="nan", installed_at="2015")
    recs[5].update(latitude="", longitude=" ", installed_at="")  # empty -> NULL, accepted
    recs[6].update(installed_at="2019.07", created_at="20200630", latitude=" 37.1 ")
    code, report, rows, rejects, _ = cli(tmp_path, sample.file_bytes(recs), capsys)
    assert code == 0
    assert (report["rows_in"], report["rows_ok"], report["rows_rejected"]) == (8, 3, 5)
    reasons = {int(r[0]): r[1] for r in rejects[1:]}
    assert reasons[2] == "latitude (위도): '37.5x' is not a number (expected a decimal latitude in [33, 38.7])"
    assert reasons[3] == ("longitude (경도): '200.5' is outside South Korea (expected a decimal longitude in "
                          "[124.5, 132])")
    assert reasons[4].startswith("installed_at (설치년월): '2015-13' is not a date (expected YYYY-MM")
    assert reasons[5].startswith("created_at (데이터기준일자): '어제' is not a date")
    assert "installed_at (설치년월): '2015' is not a date" in reasons[6]
    assert "latitude (위도): 'nan' is not a number" in reasons[6]
    assert report["rejected_by_column"] == {"latitude": 1, "longitude": 1, "installed_at": 1, "created_at": 1,
                                            "installed_at,latitude": 1}
    assert [r[2:] for r in rejects[1:]] == [sample.row(recs[i], "standard-15") for i in range(5)]
    empty, spelled, plain = rows
    assert (empty["latitude"], empty["longitude"], empty["installed_at"]) == (None, None, None)
    assert spelled["installed_at"] == dt.date(2019, 7, 1) and spelled["created_at"] == dt.date(2020, 6, 30)
    assert spelled["latitude"] == pytest.approx(37.1)
    assert_rows_equal([plain], [recs[7]])


@pytest.mark.parametrize("encoding", ["cp949", "utf-8"])
def test_invalid_bytes_reject_only_their_record(tmp_path, capsys, encoding):
    recs = sample.records(4, seed=8)
    data = sample.file_bytes(recs, encoding=encoding)
    broken_name = recs[2]["name"].encode(encoding)
    data = data.replace(broken_name, broken_name + b"\xff\xfe", 1)
    code, report, rows, rejects, _ = cli(tmp_path, data, capsys)
    assert code == 0 and report["encoding"] == encoding
    assert (report["rows_ok"], report["rows_rejected"]) == (3, 1)
    assert rejects[1][0] == "4" and rejects[1][1].startswith(f"name (설치장소명): bytes not valid {encoding}")
    assert_rows_equal(rows, [recs[0], recs[1], recs[3]])


def test_all_empty_records_are_rejected_and_blank_lines_skipped(tmp_path, capsys):
    recs = sample.records(2, seed=9)
    text = sample.csv_text([OLD_LAYOUT_HEADER, sample.row(recs[0], "standard-15")]) + "\r\n" + \
        "," * 14 + "\r\n" + sample.csv_text([sample.row(recs[1], "standard-15")])
    code, report, rows, rejects, _ = cli(tmp_path, text.encode("cp949"), capsys)
    assert code == 0 and (report["rows_in"], report["rows_ok"], report["rows_rejected"]) == (3, 2, 1)
    assert rejects[1][:2] == ["3", "all fields empty"]
    assert_rows_equal(rows, recs)


def test_row_numbers_stay_exact_across_many_blocks(tmp_path):
    recs = sample.records(3000, seed=10)
    rows_ = [sample.row(r, "standard-15") for r in recs]
    short = {5, 777, 778, 1500, 2999}
    bad_date = {6, 779, 2000}
    for i in short:
        rows_[i] = rows_[i][:3]
    for i in bad_date:
        rows_[i][7] = "20xx"
    src = tmp_path / "many.csv"
    src.write_bytes(sample.csv_text([OLD_LAYOUT_HEADER, *rows_]).encode("cp949"))
    with src.open("rb") as f:
        report = normalize(f, str(tmp_path / "many.parquet"), str(tmp_path / "many.rej.csv"), source="many",
                           block_bytes=16 << 10)
    assert (report.rows_in, report.rows_rejected) == (3000, len(short) + len(bad_date))
    got = {int(r[0]): r[2:] for r in list(csv.reader((tmp_path / "many.rej.csv").open(encoding="utf-8-sig")))[1:]}
    assert got == {i + 2: rows_[i] for i in short | bad_date}  # header is row 1
    kept = [recs[i] for i in range(3000) if i not in short | bad_date]
    assert_rows_equal(pq.read_table(tmp_path / "many.parquet").to_pylist(), kept)


def test_empty_file_fails_with_message(tmp_path, capsys):
    code, report, _, _, err = cli(tmp_path, b"", capsys)
    assert code == 2 and report["status"] == "failed"
    assert "empty file" in err
    assert not (tmp_path / "out" / "wifi.parquet").exists()


def test_header_only_file_is_processed_with_no_rows(tmp_path, capsys):
    for data in (sample.file_bytes([]), sample.file_bytes([]).rstrip(b"\r\n")):
        code, report, rows, rejects, _ = cli(tmp_path, data, capsys)
        assert code == 0 and (report["rows_in"], report["rows_ok"], report["rows_rejected"]) == (0, 0, 0)
        assert rows == [] and rejects == []
        assert pq.read_schema(tmp_path / "out" / "wifi.parquet").names == list(COLUMN_NAMES)


def test_unknown_header_names_the_missing_columns(tmp_path, capsys):
    header = [h if h != "위도" else "lat" for h in OLD_LAYOUT_HEADER]
    header = [h for h in header if h != "데이터기준일자"]
    code, report, _, _, err = cli(tmp_path, sample.csv_text([header, ["x"] * len(header)]).encode("cp949"), capsys)
    assert code == 2
    assert "missing 2 of 15 columns: 위도 (latitude), 데이터기준일자 (created_at)" in err
    assert report["error"] in err


@pytest.mark.parametrize("data, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL bytes"),
    ("설치장소명\n".encode("utf-16"), "NUL bytes"),
    (b"\r\n\r\n", "only blank lines"),
    (b"\xff\xff\xff\xfe\xfe", "neither UTF-8 nor CP949"),
])
def test_files_that_are_not_csv_fail(tmp_path, capsys, data, message):
    code, report, _, _, err = cli(tmp_path, data, capsys)
    assert code == 2 and message in report["error"] and message in err


def test_missing_input_file(tmp_path, capsys):
    assert main(["normalize", str(tmp_path / "nope.csv"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
