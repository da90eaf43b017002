"""Hostile input for the local lake writer (``functions.analytics.writer``): the named defects (deep nesting,
integers too large for their column, NaN / Infinity / 1e400, text that is not Unicode, one bad line sinking the good
lines of its batch) and property-based tests whose assertions are the invariants:

- no exception escapes ``check_event`` or ``ingest_lines`` for any sequence of text lines;
- ``read == accepted + rejected`` (blank lines, JSON whitespace only, are counted apart);
- every non-blank input line is in exactly one output: its row in the lake's Parquet (found by the unique marker in
  ``device_id``, equal to the parsed event) or its record in the rejects file (same source and line, ``raw`` = the
  line as given, with at least one problem);
- the input (the list of lines, the file's bytes) is never modified.
"""
import copy
import hashlib
import json
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.analytics import layout, writer
from functions.analytics.arrow_schema import EVENT_SCHEMA
from maskcam import schema

NOW_MS = 1_795_773_600_000            # 2026-11-27T10:00:00Z
TS = NOW_MS - 60_000
# The active Hypothesis profile's example count (100); `make fuzz` reruns the `property` tests with new seeds.
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def heartbeat(device_id="cam-1", **fields):
    event = schema.heartbeat_event(device_id, TS, "m", "v", 2.5, 10, 0, 0)
    event.update(fields)
    return event


def inference(device_id="cam-1", boxes=((1, 2, 3, 4),), **fields):
    dets = [{"label": "mask", "probability": 0.9, "box": list(b)} for b in boxes]
    event = schema.inference_event(device_id, TS, "m", "v", dets, 12.5)
    event.update(fields)
    return event


def line_of(event, **tokens):
    """JSON of ``event`` where string values ``@name`` are replaced by the raw JSON token ``tokens[name]``."""
    text = json.dumps(event)
    for name, token in tokens.items():
        text = text.replace(json.dumps("@" + name), token)
    return text


def ingest(texts, lake, batch_size=50_000):
    lines = [("in.jsonl", n, t) for n, t in enumerate(texts, start=1)]
    return writer.ingest_lines(lines, lake, now_ms=NOW_MS, batch_size=batch_size)


def lake_rows(report):
    return [row for f in report.files for row in pq.read_table(f, partitioning=None).to_pylist()]


def rejects(report):
    if report.errors_file is None:
        return []
    return [json.loads(line) for line in report.errors_file.read_bytes().decode("utf-8").split("\n") if line]


GOOD = [line_of(heartbeat("good-1")), line_of(inference("good-2"))]

HOSTILE = {
    "nested 100,000 deep": "[" * 100_000 + "]" * 100_000,
    "object nested 5,000 deep": '{"a":' * 5_000 + "1" + "}" * 5_000,
    "nested 40 deep in a field": line_of(heartbeat(message="@deep"), deep="[" * 40 + "]" * 40),
    "faces over 32 bits on a heartbeat": line_of(heartbeat(faces=2 ** 40)),
    "box value over 32 bits": line_of(inference(boxes=((1, 2, 3, 2 ** 31),))),
    "frames over 64 bits": line_of(heartbeat(frames=2 ** 64)),
    "errors = -2**63 - 1": line_of(heartbeat(errors=-2 ** 63 - 1)),
    "a 5,000-digit integer": line_of(heartbeat(frames="@n"), n="9" * 5_000),
    "fps integer over 2**53 (a double cannot hold it)": line_of(heartbeat(fps=2 ** 53 + 1)),
    "fps NaN": line_of(heartbeat(fps="@x"), x="NaN"),
    "fps Infinity": line_of(heartbeat(fps="@x"), x="Infinity"),
    "latency -Infinity": line_of(inference(latency_ms="@x"), x="-Infinity"),
    "fps 1e400": line_of(heartbeat(fps="@x"), x="1e400"),
    "latency -1e400": line_of(inference(latency_ms="@x"), x="-1e400"),
    "NaN in an unknown place": line_of(heartbeat(), ).replace("}", ', "x": NaN}'),
    "lone surrogate in message": line_of(schema.error_event("cam-1", TS, "m", "v", "x") | {"message": "\ud800"}),
    "event_type an object (the schema check raised TypeError)": line_of(heartbeat(event_type={"x": 1})),
    "source_topic not a string": line_of(heartbeat(source_topic=5)),
    "ingest_ts a float": line_of(heartbeat(ingest_ts=1.5e12)),
    "ingest_ts true": line_of(heartbeat(ingest_ts=True)),
    "unknown field in a detection": line_of(inference() | {"detections": [
        {"label": "mask", "probability": 0.9, "box": [1, 2, 3, 4], "extra": 1}]}),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_line_is_rejected_with_its_reason_and_the_good_lines_of_its_batch_are_written(kind, tmp_path):
    text = HOSTILE[kind]
    event, problems = writer.check_event(text, NOW_MS)
    assert event is None and problems and all(isinstance(p, str) for p in problems), problems

    report = ingest([GOOD[0], text, GOOD[1]], tmp_path)
    assert (report.read, report.accepted, report.rejected) == (3, 2, 1)
    assert sorted(r["device_id"] for r in lake_rows(report)) == ["good-1", "good-2"]
    (record,) = rejects(report)
    assert (record["line"], record["raw"], record["problems"]) == (2, text, problems)


@pytest.mark.parametrize("text, expected", [
    (HOSTILE["nested 100,000 deep"], "nested too deeply"),
    (HOSTILE["nested 40 deep in a field"], "nested deeper than"),
    (HOSTILE["faces over 32 bits on a heartbeat"], "faces 1099511627776 does not fit the column (32-bit integer)"),
    (HOSTILE["frames over 64 bits"], "does not fit in 64 bits"),
    (HOSTILE["fps NaN"], "NaN is not a JSON number"),
    (HOSTILE["fps Infinity"], "Infinity is not a JSON number"),
    (HOSTILE["fps 1e400"], "number 1e400 is out of the range of a double"),
    (HOSTILE["lone surrogate in message"], "message is not valid Unicode text"),
    (HOSTILE["unknown field in a detection"], "detections[0] has unknown field(s) extra"),
])
def test_reasons_say_what_is_wrong(text, expected):
    _, problems = writer.check_event(text, NOW_MS)
    assert any(expected in p for p in problems), problems


def test_the_largest_values_that_fit_are_accepted_and_stored_exactly(tmp_path):
    texts = [line_of(heartbeat("edge-1", frames=2 ** 63 - 1, errors=-2 ** 63, fps=2 ** 53, faces=2 ** 31 - 1)),
             line_of(inference("edge-2", boxes=((-2 ** 31, 0, 2 ** 31 - 1, 1),), latency_ms=1.7976931348623157e308))]
    report = ingest(texts, tmp_path)
    assert (report.accepted, report.rejected) == (2, 0), rejects(report)
    rows = {r["device_id"]: r for r in lake_rows(report)}
    assert rows["edge-1"]["frames"] == 2 ** 63 - 1 and rows["edge-1"]["errors"] == -2 ** 63
    assert rows["edge-2"]["detections"][0]["box"] == [-2 ** 31, 0, 2 ** 31 - 1, 1]


def test_a_value_arrow_refuses_costs_only_its_own_line(tmp_path, monkeypatch):
    """Fault injection: should a value pass ``check_event`` that the table conversion refuses (here: the column
    check switched off), the batch is converted line by line; only the refused lines are rejected."""
    monkeypatch.setattr(writer, "column_problems", lambda event: [])
    texts = [GOOD[0], HOSTILE["faces over 32 bits on a heartbeat"], GOOD[1], HOSTILE["source_topic not a string"]]
    report = ingest(texts, tmp_path, batch_size=3)
    assert (report.read, report.accepted, report.rejected) == (4, 2, 2)
    assert sorted(r["device_id"] for r in lake_rows(report)) == ["good-1", "good-2"]
    records = rejects(report)
    assert sorted(r["line"] for r in records) == [2, 4]
    assert all(r["problems"][0].startswith("cannot be stored in the table: ") for r in records), records


def test_not_utf8_bytes_in_a_file_are_rejected_and_kept_byte_for_byte(tmp_path):
    path = tmp_path / "events.jsonl"
    bad = line_of(heartbeat("bytes-1", message="@m"), m='"caf\udce9"').encode("utf-8", "surrogateescape")
    assert b"caf\xe9" in bad
    data = GOOD[0].encode() + b"\n" + bad + b"\n\xff\xfe garbage\n" + GOOD[1].encode() + b"\n"
    path.write_bytes(data)
    report = writer.ingest_lines(writer.read_json_lines([path]), tmp_path / "lake", now_ms=NOW_MS)
    assert (report.read, report.accepted, report.rejected) == (4, 2, 2)
    records = rejects(report)
    assert [r["raw"].encode("utf-8", "surrogateescape") for r in records] == [bad, b"\xff\xfe garbage"]
    assert "not valid Unicode" in records[0]["problems"][0]
    assert path.read_bytes() == data


def test_blank_lines_are_counted_apart_and_other_whitespace_is_a_record(tmp_path):
    report = ingest(["", " \t\r\n", "\n", "\u3000", "\x0c"], tmp_path)
    assert (report.blank, report.read, report.rejected) == (3, 2, 2)


def test_a_partial_parquet_file_never_stays_in_the_lake(tmp_path, monkeypatch):
    def broken(table, path, **kwargs):
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.pq, "write_table", broken)
    with pytest.raises(OSError, match="No space"):
        ingest(GOOD, tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# ---------------------------------------------------------------------------------------------- property-based

HOSTILE_TOKENS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 30, str(2 ** 63), str(-2 ** 63 - 1),
                  str(2 ** 31), str(2 ** 53 + 1), '"\\ud800"', '"\\udcff"', "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]",
                  '{"x": 1}', "true", "null", '""', '"1"', "1.5", "-0", "[]"]
FIELDS = sorted(set(layout.COLUMN_NAMES) - {"device_id"} | {"extra"})  # device_id: the marker


@st.composite
def events(draw, marker):
    """A valid event of any type with ``marker`` as device id, then (sometimes) one field set to a hostile token."""
    kind = draw(st.sampled_from(schema.EVENT_TYPES))
    ts = draw(st.integers(layout.PROJECTION_MIN_MS, NOW_MS))
    ints = st.integers(0, 2 ** 31 - 1)
    if kind == "inference":
        dets = draw(st.lists(st.fixed_dictionaries({
            "label": st.sampled_from(schema.LABELS), "probability": st.floats(0, 1),
            "box": st.lists(st.integers(-2 ** 31, 2 ** 31 - 1), min_size=4, max_size=4)}), max_size=3))
        event = schema.inference_event(marker, ts, "m", "v", dets, draw(st.floats(0, 1e6)))
    elif kind == "heartbeat":
        event = schema.heartbeat_event(marker, ts, "m", "v", draw(st.floats(0, 1e3)), draw(ints), draw(ints),
                                       draw(ints))
    else:
        event = schema.error_event(marker, ts, "m", "v", draw(st.text(max_size=20)))
    if draw(st.booleans()):
        event["ingest_ts"] = draw(st.integers(ts, NOW_MS))
    if draw(st.booleans()):
        event[draw(st.sampled_from(FIELDS))] = "@t"
        return line_of(event, t=draw(st.sampled_from(HOSTILE_TOKENS)))
    return json.dumps(event, ensure_ascii=draw(st.booleans()))


any_char = st.characters(exclude_categories=())  # every code point, lone surrogates included
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(any_char, max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)


@st.composite
def input_lines(draw):
    """(texts, markers): lines of every kind; ``markers[i]`` is the device id of line i when it is an event."""
    texts, markers = [], []
    for i in range(draw(st.integers(0, 12))):
        marker = f"marker-{i}-{draw(st.integers(0, 9999))}"
        kind = draw(st.sampled_from(["event", "event", "event", "text", "json", "deep", "blank"]))
        if kind == "event":
            text = draw(events(marker))
        elif kind == "text":
            text = draw(st.text(any_char, max_size=40))
        elif kind == "json":
            text = json.dumps(draw(json_values), ensure_ascii=draw(st.booleans()))
        elif kind == "deep":
            depth = draw(st.integers(1, 30_000))
            opener = draw(st.sampled_from(["[", '{"a":', '{"ts":']))
            text = opener * depth + "1" + ("]" if opener == "[" else "}") * draw(st.integers(0, depth))
        else:
            text = draw(st.sampled_from(["", " ", "\t\r\n", "\n"]))
        if draw(st.booleans()):
            text += "\n"
        texts.append(text)
        markers.append(marker if kind == "event" else None)
    return texts, markers


@pytest.mark.property
@PROPERTY
@given(st.one_of(st.text(any_char), st.sampled_from(list(HOSTILE.values())), json_values.map(json.dumps),
                 events("cam-1")))
def test_check_event_never_raises_and_answers_event_or_problems(text):
    event, problems = writer.check_event(text, NOW_MS)
    if event is None:
        assert problems and all(isinstance(p, str) for p in problems)
    else:
        assert problems == [] and isinstance(event, dict)
        assert not writer.column_problems(event) and schema.problems(
            {k: v for k, v in event.items() if k not in ("ingest_ts", "source_topic")}) == []


@pytest.mark.property
@PROPERTY
@given(input_lines(), st.integers(1, 4))
def test_every_line_is_written_or_rejected_never_lost_and_the_input_is_unchanged(generated, batch_size):
    texts, markers = generated
    lines = [("in.jsonl", n, t) for n, t in enumerate(texts, start=1)]
    before = copy.deepcopy(lines)
    with tempfile.TemporaryDirectory() as lake:
        report = writer.ingest_lines(iter(lines), Path(lake), now_ms=NOW_MS, batch_size=batch_size)
        rows = lake_rows(report)
        records = rejects(report)
        left_over = [p.name for p in Path(lake).rglob("*.tmp")]
    assert lines == before
    blank = [not t.strip(" \t\r\n") for t in texts]
    assert report.blank == sum(blank)
    assert report.read == len(texts) - sum(blank) == report.accepted + report.rejected
    assert (len(rows), len(records)) == (report.accepted, report.rejected) and left_over == []

    rows_by_marker = {}
    for row in rows:
        rows_by_marker.setdefault(row["device_id"], []).append(row)
    records_by_line = {r["line"]: r for r in records}
    assert len(records_by_line) == len(records)
    for number, (text, marker, is_blank) in enumerate(zip(texts, markers, blank, strict=True), start=1):
        written = rows_by_marker.pop(marker, []) if marker else []
        record = records_by_line.pop(number, None)
        if is_blank:
            assert not written and record is None
            continue
        assert (len(written), record is not None) in ((1, False), (0, True)), (text, written, record)
        if record is not None:
            assert record["source"] == "in.jsonl" and record["problems"]
            assert record["raw"] == (text[:-1] if text.endswith("\n") else text)
        else:
            event = json.loads(text)
            stored = {name: value for name, value in written[0].items() if value is not None}
            assert stored == {"ingest_ts": NOW_MS, **{k: v for k, v in event.items() if v is not None}}
    assert rows_by_marker == {} and records_by_line == {}       # nothing in the outputs that was not in the input


@pytest.mark.property
@PROPERTY
@given(st.lists(st.one_of(st.binary(max_size=30), events("file-cam").map(str.encode),
                          st.sampled_from(list(HOSTILE.values())).map(lambda t: t.encode("utf-8", "surrogatepass"))),
                max_size=8))
def test_a_file_of_any_bytes_is_never_modified_and_rejected_lines_keep_their_bytes(chunks):
    lines = [c.replace(b"\r", b" ").replace(b"\n", b" ") for c in chunks]
    data = b"".join(line + b"\n" for line in lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        report = writer.ingest_lines(writer.read_json_lines([path]), Path(tmp) / "lake", now_ms=NOW_MS)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        records = rejects(report)
        assert report.read == report.accepted + report.rejected == len(lines) - report.blank
        assert sum(pq.read_metadata(f).num_rows for f in report.files) == report.accepted
    for record in records:
        assert record["raw"].encode("utf-8", "surrogateescape") == lines[record["line"] - 1]


def test_the_schema_of_the_checker_is_the_lake_schema():
    """``column_problems`` walks ``EVENT_SCHEMA``: every column type is one it knows (a new type would pass
    unchecked and only the table conversion's line-by-line fallback would catch it)."""
    import pyarrow as pa

    def known(t):
        if pa.types.is_list(t):
            return known(t.value_type)
        if pa.types.is_struct(t):
            return all(known(t.field(i).type) for i in range(t.num_fields))
        return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t) or pa.types.is_boolean(t)

    assert all(known(f.type) for f in EVENT_SCHEMA)
