"""Firehose rules, with the stream's own partition query run by a real jq 1.6 (what Firehose's JQ-1.6 engine is).

- Records whose partition keys cannot be extracted go to the S3 error prefix, which is required with dynamic
  partitioning (https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-error-handling.html); the prefix
  should carry `!{firehose:error-output-type}` (https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html).
- Dynamic partitioning and format conversion need a buffer of at least 64 MiB
  (https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html, buffering hints).
- Athena's partition projection only sees partitions inside `projection.<key>.range`
  (https://docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html, date type): an event the
  query puts into a day outside the range is neither queryable nor under the error prefix, so the query must fail
  for exactly those.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.analytics import layout
from tests.aws_rules.support import resources

JQ_VERSION = "jq-1.6"
MIN_BUFFER_MIB = 64
NOW_MS = int(time.time() * 1000)


def _destination(template: dict) -> dict:
    (_, stream), = resources(template, "AWS::KinesisFirehose::DeliveryStream")
    return stream["Properties"]["ExtendedS3DestinationConfiguration"]


def partition_query(template: dict) -> str:
    for processor in _destination(template)["ProcessingConfiguration"]["Processors"]:
        if processor["Type"] == "MetadataExtraction":
            params = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
            assert params["JsonParsingEngine"] == "JQ-1.6"
            return params["MetadataExtractionQuery"]
    raise AssertionError("no MetadataExtraction processor")


@pytest.fixture(scope="session")
def jq() -> str:
    path = shutil.which("jq")
    assert path, "jq not found: install Debian's jq 1.6 (`apt-get install jq`; .ci/run does it)"
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
    assert version == JQ_VERSION, f"{path} is {version}; Firehose runs {JQ_VERSION}, install Debian 12's jq"
    return path


def run_query(jq: str, query: str, records: list) -> list:
    """The query on each record as Firehose runs it: its output object, or None when jq fails on the record."""
    guarded = f"try ({query}) catch null"
    lines = "\n".join(json.dumps(r) for r in records)
    out = subprocess.run([jq, "-c", guarded], input=lines, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms // 1000, tz=timezone.utc).strftime(layout.PARTITION_STRFTIME)


# -- rules ------------------------------------------------------------------------------------------------------------
def prefix_problems(template: dict) -> list:
    dest = _destination(template)
    problems = []
    if dest.get("DynamicPartitioningConfiguration", {}).get("Enabled"):
        if "!{firehose:error-output-type}" not in dest.get("ErrorOutputPrefix", ""):
            problems.append("dynamic partitioning without an error prefix naming !{firehose:error-output-type}")
        if dest["BufferingHints"]["SizeInMBs"] < MIN_BUFFER_MIB:
            problems.append(f"buffer {dest['BufferingHints']['SizeInMBs']} MiB < {MIN_BUFFER_MIB} MiB")
    return problems


def projection_problems(jq: str, query: str) -> list:
    """Events the query partitions into a day the projection cannot show (or fails to partition when it could)."""
    lo = layout.PROJECTION_MIN_MS
    last_day_end = (NOW_MS // layout.DAY_MS + layout.PROJECTION_FUTURE_DAYS + 1) * layout.DAY_MS
    probes = [{"ts": t, "ingest_ts": NOW_MS} for t in (lo - 1, lo, NOW_MS, last_day_end - 1, last_day_end,
                                                        NOW_MS // 1000, NOW_MS * 1000, -NOW_MS, 0)]
    problems = []
    for record, out in zip(probes, run_query(jq, query, probes), strict=True):
        inside = lo <= record["ts"] < last_day_end
        if inside and out != {layout.PARTITION_KEY[0]: day(record["ts"])}:
            problems.append(f"{record} is inside the projection but the query gives {out}")
        if not inside and out is not None:
            problems.append(f"{record} is outside the projection {layout.PROJECTION_RANGE} but the query puts it "
                            f"into {out}: neither queryable nor in errors/")
    return problems


# -- the synthesized stream passes ------------------------------------------------------------------------------------
def test_the_stream_passes(templates, jq):
    analytics = templates["maskcam-analytics"]
    assert prefix_problems(analytics) == []
    assert projection_problems(jq, partition_query(analytics)) == []


def test_the_projection_range_is_the_one_the_query_enforces(templates):
    (_, table), = [r for r in resources(templates["maskcam-analytics"], "AWS::Glue::Table")
                   if r[1]["Properties"]["TableInput"]["Name"] == layout.TABLE]
    params = table["Properties"]["TableInput"]["Parameters"]
    assert params[f"projection.{layout.PARTITION_KEY[0]}.range"] == ",".join(layout.PROJECTION_RANGE)
    assert day(layout.PROJECTION_MIN_MS) == layout.PROJECTION_RANGE[0]


values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=layout.PROJECTION_MIN_MS - layout.DAY_MS, max_value=NOW_MS + 3 * layout.DAY_MS),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5), st.booleans(), st.none(),
    st.lists(st.integers(), max_size=2))


ingest_times = st.one_of(st.just(NOW_MS), st.integers(min_value=layout.PROJECTION_MIN_MS, max_value=NOW_MS * 2),
                        values)


@pytest.mark.property
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.fixed_dictionaries({}, optional={"ts": values, "ingest_ts": ingest_times}), min_size=1,
                max_size=40))
def test_jq_and_the_local_lake_accept_exactly_the_same_events(templates, jq, records):
    """The local lake writer (layout.partition_problem) and Firehose (the jq query) agree on every record: same
    partition for the accepted ones, an error for the rest; every record is one or the other."""
    query = partition_query(templates["maskcam-analytics"])
    originals = json.loads(json.dumps(records))
    outputs = run_query(jq, query, records)
    assert len(outputs) == len(records) and records == originals
    for record, out in zip(records, outputs, strict=True):
        problem = layout.partition_problem(record.get("ts"), record.get("ingest_ts"))
        if problem is None:
            assert out == {"dt": day(int(record["ts"]))}, record
        else:
            assert out is None, (record, out, problem)


# -- each rule bites --------------------------------------------------------------------------------------------------
OLD_QUERY = '{dt: (.ts / 1000 | floor | strftime("%Y-%m-%d"))}'


def test_the_old_unbounded_query_is_reported(jq):
    problems = projection_problems(jq, OLD_QUERY)
    assert any("seconds" in p or str(NOW_MS // 1000) in p for p in problems)
    assert any(str(NOW_MS * 1000) in p for p in problems)


def test_a_small_buffer_is_reported(templates):
    bad = json.loads(json.dumps(templates["maskcam-analytics"]))
    _destination(bad)["BufferingHints"]["SizeInMBs"] = 5
    assert prefix_problems(bad)


def test_a_year_past_9999_is_an_error_not_a_jq_abort(templates, jq):
    """jq 1.6's strftime aborts the whole process on such a year (found by the property test above): the query must
    reject the record before it gets there, whatever the ingest time says."""
    query = partition_query(templates["maskcam-analytics"])
    records = [{"ts": 253402300800000.0, "ingest_ts": 253402224278016.0},
               {"ts": 6.77680361916768e+19, "ingest_ts": 6.77680361915904e+19}]
    assert run_query(jq, query, records) == [None, None]
