"""Post-deploy smoke test against the real deployment: ``python -m infra.ops.smoke --project maskcam``.

Steps, one line each (ok / FAIL / skip, figures, seconds):

1. ``resolve``: the stacks ``<project>-storage``, ``-analytics`` and ``-wifi`` are deployed; the data bucket, the
   delivery stream (output ``DeliveryStreamName``) and the IoT data endpoint are found;
2. ``publish``: one schema-v1 inference event with zero faces (no detections) on each inference topic, device
   ``smoke-<id>`` as the topic level;
3. ``rules``: no failed-action object of either IoT rule since the publish, and Firehose ``IncomingRecords`` reaches
   the number published (CloudWatch lags by minutes: polled with backoff up to ``--timeout``). The metric counts the
   whole stream, other devices' records too: necessary, not sufficient, and the line says so;
4. ``delivery`` (only with ``--wait-delivery``; do this on a first deploy): Athena in the project workgroup counts
   this run's rows, ``SELECT count(*) FROM <db>.inference_results WHERE dt IN (<publish day>) AND device_id =
   '<smoke id>'``, until they are all there, and no object appears under ``errors/firehose/`` meanwhile (records the
   partition query or the Parquet conversion refused). Firehose buffers up to 900 s: waits up to 20 minutes. Without
   the option the step is ``skip`` and the summary says ``ok (delivery not checked)``: steps 2-3 cannot tell whether
   our records reached the table;
5. ``view <name>``: ``SELECT * FROM <db>.<view> LIMIT 1`` in the project workgroup, for every view query file;
6. ``wifi``: a 3-row CP949 portal CSV under ``raw/smoke/`` gets an ``ok`` report from the ingest Lambda; then that
   upload's own table file is deleted again (below).

Exit 0 when every step passed, 1 when one failed, 2 without AWS credentials or region. Service errors (AccessDenied,
missing resources) become a FAIL line naming the call and the error code.

What stays behind (nothing is deleted where nothing needs to be):

- in ``inference_results``: one row per topic of device ``smoke-<id>`` with 0 faces, 0 masked, 0 unmasked (Firehose
  files cannot be edited). They add nothing to the compliance sums; the device shows up with frames and no faces
  (compliance rate NULL) and counts in "devices" figures: filter ``device_id NOT LIKE 'smoke-%'`` to leave it out;
- ``raw/smoke/<time>-<id> 와이파이 a+b.csv`` and its ``quarantine/`` report (raw files are never deleted);
- the smoke CSV's table file is the one thing removed (``--keep`` keeps it), or its 3 fake rows would stay in the
  Wi-Fi charts: only the exact key this run's report names, under the table prefix and derived from this run's
  upload, and the step line names it. The bucket is versioned: the delete leaves a delete marker, and the file
  stays as a noncurrent version until the bucket's noncurrent-version lifecycle rule expires it.
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from collections.abc import Callable, Sequence

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from functions.analytics import datasets, layout, queries
from maskcam import schema
from maskcam.cloud import topic_for
from functions.wifi_ingest import sample
from functions.wifi_ingest.handler import OutputKeys, RawObject
from functions.wifi_ingest.layout import RAW_PREFIX, TABLE_PREFIX
from infra.settings import DEEPLENS_TOPIC, Settings

DELIVERY_TIMEOUT = 20 * 60          # Firehose flushes at the latest 900 s after the first buffered record
DELIVERY_SKIPPED = ("Firehose buffers up to 900 s; run with --wait-delivery to prove delivery (do this on a first "
                    "deploy)")
RULE_SETTLE_SECONDS = 10            # an IoT error action writes within seconds; wait at least this long for one
WIFI_ROWS = 3
SMOKE_MODEL = ("smoke-test", "0")   # model_name, model_version of the published events
STABLE_STACK_STATUSES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")
ATHENA_FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
SMOKE_DEVICE_RE = re.compile(r"^smoke-[0-9a-f]{8}$")   # what new_device_id makes; the only ids put into SQL
SMOKE_RAW_PREFIX = f"{RAW_PREFIX}smoke/"

OK, FAIL, SKIP = "ok", "FAIL", "skip"


# --- plumbing: clock, polling, step results -------------------------------------------------------------------------

@dataclass(frozen=True)
class Clock:
    """Time sources, injectable so tests neither sleep nor depend on the wall clock's second."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)


def poll(probe: Callable[[], Any], *, timeout: float, clock: Clock, first: float = 5.0, longest: float = 30.0):
    """Calls ``probe`` until it returns something other than None, sleeping ``first``, then twice as long each time
    (at most ``longest``), for at most ``timeout`` seconds. Returns the probe's last value (None on timeout)."""
    start, delay = clock.monotonic(), first
    while True:
        value = probe()
        if value is not None:
            return value
        left = timeout - (clock.monotonic() - start)
        if left <= 0:
            return None
        clock.sleep(min(delay, left))
        delay = min(delay * 2, longest)


class StepFailed(Exception):
    """A check that did not pass; the message is the FAIL line's text."""


@dataclass(frozen=True)
class StepResult:
    name: str
    status: str                 # OK, FAIL or SKIP
    detail: str
    seconds: float = 0.0
    value: Any = field(default=None, repr=False, compare=False)   # what later steps need (resolved names, ...)

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    def line(self) -> str:
        return f"{self.status:<4} {self.name:<30} {self.detail} ({self.seconds:.1f} s)"


def describe_error(err: Exception) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{err.operation_name}: {error.get('Code', '?')} {error.get('Message', '')}".rstrip()
    return f"{type(err).__name__}: {err}"


def step(name: str):
    """Makes a check function (keyword argument ``clock``; returns a detail string or ``(detail, value)``; raises
    StepFailed) return a timed StepResult instead; botocore errors become FAIL results. ``name`` may use the call's
    keyword arguments (``"view {view}"``)."""
    def wrap(check):
        @functools.wraps(check)
        def run_step(*args, clock: Clock, **kwargs) -> StepResult:
            start = clock.monotonic()
            status, value = OK, None
            try:
                out = check(*args, clock=clock, **kwargs)
                detail, value = out if isinstance(out, tuple) else (out, None)
            except StepFailed as err:
                status, detail = FAIL, str(err)
            except (ClientError, BotoCoreError) as err:
                status, detail = FAIL, describe_error(err)
            return StepResult(name.format(**kwargs), status, detail, clock.monotonic() - start, value)
        return run_step
    return wrap


def skipped(name: str, why: str) -> StepResult:
    return StepResult(name, SKIP, why)


# --- S3 listings --------------------------------------------------------------------------------------------------

def utc_days(since: datetime, until: datetime) -> list[str]:
    """Every UTC day (``yyyy-MM-dd``) from ``since`` to ``until``: date-keyed prefixes to look under."""
    day, days = since.astimezone(timezone.utc).date(), []
    while day <= until.astimezone(timezone.utc).date():
        days.append(day.strftime(layout.PARTITION_STRFTIME))
        day += timedelta(days=1)
    return days


def new_objects(s3, bucket: str, prefix: str, since: datetime) -> list[dict]:
    """Objects under ``prefix`` last modified at or after ``since`` (S3 keeps whole seconds), oldest first."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [o for o in page.get("Contents", []) if o["LastModified"] >= since and not o["Key"].endswith("/")]
    return sorted(found, key=lambda o: o["LastModified"])


def new_keys_under(s3, bucket: str, prefixes: Sequence[str], since: datetime) -> list[str]:
    return [o["Key"] for prefix in prefixes for o in new_objects(s3, bucket, prefix, since)]


def subfolders(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
    return [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]


def read_json(s3, bucket: str, key: str) -> dict | None:
    """The object's JSON, or None while it does not exist."""
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


# --- Athena queries -------------------------------------------------------------------------------------------------

def athena_query(athena, deployment: Deployment, sql: str, *, timeout: float, clock: Clock) -> dict:
    """Runs ``sql`` in the project workgroup and returns its SUCCEEDED execution; a failed query or one still running
    at the timeout (then stopped) raises StepFailed."""
    execution_id = athena.start_query_execution(
        QueryString=sql, WorkGroup=deployment.workgroup,
        QueryExecutionContext={"Database": deployment.database})["QueryExecutionId"]

    def finished():
        execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
        return execution if execution["Status"]["State"] in ATHENA_FINAL_STATES else None

    execution = poll(finished, timeout=timeout, clock=clock, first=1.0, longest=10.0)
    if execution is None:
        athena.stop_query_execution(QueryExecutionId=execution_id)
        raise StepFailed(f"query {execution_id} not finished after {timeout:.0f} s (stopped)")
    status = execution["Status"]
    if status["State"] != "SUCCEEDED":
        raise StepFailed(f"{status['State']}: {status.get('StateChangeReason', 'no reason given')} "
                         f"(query {execution_id})")
    return execution


def first_integer(athena, execution_id: str) -> int:
    """The first column of the first data row (row 0 is the header), e.g. a ``count(*)``."""
    rows = athena.get_query_results(QueryExecutionId=execution_id, MaxResults=2)["ResultSet"]["Rows"]
    try:
        return int(rows[1]["Data"][0]["VarCharValue"])
    except (IndexError, KeyError, ValueError):
        raise StepFailed(f"query {execution_id} returned no number: {rows!r}") from None


# --- step 1: resolve the deployment ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    project: str = Settings.project
    region: str | None = None
    database: str = Settings.glue_database
    topic: str = Settings.inference_topic      # the devices' topic filter (setting inference_topic)
    timeout: float = 300.0
    wait_delivery: bool = False
    keep: bool = False                         # keep the Wi-Fi smoke rows in the table

    @property
    def topic_filters(self) -> tuple[str, str]:
        return (DEEPLENS_TOPIC, self.topic)


@dataclass(frozen=True)
class Deployment:
    bucket: str
    stream: str
    iot_endpoint: str
    workgroup: str
    database: str
    rules: dict[str, str]                      # topic filter -> IoT rule name


def stack_names(project: str) -> dict[str, str]:
    return {part: f"{project}-{part}" for part in ("storage", "analytics", "wifi")}


def deployed_stack(cfn, name: str) -> dict:
    found = cfn.describe_stacks(StackName=name)["Stacks"][0]
    if found["StackStatus"] not in STABLE_STACK_STATUSES:
        raise StepFailed(f"stack {name} is {found['StackStatus']}")
    return found


def data_bucket(cfn, storage_stack: str) -> str:
    pages = cfn.get_paginator("list_stack_resources").paginate(StackName=storage_stack)
    buckets = [r["PhysicalResourceId"] for page in pages for r in page["StackResourceSummaries"]
               if r["ResourceType"] == "AWS::S3::Bucket" and r["LogicalResourceId"].startswith("DataBucket")]
    if len(buckets) != 1:
        raise StepFailed(f"stack {storage_stack} has {len(buckets)} AWS::S3::Bucket resources named DataBucket*")
    return buckets[0]


def stack_output(stack: dict, key: str) -> str:
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if key not in outputs:
        raise StepFailed(f"stack {stack['StackName']} has no output {key} (outputs: {', '.join(outputs) or 'none'})")
    return outputs[key]


@step("resolve")
def resolve(cfn, iot, options: Options, *, clock: Clock):
    """The deployment's names, from CloudFormation and the IoT endpoint."""
    names = stack_names(options.project)
    stacks = {part: deployed_stack(cfn, name) for part, name in names.items()}
    deployment = Deployment(
        bucket=data_bucket(cfn, names["storage"]),
        stream=stack_output(stacks["analytics"], "DeliveryStreamName"),
        iot_endpoint=iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"],
        workgroup=f"{options.project}-analytics",
        database=options.database,
        rules={f: layout.rule_name(options.project, f) for f in options.topic_filters})
    statuses = ", ".join(f"{s['StackName']} {s['StackStatus']}" for s in stacks.values())
    return (f"bucket {deployment.bucket}, stream {deployment.stream}, endpoint {deployment.iot_endpoint} "
            f"({statuses})"), deployment


def iot_data_client(session, endpoint: str):
    return session.client("iot-data", endpoint_url=f"https://{endpoint}")


# --- steps 2-4: inference events ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Published:
    device_id: str
    topics: tuple[str, ...]
    at: datetime                # publish time, UTC, whole seconds (compared with S3 LastModified)
    ts_ms: int                  # the events' ts

    @property
    def day(self) -> str:
        """The events' partition day (Firehose partitions by the event's ts)."""
        return datetime.fromtimestamp(self.ts_ms / 1000, timezone.utc).strftime(layout.PARTITION_STRFTIME)

    @property
    def days(self) -> tuple[str, ...]:
        """Every partition day of the published events (they share one ts, so one day)."""
        return (self.day,)


def new_device_id() -> str:
    return f"smoke-{uuid.uuid4().hex[:8]}"


def smoke_event(device_id: str, ts_ms: int) -> str:
    """One schema-v1 inference event with no detections (faces = masked = unmasked = 0, so it adds nothing to the
    compliance figures), as the JSON a device publishes."""
    return schema.to_json(schema.inference_event(device_id, ts_ms, *SMOKE_MODEL, [], latency_ms=0.0))


@step("publish")
def publish(iot_data, topic_filters: Sequence[str], device_id: str, *, clock: Clock):
    """Publishes one event per topic filter, the device id in the filter's '+' level."""
    now = clock.now().astimezone(timezone.utc)
    ts_ms = int(now.timestamp() * 1000)
    topics = tuple(topic_for(f, device_id) for f in topic_filters)
    for topic in topics:
        iot_data.publish(topic=topic, qos=1, payload=smoke_event(device_id, ts_ms).encode("utf-8"))
    published = Published(device_id, topics, now.replace(microsecond=0), ts_ms)
    return f"{len(topics)} event(s) as {device_id}: {', '.join(topics)}", published


def rule_error_keys(s3, deployment: Deployment, since: datetime, now: datetime) -> list[str]:
    prefixes = [f"{layout.IOT_ERRORS_PREFIX}{rule}/{day}/"
                for rule in deployment.rules.values() for day in utc_days(since, now)]
    return new_keys_under(s3, deployment.bucket, prefixes, since)


def incoming_records(cloudwatch, stream: str, since: datetime, now: datetime) -> float:
    """Sum of the stream's ``IncomingRecords`` per minute from ``since``'s minute up to now."""
    datapoints = cloudwatch.get_metric_statistics(
        Namespace="AWS/Firehose", MetricName="IncomingRecords",
        Dimensions=[{"Name": "DeliveryStreamName", "Value": stream}],
        StartTime=since.replace(second=0), EndTime=now + timedelta(minutes=1), Period=60,
        Statistics=["Sum"])["Datapoints"]
    return sum(point["Sum"] for point in datapoints)


def shown(keys: Sequence[str], at_most: int = 3) -> str:
    more = f" (+{len(keys) - at_most} more)" if len(keys) > at_most else ""
    return ", ".join(keys[:at_most]) + more


@step("rules")
def rules_passed(s3, cloudwatch, deployment: Deployment, published: Published, *, timeout: float, clock: Clock):
    """The events got past the IoT rules: no failed-action object, Firehose counted at least as many records."""
    start, seen = clock.monotonic(), {"records": 0.0}

    def probe():   # error keys (may be empty: done) or None (keep waiting)
        errors = rule_error_keys(s3, deployment, published.at, clock.now())
        if errors:
            return errors
        seen["records"] = incoming_records(cloudwatch, deployment.stream, published.at, clock.now())
        settled = clock.monotonic() - start >= min(RULE_SETTLE_SECONDS, timeout)
        return [] if settled and seen["records"] >= len(published.topics) else None

    errors = poll(probe, timeout=timeout, clock=clock, first=5.0, longest=60.0)
    if errors:
        raise StepFailed(f"{len(errors)} IoT rule error object(s) since the publish: {shown(errors)}")
    figure = (f"Firehose IncomingRecords {seen['records']:g} (published {len(published.topics)}) on "
              f"{deployment.stream} since {published.at:%H:%M:%S}Z (whole stream, other devices count too: "
              "necessary, not sufficient)")
    if errors is None:
        raise StepFailed(f"{figure} after {timeout:.0f} s; no IoT rule error objects")
    return f"{figure}; no error objects under {layout.IOT_ERRORS_PREFIX}{{{','.join(deployment.rules.values())}}}/"


def firehose_error_keys(s3, bucket: str, since: datetime, now: datetime) -> list[str]:
    """New objects under ``errors/firehose/<error type>/<arrival day>/``."""
    prefixes = [f"{kind}{day}/" for kind in subfolders(s3, bucket, layout.FIREHOSE_ERRORS_PREFIX)
                for day in utc_days(since, now)]
    return new_keys_under(s3, bucket, prefixes, since)


def smoke_rows_sql(database: str, published: Published) -> str:
    """This run's rows in the inference table; only ids ``new_device_id`` makes get into the statement."""
    if not SMOKE_DEVICE_RE.match(published.device_id):
        raise ValueError(f"{published.device_id!r} is not a smoke device id (smoke-<8 hex digits>)")
    days = ", ".join(f"'{day}'" for day in published.days)
    return (f"SELECT count(*) FROM {database}.{layout.TABLE} WHERE {layout.PARTITION_KEY[0]} IN ({days}) "
            f"AND device_id = '{published.device_id}'")


def smoke_rows(athena, deployment: Deployment, published: Published, *, timeout: float, clock: Clock) -> int:
    execution = athena_query(athena, deployment, smoke_rows_sql(deployment.database, published),
                             timeout=timeout, clock=clock)
    return first_integer(athena, execution["QueryExecutionId"])


@step("delivery")
def delivered(s3, athena, deployment: Deployment, published: Published, *, timeout: float = DELIVERY_TIMEOUT,
              query_timeout: float = 300.0, clock: Clock):
    """Athena finds every published event of this run's device in the table; no Firehose error object meanwhile.
    Athena is only asked once a file newer than the publish is in the events' partition (nothing to count before)."""
    bucket, prefix, wanted = deployment.bucket, layout.partition_path(published.day), len(published.topics)
    seen: dict[str, int | None] = {"files": 0, "rows": None}

    def probe():
        errors = firehose_error_keys(s3, bucket, published.at, clock.now())
        if errors:
            raise StepFailed(f"{len(errors)} Firehose error object(s) since the publish: {shown(errors)}")
        seen["files"] = len(new_objects(s3, bucket, prefix, published.at))
        if not seen["files"]:
            return None
        seen["rows"] = rows = smoke_rows(athena, deployment, published, timeout=query_timeout, clock=clock)
        return rows if rows >= wanted else None

    rows = poll(probe, timeout=timeout, clock=clock, first=30.0, longest=120.0)
    files = f"{seen['files']} new file(s) under s3://{bucket}/{prefix}"
    if rows is None:
        found = "not asked (no file yet)" if seen["rows"] is None else f"found {seen['rows']}"
        raise StepFailed(f"after {timeout:.0f} s: {files}; Athena {found} of the {wanted} rows of "
                         f"{published.device_id}; no Firehose error objects")
    return (f"Athena: {rows} row(s) of {published.device_id} in {deployment.database}.{layout.TABLE} "
            f"{layout.PARTITION_KEY[0]}={','.join(published.days)} (published {wanted}); {files}; no objects under "
            f"{layout.FIREHOSE_ERRORS_PREFIX}")


# --- step 5: views --------------------------------------------------------------------------------------------------

def view_names() -> list[str]:
    """The views the project's ``CREATE VIEW`` query files create."""
    return [datasets.view_name(q) for q in queries.load() if q.is_view]


@step("view {view}")
def view_query(athena, deployment: Deployment, *, view: str, timeout: float, clock: Clock):
    """``SELECT * FROM <db>.<view> LIMIT 1`` in the project workgroup."""
    execution = athena_query(athena, deployment, f"SELECT * FROM {deployment.database}.{view} LIMIT 1",
                             timeout=timeout, clock=clock)
    stats = execution.get("Statistics", {})
    return (f"SUCCEEDED, {stats.get('DataScannedInBytes', 0):,} bytes scanned, "
            f"{stats.get('EngineExecutionTimeInMillis', 0)} ms (query {execution['QueryExecutionId']})")


# --- step 6: Wi-Fi ingest -------------------------------------------------------------------------------------------

def smoke_csv() -> bytes:
    """A small portal CSV as data.go.kr ships it: the older 15-column layout, CP949, CRLF."""
    return sample.file_bytes(sample.records(WIFI_ROWS), layout="standard-15", encoding="cp949", newline="\r\n")


def report_figures(report: dict) -> str:
    return " ".join(f"{k}={report.get(k)}" for k in ("rows_in", "rows_ok", "rows_rejected")) + \
        f" encoding={report.get('encoding')}"


def smoke_upload_key(clock: Clock) -> str:
    """A fresh raw key of this run: ``raw/smoke/<UTC time>-<random> 와이파이 a+b.csv``. The ingest URL-decodes the key
    of its event; if EventBridge sent keys unencoded, the ``+`` would decode to a space, the object would not be
    found and the run fails: this is the check on a real bucket."""
    return f"{SMOKE_RAW_PREFIX}{clock.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]} 와이파이 a+b.csv"


def smoke_table_key(report: dict, bucket: str, raw_key: str, outputs: OutputKeys) -> str:
    """The one key the smoke run may delete: the table file of its own upload. ``outputs`` must be derived from this
    run's raw key (under ``raw/smoke/``), its data key a ``.parquet`` file directly under the table prefix whose name
    carries that upload's unique name, and the report must name exactly that key as its data; otherwise StepFailed,
    and nothing is deleted."""
    key, named = outputs.data, (report.get("outputs") or {}).get("data")
    upload = raw_key.rsplit("/", 1)[-1].rsplit(".", 1)[0]          # <UTC time>-<random>, unique to this run
    name = key[len(TABLE_PREFIX):] if key.startswith(TABLE_PREFIX) else ""
    problems = (
        (raw_key.startswith(SMOKE_RAW_PREFIX), f"upload {raw_key} is not under {SMOKE_RAW_PREFIX}"),
        (bool(name) and "/" not in name and name.endswith(".parquet"),
         f"{key} is not a .parquet file directly under {TABLE_PREFIX}"),
        (bool(upload) and upload in name, f"{key} does not carry this upload's name {upload}"),
        (named == f"s3://{bucket}/{key}", f"the report names the table data {named}, not s3://{bucket}/{key}"),
    )
    for holds, otherwise in problems:
        if not holds:
            raise StepFailed(f"not deleting the smoke table file: {otherwise}")
    return key


def remove_smoke_table_file(s3, bucket: str, key: str) -> str:
    deleted = s3.delete_object(Bucket=bucket, Key=key)
    marker = f", delete marker {deleted['VersionId']}" if deleted.get("VersionId") else ""
    return f"deleted s3://{bucket}/{key} (this run's {WIFI_ROWS} smoke rows{marker})"


@step("wifi")
def wifi_ingested(s3, bucket: str, *, timeout: float, clock: Clock, keep: bool = False):
    """Uploads a small CSV under ``raw/smoke/`` and waits for the ingest Lambda's report (``status: ok``); then
    deletes that upload's table file (unless ``keep``), and nothing else."""
    key = smoke_upload_key(clock)
    put = s3.put_object(Bucket=bucket, Key=key, Body=smoke_csv(), ContentType="text/csv")
    outputs = OutputKeys.for_object(RawObject(bucket, key, put.get("VersionId"), put.get("ETag")))
    report = poll(lambda: read_json(s3, bucket, outputs.report), timeout=timeout, clock=clock, first=2.0)
    if report is None:
        raise StepFailed(f"no report s3://{bucket}/{outputs.report} {timeout:.0f} s after uploading {key}")
    figures = report_figures(report)
    if report.get("status") != "ok":
        raise StepFailed(f"report status {report.get('status')}: {report.get('error')}; {figures} ({outputs.report})")
    removed = "" if keep else "; " + remove_smoke_table_file(s3, bucket, smoke_table_key(report, bucket, key, outputs))
    if (report.get("rows_in"), report.get("rows_ok")) != (WIFI_ROWS, WIFI_ROWS):
        raise StepFailed(f"{figures}, expected all {WIFI_ROWS} rows ok ({outputs.report}){removed}")
    return f"{figures}; report {outputs.report}{removed}"


# --- run and CLI ----------------------------------------------------------------------------------------------------

def emit_line(line: str) -> None:
    print(line, flush=True)   # as each step ends, also when stdout is a pipe (make, tee)


def run(session, options: Options, *, clock: Clock = Clock(),
        emit: Callable[[str], None] = emit_line) -> list[StepResult]:
    """Every step in order, each emitted as it finishes; stops after ``resolve`` when that fails."""
    results: list[StepResult] = []

    def record(result: StepResult) -> StepResult:
        results.append(result)
        emit(result.line())
        return result

    s3, athena = session.client("s3"), session.client("athena")
    found = record(resolve(session.client("cloudformation"), session.client("iot"), options, clock=clock))
    if not found.ok:
        return results
    deployment: Deployment = found.value

    sent = record(publish(iot_data_client(session, deployment.iot_endpoint), options.topic_filters,
                          new_device_id(), clock=clock))
    if sent.ok:
        record(rules_passed(s3, session.client("cloudwatch"), deployment, sent.value, timeout=options.timeout,
                            clock=clock))
        record(delivered(s3, athena, deployment, sent.value, query_timeout=options.timeout, clock=clock)
               if options.wait_delivery else skipped("delivery", DELIVERY_SKIPPED))
    else:
        record(skipped("rules", "nothing published"))
        record(skipped("delivery", "nothing published"))
    for view in view_names():
        record(view_query(athena, deployment, view=view, timeout=options.timeout, clock=clock))
    record(wifi_ingested(s3, deployment.bucket, timeout=options.timeout, clock=clock, keep=options.keep))
    return results


def device_topic_filter(value: str) -> str:
    if layout.device_topic_level(value) is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no '+' level for the device id (e.g. maskcam/+/infer)")
    return value


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m infra.ops.smoke", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", default=Options.project)
    parser.add_argument("--region", default=None, help="default: the AWS configuration's region")
    parser.add_argument("--database", default=Options.database)
    parser.add_argument("--topic", default=Options.topic, type=device_topic_filter,
                        help="the devices' inference topic filter (setting inference_topic)")
    parser.add_argument("--timeout", type=float, default=Options.timeout,
                        help="seconds each waiting step may take (default %(default)s; --wait-delivery: 20 min)")
    parser.add_argument("--wait-delivery", action="store_true",
                        help="also wait (up to 20 min) until Athena finds the smoke rows in the table: the only "
                             "proof of delivery (do this on a first deploy)")
    parser.add_argument("--keep", action="store_true", help="keep the Wi-Fi smoke rows in the table")
    args = parser.parse_args(argv)
    return Options(project=args.project, region=args.region, database=args.database, topic=args.topic,
                   timeout=args.timeout, wait_delivery=args.wait_delivery, keep=args.keep)


def configuration_problem(session) -> str | None:
    if session.get_credentials() is None:
        return "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    if not session.region_name:
        return "no AWS region (pass --region or set AWS_REGION)"
    return None


def summary(results: Sequence[StepResult]) -> str:
    """The verdict first: ``FAILED: <steps>``, ``ok (<steps> not checked)`` when a step was skipped, else ``ok``."""
    names = {status: [r.name for r in results if r.status == status] for status in (OK, FAIL, SKIP)}
    verdict = (f"FAILED: {', '.join(names[FAIL])}" if names[FAIL] else
               f"ok ({', '.join(names[SKIP])} not checked)" if names[SKIP] else "ok")
    return (f"smoke: {verdict} — {len(names[OK])} ok, {len(names[FAIL])} failed, "
            f"{len(names[SKIP])} skipped")


def main(argv: Sequence[str] | None = None, session=None, *, clock: Clock = Clock()) -> int:
    options = parse_args(argv)
    try:
        session = session or boto3.Session(region_name=options.region)
        problem = configuration_problem(session)
    except BotoCoreError as err:   # e.g. AWS_PROFILE names a profile that does not exist
        problem = describe_error(err)
    if problem:
        print(f"smoke: {problem}", file=sys.stderr)
        return 2
    results = run(session, options, clock=clock)
    print(summary(results))
    return 1 if any(r.status == FAIL for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
