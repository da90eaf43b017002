"""Hostile portal files for the normalizer, the invariants they must keep, and a long fuzz run.

``python -m functions.wifi_ingest.fuzz --minutes 10`` runs the property checks below with hypothesis for that long
(new random seeds, many examples), prints a summary line per property, and exits 1 with the falsifying example when
an invariant breaks (its input is written to ``--save``, ./wifi-fuzz-failure.csv). The test suite
(``tests/test_wifi_ingest_properties.py``) runs the same properties with few examples. Needs hypothesis (a
development dependency; the Lambda never imports this module).

Invariants checked on every example (``check``):

- nothing but ``UnusableFile`` (the whole file unusable: a documented outcome) escapes ``normalize``, and
  ``outputs.run`` never raises;
- ``rows_in == rows_ok + rows_rejected``; the Parquet file has ``rows_ok`` rows, the rejects file
  ``rows_rejected`` (and no cell in it starts like a spreadsheet formula);
- every generated record (found by the unique marker ``M<nnnn>Z`` in its ``name``) is in the table or in the
  rejects, never in both, never twice in the table; an output row holds exactly one marker (no record swallowed
  another); records without damage are in the table with exactly the expected values, records with a rejecting
  defect are in the rejects;
- the file is read the same by both readers: the line reader alone (``parser="lines"``) gives the same table and
  the same rejects as the automatic choice;
- the input file's bytes are unchanged.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import hashlib
import inspect
import math
import os
import re
import sys
import tempfile
import time
from typing import Any
from collections.abc import Sequence

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.wifi_ingest import sample
from functions.wifi_ingest.layout import COLUMN_NAMES
from functions.wifi_ingest.normalize import UnusableFile, normalize
from functions.wifi_ingest.outputs import LocalOutputs, run

# What starts a formula in a spreadsheet program (OWASP CSV injection); kept here, not imported, so that these
# checks also run against an older normalizer (the tests' "fails before the fix" evidence).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")

MARKER = re.compile(r"M\d{4}Z")
NAME, DETAIL, SSID, PHONE, LAT, LON, INSTALLED = ("name", "detail", "wifi_ssid", "management_agency_phone",
                                                   "latitude", "longitude", "installed_at")
FULL_WIDTH = str.maketrans("0123456789.-", "０１２３４５６７８９．－")
INVALID_BYTES = {
    "cp949": [b"\x80", b"\xff", b"\x80\x80"],
    "utf-8": [b"\xff", b"\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
              b"\xe0", b"\xf0\x9f", b"\x80"],
}
# value defects: (field, value, outcome) ; outcome "rejected" or a function giving the expected stored value
REJECTING_VALUES = [
    (SSID, '=HYPERLINK("http://example.com","click")'), (DETAIL, "=1+2"), (NAME, None),
    (INSTALLED, "9999-12"), (INSTALLED, "0001-01"), (INSTALLED, "2015-13"), (INSTALLED, "어제"),
    (LAT, "0"), (LAT, "51.5"), (LON, "-0.12"), (LAT, "nan"), (LAT, "٣٧.٥"),
]
STRUCTURE = ("unbalanced_quote", "extra_line_break", "joined_with_next")


class Case:
    """A generated file and what must become of each of its records (a plain class: hypothesis prints its repr).

    ``expected``: marker -> table row, for records that must be in the table; ``must_reject``: markers of records
    that must be in the rejects; ``loose``: markers that may be in either (damaged structure, or next to it)."""

    def __init__(self, data: bytes, encoding: str, markers: list[str], expected: dict[str, dict[str, object]],
                 must_reject: set[str], loose: set[str], block_bytes: int = 1 << 14) -> None:
        self.data, self.encoding, self.markers, self.expected = data, encoding, markers, expected
        self.must_reject, self.loose, self.block_bytes = must_reject, loose, block_bytes

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        return (f"Case(encoding={self.encoding!r}, block_bytes={self.block_bytes}, markers={len(self.markers)}, "
                f"must_reject={sorted(self.must_reject)}, loose={sorted(self.loose)}, data={_short(self.data)})")


def _short(data: bytes, limit: int = 4000) -> str:
    text = repr(data)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(data)} bytes)"


def _encode(text: str, encoding: str) -> bytes:
    return text.encode("utf-8" if encoding == "utf-8-sig" else encoding)


@st.composite
def portal_files(draw, max_records: int = 24) -> Case:
    """A portal file with records marked ``M<nnnn>Z``, some of them damaged in ways seen in real or hostile
    uploads (invalid bytes, unbalanced quotes, formulas, absurd dates and places, full-width digits, quoted line
    breaks, values longer than the parser's block)."""
    layout = draw(st.sampled_from(["standard-15", "extended"]))
    encoding = draw(st.sampled_from(["cp949", "utf-8", "utf-8-sig"]))
    newline = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    count = draw(st.integers(0, max_records))
    recs = sample.records(count, seed=draw(st.integers(0, 10_000)))
    parts: list[bytes] = [_encode(sample.csv_text([sample.header(layout)], newline), encoding)]
    markers: list[str] = []
    expected: dict[str, dict[str, object]] = {}
    must_reject: set[str] = set()
    loose: set[str] = set()
    previous = None             # the previous record's structural damage, if any
    for i, rec in enumerate(recs):
        marker = f"M{i:04d}Z"
        rec[NAME] = f"{marker} {rec[NAME]}"
        markers.append(marker)
        defect = draw(st.sampled_from([None] * 6 + ["value", "accepted", "bytes", "structure", "long"]))
        want, rejected, kind = _altered_values(draw, rec, defect, encoding, newline)
        raw, damage = _record_bytes(draw, rec, i, defect, kind, layout, newline, encoding)
        if draw(st.integers(0, 9)) == 0:
            parts.append(_encode(newline, encoding))   # a blank line
        parts.append(raw)
        # After a damaged record the next is taken with it only when it was joined to it: an open quote stops at
        # the next line that starts a record (complete, or opening a quoted line break).
        if damage is not None or previous == "joined_with_next":
            loose.add(marker)
        elif rejected or defect == "bytes":
            must_reject.add(marker)
        else:
            assert want is not None, f"record {marker} ({defect}): neither damaged nor rejected, but no table row"
            expected[marker] = want
        previous = damage
    data = b"".join(parts)
    if encoding == "utf-8-sig":
        data = b"\xef\xbb\xbf" + data
    ending = _encode(newline, encoding)
    if recs and draw(st.booleans()) and data.endswith(ending) and previous != "joined_with_next":
        data = data[:-len(ending)]                     # no line break after the last record
    block = draw(st.sampled_from([1 << 14, 1 << 16, 3 << 18]))
    return Case(data, encoding, markers, expected, must_reject, loose, block)


def _altered_values(draw, rec: dict, defect: str | None, encoding: str,
                    newline: str) -> tuple[dict[str, object] | None, bool, str | None]:
    """Alters ``rec``'s values as ``defect`` says; returns the row the table should then hold (``None``: none),
    whether the record must be rejected, and for ``"accepted"`` which accepted oddity it got."""
    if defect == "value":
        want = _rejecting_value(draw, rec, encoding)
        return want, want is None, None
    if defect == "accepted":
        kind, want = _accepted_oddity(draw, rec, newline)
        return want, False, kind
    if defect == "long":
        size = draw(st.sampled_from([40_000, 99_000, 100_001, 250_000]))
        rec[DETAIL] = "길" * (size // 3) + "x" * (size % 3)
        if len(rec[DETAIL].encode("utf-8")) > 100_000:
            return None, True, None
        return sample.expected(rec), False, None
    if defect is None:
        return sample.expected(rec), False, None
    return None, False, None                       # "bytes", "structure": the damage is in the bytes


def _rejecting_value(draw, rec: dict, encoding: str) -> dict[str, object] | None:
    """A value the normalizer rejects, or for the name a leading ``@`` that it keeps (the row it then holds)."""
    field, value = draw(st.sampled_from(REJECTING_VALUES))
    if field == NAME:                    # a leading @ is kept (it only matters in a spreadsheet)
        rec[SSID] = "@" + rec[SSID]
        return sample.expected(rec)
    try:
        _encode(value, encoding)
    except UnicodeEncodeError:
        value = "37.5x"
    rec[field] = value
    return None


def _accepted_oddity(draw, rec: dict, newline: str) -> tuple[str, dict[str, object]]:
    """Something odd that the normalizer accepts; returns its kind and the row the table should hold."""
    kind = draw(st.sampled_from(["excel_text", "full_width", "line_break", "plus_minus", "mark"]))
    want = sample.expected(rec)
    if kind == "excel_text":
        rec[PHONE] = f'="{rec[PHONE]}"'
    elif kind == "full_width":
        rec[LAT] = rec[LAT].translate(FULL_WIDTH)
    elif kind == "line_break":
        rec[DETAIL] = f"첫 줄{newline}둘째 줄"
        want[DETAIL] = "첫 줄\n둘째 줄"
    else:
        rec[DETAIL] = draw(st.sampled_from(["-", "+82 2-123-4567", "@home", "-1층"]))
        want[DETAIL] = rec[DETAIL]
    return kind, want


def _record_bytes(draw, rec: dict, i: int, defect: str | None, kind: str | None, layout: str, newline: str,
                  encoding: str) -> tuple[bytes, str | None]:
    """The record's line as bytes in ``encoding``, with invalid bytes or damaged structure where ``defect`` says;
    returns it and the structural damage (``None``: none)."""
    if defect == "bytes":
        # between two characters of the SSID (plain ASCII, never quoted): the record's bytes are undecodable
        ssid, rec[SSID] = rec[SSID], "\u00a7\u00a7"
        before, after = sample.csv_text([sample.row(rec, layout, i)], newline).split("\u00a7\u00a7")
        cut = draw(st.integers(0, len(ssid)))
        bad = draw(st.sampled_from(INVALID_BYTES["cp949" if encoding == "cp949" else "utf-8"]))
        return _encode(before + ssid[:cut], encoding) + bad + _encode(ssid[cut:] + after, encoding), None
    if defect == "structure":
        damage = draw(st.sampled_from(STRUCTURE))
        return _damage(draw, sample.csv_text([sample.row(rec, layout, i)], newline), damage, newline, encoding), damage
    raw = _encode(sample.csv_text([sample.row(rec, layout, i)], newline), encoding)
    if kind == "mark" and encoding != "cp949" and not raw.startswith(b'"'):
        raw = b"\xef\xbb\xbf" + raw           # a byte-order mark left by concatenated files: trimmed
        #                                      (before a quote it would make the quotes text: CSV's rule)
    return raw, None


def _damage(draw, row_text: str, kind: str, newline: str, encoding: str) -> bytes:
    """The record's text with its structure damaged."""
    body = row_text[:-len(newline)]
    commas = [m.start() for m in re.finditer(",", body)]
    if kind == "unbalanced_quote":
        at = draw(st.sampled_from([0] + [c + 1 for c in commas]))
        text = body[:at] + '"' + body[at:] + newline
    elif kind == "extra_line_break":   # after the marker's field: neither part can be a whole record
        marker = MARKER.search(body)
        start = body.find(",", marker.end()) + 1 if marker else 0
        at = draw(st.integers(start or len(body), len(body)))
        text = body[:at] + newline + body[at:] + newline
    else:  # joined_with_next: no line break after it
        text = body + ","
    return _encode(text, encoding)


# --- running and checking ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    report: dict | None
    rows: list[dict]
    rejects: list[list[str]]       # without the header row
    error: str | None = None


def normalized(data: bytes, work: str, *, parser: str = "auto", block_bytes: int = 1 << 14,
               name: str = "in") -> Outcome:
    """``normalize`` on ``data`` (as a file in ``work``), outputs read back. Only ``UnusableFile`` is caught."""
    src = os.path.join(work, f"{name}.csv")
    with open(src, "wb") as f:
        f.write(data)
    digest = hashlib.sha256(data).hexdigest()
    out = os.path.join(work, f"{name}.{parser}")
    os.makedirs(out, exist_ok=True)
    data_path, rejects_path = os.path.join(out, "t.parquet"), os.path.join(out, "r.csv")
    for stale in (data_path, rejects_path):
        if os.path.exists(stale):
            os.remove(stale)
    options: dict[str, Any] = {"block_bytes": block_bytes, **({"parser": parser} if parser != "auto" else {})}
    try:
        with open(src, "rb") as f:
            report = normalize(f, data_path, rejects_path, source=src, **options)
    except UnusableFile as err:
        outcome = Outcome(None, [], [], str(err))
    else:
        rows = pq.read_table(data_path).to_pylist()
        rejects: list[list[str]] = []
        if report.outputs["rejects"]:
            with open(rejects_path, encoding="utf-8-sig", newline="") as f:
                rejects = list(csv.reader(f))[1:]
        else:
            assert not os.path.exists(rejects_path), "a rejects file the report does not name"
        outcome = Outcome(report.as_dict(), rows, rejects)
    with open(src, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest, "the input file was modified"
    return outcome


def check_counts(outcome: Outcome) -> None:
    report = outcome.report
    if report is None:
        return
    assert report["rows_in"] == report["rows_ok"] + report["rows_rejected"], report
    assert len(outcome.rows) == report["rows_ok"], (len(outcome.rows), report)
    assert len(outcome.rejects) == report["rows_rejected"], (len(outcome.rejects), report)
    assert sum(report["rejected_by_column"].values()) == report["rows_rejected"], report
    assert report.get("parser", "arrow") in ("arrow", "lines"), report
    for reject in outcome.rejects:
        for cell in reject:
            assert not cell.startswith(FORMULA_START), f"formula cell in the rejects file: {cell[:80]!r}"
    for row in outcome.rows:
        for name in COLUMN_NAMES:
            value = row[name]
            if isinstance(value, str):
                assert not value.startswith("="), f"a formula in the table: {value[:80]!r}"
                assert value == value.strip() and value != "", f"untrimmed or blank value {value[:80]!r}"
            if isinstance(value, dt.date):
                assert dt.date(1990, 1, 1) <= value <= dt.date.today() + dt.timedelta(days=366), value
        if row["latitude"] is not None:
            assert 33.0 <= row["latitude"] <= 38.7 and not math.isnan(row["latitude"]), row
        if row["longitude"] is not None:
            assert 124.5 <= row["longitude"] <= 132.0, row


def _first_difference(a: list, b: list) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):  # lengths may differ: reported below
        if x != y:
            return f"item {i}: {str(x)[:600]} != {str(y)[:600]}"
    return f"{len(a)} items != {len(b)} items"


def _same(a: Outcome, b: Outcome) -> None:
    assert (a.report is None) == (b.report is None), (a.error, b.error)
    if a.report is None or b.report is None:
        return
    assert a.rows == b.rows, "the two readers disagree on the table: " + _first_difference(a.rows, b.rows)
    assert sorted(a.rejects) == sorted(b.rejects), \
        "the two readers disagree on the rejects: " + _first_difference(sorted(a.rejects), sorted(b.rejects))
    for key in ("rows_in", "rows_ok", "rows_rejected", "rejected_by_column", "bytes_in"):
        assert a.report[key] == b.report[key], (key, a.report[key], b.report[key])


def _has_line_reader() -> bool:
    return "parser" in inspect.signature(normalize).parameters   # (an older normalizer has only Arrow's)


def check_case(case: Case, work: str) -> Outcome:
    """All invariants for a generated file (see the module docstring)."""
    auto = normalized(case.data, work, block_bytes=case.block_bytes)
    check_counts(auto)
    assert auto.report is not None, f"a generated portal file was refused: {auto.error}"
    if _has_line_reader():
        lines_only = normalized(case.data, work, parser="lines", block_bytes=case.block_bytes)
        check_counts(lines_only)
        _same(auto, lines_only)
    in_table: dict[str, dict] = {}
    for row in auto.rows:
        found = MARKER.findall(row["name"] or "")
        assert len(found) == 1, f"a table row holds {len(found)} records' markers: {row['name']!r}"
        assert found[0] not in in_table, f"record {found[0]} is in the table twice"
        in_table[found[0]] = row
    in_rejects: set[str] = set()
    for reject in auto.rejects:
        for cell in reject[2:]:
            in_rejects.update(MARKER.findall(cell))
    for marker in case.markers:
        assert (marker in in_table) != (marker in in_rejects), \
            f"record {marker}: in table {marker in in_table}, in rejects {marker in in_rejects}"
    for marker, want in case.expected.items():
        assert marker in in_table, f"record {marker} must be in the table; rejects: " + \
            str([r[:2] for r in auto.rejects if any(marker in c for c in r)])
        got = in_table[marker]
        for name in COLUMN_NAMES:
            wanted = want[name]
            if isinstance(wanted, float):
                assert got[name] is not None and math.isclose(got[name], wanted, rel_tol=1e-6), \
                    (marker, name, got[name], wanted)
            else:
                assert got[name] == wanted, (marker, name, got[name], wanted)
    for marker in case.must_reject:
        assert marker in in_rejects, f"record {marker} must be rejected; it is in the table: {in_table[marker]}"
    return auto


def check_bytes(data: bytes, work: str, block_bytes: int = 1 << 14) -> None:
    """Any bytes: only ``UnusableFile`` escapes ``normalize``, ``run`` never raises, counts add up, both readers
    agree."""
    auto = normalized(data, work, block_bytes=block_bytes)
    check_counts(auto)
    if _has_line_reader():
        lines_only = normalized(data, work, parser="lines", block_bytes=block_bytes)
        check_counts(lines_only)
        _same(auto, lines_only)
    outputs = LocalOutputs.in_dir(work, "run")
    with open(os.path.join(work, "in.csv"), "rb") as f:
        report = run(f, outputs, source="fuzz")
    assert report.status in ("ok", "failed")
    assert os.path.exists(outputs.report)


# --- strategies for unstructured input ---------------------------------------------------------------------------

HEADER_UTF8 = sample.csv_text([sample.header("standard-15")]).encode("utf-8")
HEADER_CP949 = sample.csv_text([sample.header("standard-15")]).encode("cp949")
CSV_ALPHABET = ' ,,,"""\r\n\n=+-@\t0123456789.가똠햏３\u3000ÿ'
_RECORD_PIECES = [sample.csv_text([sample.row(r, "standard-15")]) for r in sample.records(6, seed=99)]


def csv_like_text(max_size: int = 1500):
    """Text made of what CSV parsers care about, with whole records mixed in."""
    return st.lists(st.one_of(st.text(alphabet=CSV_ALPHABET, max_size=40), st.sampled_from(_RECORD_PIECES)),
                    max_size=max(1, max_size // 40)).map("".join)


@st.composite
def headed_bytes(draw) -> bytes:
    """A valid header, then CSV-like text (in UTF-8 or CP949) with random bytes spliced in."""
    encoding = draw(st.sampled_from(["utf-8", "cp949"]))
    text = draw(csv_like_text())
    body = text.encode(encoding, errors="replace")
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=6)) + body[at:]
    return (HEADER_UTF8 if encoding == "utf-8" else HEADER_CP949) + body


any_bytes = st.one_of(st.binary(max_size=3000), headed_bytes())


# --- the long run -------------------------------------------------------------------------------------------------

def _keep(data: bytes, save: str | None) -> None:
    """Writes a failing input to ``save`` (the last one written is the shrunk example hypothesis reports)."""
    if save:
        with open(save, "wb") as f:
            f.write(data)


def _properties(examples: int, save: str | None = None):
    """The properties of the long run, with ``examples`` examples (cheap ones get more)."""
    def profile(n):
        return settings(max_examples=n, deadline=None, derandomize=False, database=None,
                        suppress_health_check=list(HealthCheck))

    @profile(examples)
    @given(portal_files())
    def structured(case):
        with tempfile.TemporaryDirectory(prefix="wifi-fuzz-") as work:
            try:
                check_case(case, work)
            except BaseException:
                _keep(case.data, save)
                raise

    @profile(examples * 4)
    @given(any_bytes, st.sampled_from([1 << 12, 1 << 14, 3 << 18]))
    def unstructured(data, block):
        with tempfile.TemporaryDirectory(prefix="wifi-fuzz-") as work:
            try:
                check_bytes(data, work, block)
            except BaseException:
                _keep(data, save)
                raise

    @profile(examples * 4)
    @given(st.lists(st.text(min_size=1, max_size=60), min_size=2, max_size=8, unique=True))
    def keys(paths):
        check_keys(paths)

    return {"portal files": (structured, examples), "any bytes": (unstructured, examples * 4),
            "raw keys": (keys, examples * 4)}


def check_keys(paths: Sequence[str]) -> None:
    """Distinct raw keys never share a table file or a quarantine folder; keys fit S3 and Athena reads them."""
    from functions.wifi_ingest.handler import S3_KEY_BYTES, OutputKeys, RawObject
    from functions.wifi_ingest.layout import TABLE_PREFIX
    outputs = [OutputKeys.for_object(RawObject("b", "raw/" + p, "v1", None)) for p in paths]
    assert len({o.data for o in outputs}) == len(paths), paths
    assert len({o.report for o in outputs}) == len(paths), paths
    for out in outputs:
        name = out.data[len(TABLE_PREFIX):]
        assert len(out.data.encode("utf-8", "surrogatepass")) <= S3_KEY_BYTES, out.data
        assert "/" not in name and not name.startswith(("_", ".")), out.data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.wifi_ingest.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--batch", type=int, default=500, help="examples per property per round (default 500)")
    parser.add_argument("--save", default="wifi-fuzz-failure.csv",
                        help="where a failing input is written (default ./wifi-fuzz-failure.csv)")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.minutes * 60
    totals: dict[str, int] = {}
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        for name, (prop, count) in _properties(args.batch, args.save).items():
            started = time.monotonic()
            try:
                prop()
            except Exception as err:  # noqa: BLE001 - hypothesis re-raised the falsifying example's error
                print(f"FAIL {name} (round {rounds}): {type(err).__name__}: {err}", flush=True)
                if name != "raw keys":
                    print(f"the failing input is in {args.save}", flush=True)
                return 1
            totals[name] = totals.get(name, 0) + count
            print(f"ok   {name}: round {rounds}, {count} examples in {time.monotonic() - started:.0f} s "
                  f"({totals[name]} so far)", flush=True)
            if time.monotonic() >= deadline:
                break
    print("fuzz: no invariant broken; " + ", ".join(f"{n}: {c} examples" for n, c in totals.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
