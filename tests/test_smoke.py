"""``infra.ops.smoke`` against moto, offline. moto runs no IoT rule, Firehose delivery or Athena query, so the tests
play the cloud's part: a fake sleep hook runs the real Wi-Fi ingest code on the uploaded file (as the Lambda would),
adds the Firehose metric, writes a delivered file and queues the count Athena would return (moto's result queue);
CloudWatch and Athena answers in sequence come from botocore's Stubber."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iotdata.models import iotdata_backends

from functions.analytics import layout
from maskcam import schema
from maskcam.cloud import DEVICE_ID_RE
from functions.wifi_ingest.handler import OutputKeys, RawObject, ingest
from functions.wifi_ingest.layout import QUARANTINE_PREFIX, RAW_PREFIX, TABLE_PREFIX
from infra.ops import smoke

REGION = "us-east-1"
PROJECT = "maskcam"
DEVICE = "smoke-ab12cd34"
STREAM = "maskcam-inference-stream"
RULES = {smoke.DEEPLENS_TOPIC: "maskcam_inference_deeplens", "maskcam/+/infer": "maskcam_inference_devices"}


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aws():
    with mock_aws():
        yield


class FakeClock:
    """Monotonic time that only moves when the code sleeps; each sleep runs the hooks (the cloud doing its part)."""

    def __init__(self, *hooks):
        self.t, self.sleeps, self.hooks = 0.0, [], list(hooks)

    def monotonic(self):
        return self.t

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.t += seconds
        for hook in self.hooks:
            hook()

    @property
    def clock(self):
        return smoke.Clock(monotonic=self.monotonic, sleep=self.sleep)


def once(hook):
    calls = []
    return lambda: calls or calls.append(hook())


def data_bucket(name="maskcam-storage-databucket-test"):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def deployment(aws):
    return smoke.Deployment(bucket=data_bucket(), stream=STREAM, iot_endpoint="data-ats.iot.us-east-1.amazonaws.com",
                            workgroup=f"{PROJECT}-analytics", database="awskrug", rules=RULES)


def published_now(at=None):
    at = (at or datetime.now(timezone.utc)).replace(microsecond=0)
    return smoke.Published(DEVICE, ("$aws/things/smoke-ab12cd34/infer", "maskcam/smoke-ab12cd34/infer"), at,
                           int(at.timestamp() * 1000))


def put_incoming_records(count, at=None):
    """Firehose's count, stamped ``at`` (default: now). A test that publishes in the future stamps its records then:
    a point stamped now falls in the minute before the publish when the two straddle a minute boundary."""
    boto3.client("cloudwatch").put_metric_data(Namespace="AWS/Firehose", MetricData=[{
        "MetricName": "IncomingRecords", "Value": count, "Timestamp": at or datetime.now(timezone.utc),
        "Dimensions": [{"Name": "DeliveryStreamName", "Value": STREAM}]}])


def today():
    return datetime.now(timezone.utc).strftime(layout.PARTITION_STRFTIME)


def queue_athena_count(count):
    """What Athena would answer to the next query whose results are read (moto executes no SQL)."""
    athena_backends[DEFAULT_ACCOUNT_ID][REGION].query_results_queue.append(QueryResults(
        rows=[{"Data": [{"VarCharValue": "_col0"}]}, {"Data": [{"VarCharValue": str(count)}]}],
        column_info=[{"Name": "_col0", "Type": "bigint"}]))


def athena_queries():
    return [e.query for e in athena_backends[DEFAULT_ACCOUNT_ID][REGION].executions.values()]


# --- publish ----------------------------------------------------------------------------------------------------------

def test_publish_sends_one_valid_event_per_topic_with_the_device_id_as_topic_level(aws):
    result = smoke.publish(boto3.client("iot-data"), smoke.Options().topic_filters, DEVICE, clock=FakeClock().clock)

    assert result.ok, result.detail
    sent = iotdata_backends[DEFAULT_ACCOUNT_ID][REGION].published_payloads
    assert [topic for topic, _ in sent] == ["$aws/things/smoke-ab12cd34/infer", "maskcam/smoke-ab12cd34/infer"]
    for topic, payload in sent:
        event = schema.validate(json.loads(payload))
        assert event["event_type"] == "inference" and event["device_id"] == topic.split("/")[-2] == DEVICE
        # nothing for the compliance sums: no detections, zero faces
        assert (event["faces"], event["masked"], event["unmasked"], event["detections"]) == (0, 0, 0, [])
    assert result.value.topics == tuple(topic for topic, _ in sent)
    assert result.value.ts_ms == json.loads(sent[0][1])["ts"]


def test_device_ids_are_smoke_prefixed_and_fresh():
    ids = {smoke.new_device_id() for _ in range(20)}
    assert len(ids) == 20 and all(i.startswith("smoke-") and DEVICE_ID_RE.match(i) for i in ids)


# --- rules: error objects and Firehose metrics -----------------------------------------------------------------------

def test_rules_ok_when_no_error_object_and_firehose_counted_the_records(deployment):
    published = published_now()
    fake = FakeClock(once(lambda: put_incoming_records(2)))   # the metric shows up after the first wait

    result = smoke.rules_passed(boto3.client("s3"), boto3.client("cloudwatch"), deployment, published,
                                timeout=300, clock=fake.clock)

    assert result.ok, result.detail
    assert "IncomingRecords 2 (published 2)" in result.detail
    assert "whole stream" in result.detail and "necessary, not sufficient" in result.detail
    assert fake.t >= smoke.RULE_SETTLE_SECONDS           # waited long enough for an error action to show


def test_rules_fail_naming_an_error_object_newer_than_the_publish(deployment):
    published = published_now()
    key = f"{layout.IOT_ERRORS_PREFIX}maskcam_inference_devices/{today()}/1700000000000-uuid.json"
    boto3.client("s3").put_object(Bucket=deployment.bucket, Key=key, Body=b"{}")

    result = smoke.rules_passed(boto3.client("s3"), boto3.client("cloudwatch"), deployment, published,
                                timeout=300, clock=FakeClock().clock)

    assert result.status == smoke.FAIL
    assert key in result.detail and "1 IoT rule error object(s)" in result.detail


def test_rules_ignore_error_objects_older_than_the_publish(deployment):
    key = f"{layout.IOT_ERRORS_PREFIX}maskcam_inference_deeplens/{today()}/old.json"
    boto3.client("s3").put_object(Bucket=deployment.bucket, Key=key, Body=b"{}")
    published = published_now(datetime.now(timezone.utc) + timedelta(seconds=2))
    put_incoming_records(2, at=published.at)

    result = smoke.rules_passed(boto3.client("s3"), boto3.client("cloudwatch"), deployment, published,
                                timeout=300, clock=FakeClock().clock)

    assert result.ok, result.detail


def test_rules_metrics_polled_with_backoff_until_they_arrive(deployment):
    cloudwatch = boto3.client("cloudwatch")
    published = published_now()
    stub = Stubber(cloudwatch)
    expected = {"Namespace": "AWS/Firehose", "MetricName": "IncomingRecords", "Period": 60, "Statistics": ["Sum"],
                "Dimensions": [{"Name": "DeliveryStreamName", "Value": STREAM}], "StartTime": ANY, "EndTime": ANY}
    point = {"Timestamp": published.at, "Sum": 1.0}
    for datapoints in ([], [point], [point, point, point]):   # CloudWatch lags: nothing, then part, then all
        stub.add_response("get_metric_statistics", {"Datapoints": datapoints}, expected)
    fake = FakeClock()

    with stub:
        result = smoke.rules_passed(boto3.client("s3"), cloudwatch, deployment, published, timeout=300,
                                    clock=fake.clock)
        stub.assert_no_pending_responses()

    assert result.ok, result.detail
    assert "IncomingRecords 3 (published 2)" in result.detail
    assert fake.sleeps == [5.0, 10.0]


def test_rules_fail_with_the_figure_when_firehose_never_counts_the_records(deployment):
    fake = FakeClock()
    result = smoke.rules_passed(boto3.client("s3"), boto3.client("cloudwatch"), deployment, published_now(),
                                timeout=60, clock=fake.clock)

    assert result.status == smoke.FAIL
    assert "IncomingRecords 0 (published 2)" in result.detail and "after 60 s" in result.detail
    assert fake.t == 60 and result.seconds == 60


# --- delivery ---------------------------------------------------------------------------------------------------------

def partition_file(published, name="maskcam-stream-1-2026-12-01-00-00-00-abc"):
    return f"{layout.partition_path(published.day)}{name}"


def delivery_ready(deployment):
    boto3.client("athena").create_work_group(Name=deployment.workgroup)


def test_delivery_counts_this_runs_rows_in_athena(deployment):
    delivery_ready(deployment)
    published = published_now()
    s3 = boto3.client("s3")

    def firehose_flushes():
        s3.put_object(Bucket=deployment.bucket, Key=partition_file(published), Body=b"PAR1 row groups PAR1")
        queue_athena_count(2)

    result = smoke.delivered(s3, boto3.client("athena"), deployment, published,
                             clock=FakeClock(once(firehose_flushes)).clock)

    assert result.ok, result.detail
    assert f"Athena: 2 row(s) of {DEVICE} in awskrug.inference_results dt={published.day} (published 2)" \
        in result.detail
    assert athena_queries() == [(f"SELECT count(*) FROM awskrug.inference_results WHERE dt IN ('{published.day}') "
                                 f"AND device_id = '{DEVICE}'")]


def count_answers(athena, *counts):
    """A Stubber answering one count query per figure (started, SUCCEEDED, one data row)."""
    stub = Stubber(athena)
    for i, count in enumerate(counts):
        stub.add_response("start_query_execution", {"QueryExecutionId": f"q-{i}"}, {
            "QueryString": ANY, "WorkGroup": "maskcam-analytics", "QueryExecutionContext": {"Database": "awskrug"}})
        stub.add_response("get_query_execution", {"QueryExecution": {
            "QueryExecutionId": f"q-{i}", "Status": {"State": "SUCCEEDED"}}}, {"QueryExecutionId": f"q-{i}"})
        stub.add_response("get_query_results", {"ResultSet": {"Rows": [
            {"Data": [{"VarCharValue": "_col0"}]}, {"Data": [{"VarCharValue": str(count)}]}]}},
            {"QueryExecutionId": f"q-{i}", "MaxResults": 2})
    return stub


def test_delivery_another_devices_file_is_not_enough(deployment):
    """A file in the partition (other devices' traffic) with none of our rows: keep asking until ours are in."""
    published = published_now()
    s3, athena = boto3.client("s3"), boto3.client("athena")
    s3.put_object(Bucket=deployment.bucket, Key=partition_file(published, "other-devices"), Body=b"PAR1")
    fake = FakeClock()

    with count_answers(athena, 0, 1, 2) as stub:
        result = smoke.delivered(s3, athena, deployment, published, clock=fake.clock)
        stub.assert_no_pending_responses()

    assert result.ok, result.detail
    assert "2 row(s)" in result.detail
    assert fake.sleeps == [30.0, 60.0]


def test_delivery_fails_when_athena_never_finds_all_rows(deployment):
    published = published_now()
    s3, athena = boto3.client("s3"), boto3.client("athena")
    s3.put_object(Bucket=deployment.bucket, Key=partition_file(published, "other-devices"), Body=b"PAR1")
    fake = FakeClock()

    with count_answers(athena, *[1] * 13) as stub:   # polls at 0, 30, 90, 210, 330, ... 1170, 1200 s
        result = smoke.delivered(s3, athena, deployment, published, clock=fake.clock)
        stub.assert_no_pending_responses()

    assert result.status == smoke.FAIL
    assert f"Athena found 1 of the 2 rows of {DEVICE}" in result.detail and "after 1200 s" in result.detail
    assert fake.t == smoke.DELIVERY_TIMEOUT


def test_delivery_does_not_ask_athena_before_a_file_is_there(deployment):
    athena = boto3.client("athena")
    fake = FakeClock()

    with Stubber(athena):   # any Athena call would raise: nothing is queued
        result = smoke.delivered(boto3.client("s3"), athena, deployment, published_now(), clock=fake.clock)

    assert result.status == smoke.FAIL
    assert "0 new file(s) under" in result.detail and "Athena not asked (no file yet)" in result.detail
    assert fake.t == smoke.DELIVERY_TIMEOUT == 1200


def test_delivery_fails_on_a_firehose_error_object(deployment):
    published = published_now()
    key = f"{layout.FIREHOSE_ERRORS_PREFIX}format-conversion-failed/{today()}/maskcam-stream-1-x"
    boto3.client("s3").put_object(Bucket=deployment.bucket, Key=key, Body=b"{}")

    result = smoke.delivered(boto3.client("s3"), boto3.client("athena"), deployment, published,
                             clock=FakeClock().clock)

    assert result.status == smoke.FAIL and key in result.detail


def test_delivery_fails_on_a_firehose_error_object_while_some_rows_are_in(deployment):
    """One topic's record converted, the other's refused by the partition query: a FAIL, not a long wait."""
    published = published_now()
    s3, athena = boto3.client("s3"), boto3.client("athena")
    s3.put_object(Bucket=deployment.bucket, Key=partition_file(published), Body=b"PAR1")
    error = f"{layout.FIREHOSE_ERRORS_PREFIX}partition-failed/{today()}/maskcam-stream-1-y"

    with count_answers(athena, 1) as stub:
        result = smoke.delivered(s3, athena, deployment, published, clock=FakeClock(
            lambda: s3.put_object(Bucket=deployment.bucket, Key=error, Body=b"{}")).clock)
        stub.assert_no_pending_responses()

    assert result.status == smoke.FAIL
    assert "1 Firehose error object(s) since the publish" in result.detail and error in result.detail


def test_delivery_query_takes_only_smoke_device_ids():
    published = smoke.Published("x' OR '1'='1", (), datetime.now(timezone.utc), 1_700_000_000_000)
    with pytest.raises(ValueError, match="not a smoke device id"):
        smoke.smoke_rows_sql("awskrug", published)


# --- views ------------------------------------------------------------------------------------------------------------

def test_view_names_come_from_the_view_query_files():
    assert smoke.view_names() == ["device_last_heartbeat", "mask_compliance_hourly"]


def test_view_query_succeeds_in_the_workgroup(deployment):
    athena = boto3.client("athena")
    athena.create_work_group(Name=deployment.workgroup)

    result = smoke.view_query(athena, deployment, view="mask_compliance_hourly", timeout=60, clock=FakeClock().clock)

    assert result.ok and result.name == "view mask_compliance_hourly", result.detail
    execution_id = result.detail.rsplit("query ", 1)[1].rstrip(")")
    execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert execution["Query"] == "SELECT * FROM awskrug.mask_compliance_hourly LIMIT 1"
    assert execution["WorkGroup"] == deployment.workgroup


def athena_stub(athena, *states):
    stub = Stubber(athena)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"}, {
        "QueryString": "SELECT * FROM awskrug.device_last_heartbeat LIMIT 1", "WorkGroup": "maskcam-analytics",
        "QueryExecutionContext": {"Database": "awskrug"}})
    for status in states:
        stub.add_response("get_query_execution", {"QueryExecution": {"QueryExecutionId": "q-1", "Status": status}},
                          {"QueryExecutionId": "q-1"})
    return stub


def test_view_query_failure_shows_athenas_reason(deployment):
    athena = boto3.client("athena")
    reason = "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.awskrug.device_last_heartbeat' does not exist"
    with athena_stub(athena, {"State": "RUNNING"}, {"State": "FAILED", "StateChangeReason": reason}) as stub:
        result = smoke.view_query(athena, deployment, view="device_last_heartbeat", timeout=60,
                                  clock=FakeClock().clock)
        stub.assert_no_pending_responses()

    assert result.status == smoke.FAIL
    assert result.detail == f"FAILED: {reason} (query q-1)"


def test_view_query_still_running_at_the_timeout_is_stopped(deployment):
    athena = boto3.client("athena")
    with athena_stub(athena, *[{"State": "RUNNING"}] * 3) as stub:   # polls at 0, 1, 3 s; timeout 3 s
        stub.add_response("stop_query_execution", {}, {"QueryExecutionId": "q-1"})
        result = smoke.view_query(athena, deployment, view="device_last_heartbeat", timeout=3,
                                  clock=FakeClock().clock)
        stub.assert_no_pending_responses()

    assert result.status == smoke.FAIL and "not finished after 3 s (stopped)" in result.detail


# --- Wi-Fi ingest -----------------------------------------------------------------------------------------------------

def run_ingest_lambda(bucket):
    """What the deployed Lambda does for each new raw object: the real ingest code, on moto S3."""
    s3 = boto3.client("s3")
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=RAW_PREFIX).get("Contents", []):
        head = s3.head_object(Bucket=bucket, Key=obj["Key"])
        ingest(s3, RawObject(bucket, obj["Key"], head.get("VersionId"), head["ETag"]))


def delete_markers(bucket):
    versions = boto3.client("s3").list_object_versions(Bucket=bucket)
    return [m["Key"] for m in versions.get("DeleteMarkers", [])]


def test_wifi_report_found_on_the_second_poll(deployment):
    s3 = boto3.client("s3")
    real_data = f"{TABLE_PREFIX}2024-portal-export.parquet"   # another file's table data: must survive
    s3.put_object(Bucket=deployment.bucket, Key=real_data, Body=b"PAR1")
    fake = FakeClock(lambda: run_ingest_lambda(deployment.bucket))

    result = smoke.wifi_ingested(s3, deployment.bucket, timeout=300, clock=fake.clock)

    assert result.ok, result.detail
    assert "rows_in=3 rows_ok=3 rows_rejected=0 encoding=cp949" in result.detail
    assert len(fake.sleeps) == 1                                        # poll, sleep (Lambda runs), poll
    raw = s3.list_objects_v2(Bucket=deployment.bucket, Prefix=f"{RAW_PREFIX}smoke/")["Contents"]
    assert len(raw) == 1 and raw[0]["Key"].endswith(".csv")
    body = s3.get_object(Bucket=deployment.bucket, Key=raw[0]["Key"])["Body"].read()
    body.decode("cp949")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    head = s3.head_object(Bucket=deployment.bucket, Key=raw[0]["Key"])
    outputs = OutputKeys.for_object(RawObject(deployment.bucket, raw[0]["Key"], head["VersionId"], head["ETag"]))
    assert outputs.report in result.detail
    with pytest.raises(s3.exceptions.ClientError):                      # smoke rows taken out of the table again
        s3.head_object(Bucket=deployment.bucket, Key=outputs.data)
    assert outputs.data.startswith(f"{TABLE_PREFIX}smoke__") and outputs.data.endswith(".parquet")
    assert f"deleted s3://{deployment.bucket}/{outputs.data} (this run's 3 smoke rows, delete marker " \
        in result.detail
    assert delete_markers(deployment.bucket) == [outputs.data]          # that key and nothing else
    s3.head_object(Bucket=deployment.bucket, Key=real_data)


def test_wifi_deletes_nothing_when_the_report_names_another_table_file(deployment):
    """A report whose data is not this upload's own table file (a bug, a changed key scheme): FAIL, no delete."""
    s3 = boto3.client("s3")
    other = f"{TABLE_PREFIX}2024-portal-export.parquet"
    s3.put_object(Bucket=deployment.bucket, Key=other, Body=b"PAR1")

    def report_naming_other():
        for obj in s3.list_objects_v2(Bucket=deployment.bucket, Prefix=RAW_PREFIX)["Contents"]:
            head = s3.head_object(Bucket=deployment.bucket, Key=obj["Key"])
            keys = OutputKeys.for_object(RawObject(deployment.bucket, obj["Key"], head["VersionId"], None))
            report = {"status": "ok", "rows_in": 3, "rows_ok": 3, "rows_rejected": 0, "encoding": "cp949",
                      "outputs": {"data": f"s3://{deployment.bucket}/{other}"}}
            s3.put_object(Bucket=deployment.bucket, Key=keys.report, Body=json.dumps(report).encode())

    result = smoke.wifi_ingested(s3, deployment.bucket, timeout=300, clock=FakeClock(report_naming_other).clock)

    assert result.status == smoke.FAIL
    assert result.detail.startswith("not deleting the smoke table file: the report names the table data "
                                    f"s3://{deployment.bucket}/{other}")
    assert delete_markers(deployment.bucket) == []


@pytest.mark.parametrize("raw_key, table_prefix, why", [
    ("raw/portal/2024.csv", TABLE_PREFIX, "is not under raw/smoke/"),
    ("raw/smoke/20261201T000000Z-ab12cd34.csv", "tables/", "is not a .parquet file directly under"),
])
def test_smoke_table_key_refuses_anything_but_this_uploads_table_file(raw_key, table_prefix, why):
    outputs = OutputKeys.for_object(RawObject("b", raw_key, "v1", None), table_prefix=table_prefix)
    report = {"outputs": {"data": f"s3://b/{outputs.data}"}}
    with pytest.raises(smoke.StepFailed, match=why):
        smoke.smoke_table_key(report, "b", raw_key, outputs)


def test_smoke_table_key_is_this_uploads_file():
    raw_key = "raw/smoke/20261201T000000Z-ab12cd34.csv"
    outputs = OutputKeys.for_object(RawObject("b", raw_key, "v1", None))
    assert smoke.smoke_table_key({"outputs": {"data": f"s3://b/{outputs.data}"}}, "b", raw_key, outputs) \
        == f"{TABLE_PREFIX}smoke__20261201T000000Z-ab12cd34.parquet"
    other = OutputKeys.for_object(RawObject("b", "raw/smoke/20261130T000000Z-00000000.csv", "v1", None))
    with pytest.raises(smoke.StepFailed, match="does not carry this upload's name 20261201T000000Z-ab12cd34"):
        smoke.smoke_table_key({"outputs": {"data": f"s3://b/{other.data}"}}, "b", raw_key, other)


def test_wifi_keep_leaves_the_table_data(deployment):
    s3 = boto3.client("s3")
    result = smoke.wifi_ingested(s3, deployment.bucket, timeout=300, keep=True,
                                 clock=FakeClock(lambda: run_ingest_lambda(deployment.bucket)).clock)

    assert result.ok, result.detail
    assert len(s3.list_objects_v2(Bucket=deployment.bucket, Prefix="tables/")["Contents"]) == 1
    assert "deleted" not in result.detail and delete_markers(deployment.bucket) == []


def test_wifi_fails_when_no_report_arrives(deployment):
    fake = FakeClock()
    result = smoke.wifi_ingested(boto3.client("s3"), deployment.bucket, timeout=30, clock=fake.clock)

    assert result.status == smoke.FAIL
    assert f"no report s3://{deployment.bucket}/{QUARANTINE_PREFIX}smoke/" in result.detail
    assert "30 s after uploading raw/smoke/" in result.detail and fake.t == 30


def test_wifi_fails_on_a_failed_report(deployment):
    s3 = boto3.client("s3")

    def failed_report():
        for obj in s3.list_objects_v2(Bucket=deployment.bucket, Prefix=RAW_PREFIX)["Contents"]:
            head = s3.head_object(Bucket=deployment.bucket, Key=obj["Key"])
            key = OutputKeys.for_object(RawObject(deployment.bucket, obj["Key"], head["VersionId"], None)).report
            report = {"status": "failed", "error": "unknown column layout", "rows_in": 0, "rows_ok": 0,
                      "rows_rejected": 0}
            s3.put_object(Bucket=deployment.bucket, Key=key, Body=json.dumps(report).encode())

    result = smoke.wifi_ingested(s3, deployment.bucket, timeout=300, clock=FakeClock(failed_report).clock)

    assert result.status == smoke.FAIL
    assert "report status failed: unknown column layout; rows_in=0" in result.detail


def test_service_errors_become_a_fail_line_naming_the_call(deployment):
    s3 = boto3.client("s3")
    with Stubber(s3) as stub:
        stub.add_client_error("put_object", service_error_code="AccessDenied", service_message="Access Denied",
                              http_status_code=403)
        result = smoke.wifi_ingested(s3, deployment.bucket, timeout=300, clock=FakeClock().clock)

    assert result.status == smoke.FAIL
    assert result.detail == "PutObject: AccessDenied Access Denied"
    assert result.line().startswith("FAIL wifi ")


# --- the whole run ----------------------------------------------------------------------------------------------------

def deploy_stand_ins():
    """What `cdk deploy` leaves that the smoke test reads: the three stacks (moto's CloudFormation skips IoT rules,
    Firehose and Athena, so the stand-ins hold only what is looked up), a versioned data bucket, the workgroup."""
    cfn = boto3.client("cloudformation")
    bucket = {"Type": "AWS::S3::Bucket"}
    cfn.create_stack(StackName=f"{PROJECT}-storage", TemplateBody=json.dumps(
        {"Resources": {"AccessLogs2A4C3AE1": bucket, "DataBucketE3889A50": bucket}}))
    cfn.create_stack(StackName=f"{PROJECT}-analytics", TemplateBody=json.dumps(
        {"Resources": {"Placeholder": bucket}, "Outputs": {"DeliveryStreamName": {"Value": STREAM}}}))
    cfn.create_stack(StackName=f"{PROJECT}-wifi", TemplateBody=json.dumps({"Resources": {"Placeholder": bucket}}))
    resources = cfn.describe_stack_resources(StackName=f"{PROJECT}-storage")["StackResources"]
    name = next(r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"].startswith("DataBucket"))
    boto3.client("s3").put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    boto3.client("athena").create_work_group(Name=f"{PROJECT}-analytics")
    return name


class FakeCloud:
    """On every sleep: Firehose counts what was published and (once its buffer time is up) delivers it to the events'
    partition, where Athena then counts the rows; the Wi-Fi Lambda ingests new raw files."""

    def __init__(self, bucket):
        self.bucket, self.counted, self.delivered = bucket, False, False

    def __call__(self):
        published = iotdata_backends[DEFAULT_ACCOUNT_ID][REGION].published_payloads
        if published and not self.counted:
            put_incoming_records(len(published))
            self.counted = True
        elif self.counted and not self.delivered:
            ts = json.loads(published[0][1])["ts"]
            day = datetime.fromtimestamp(ts / 1000, timezone.utc).strftime(layout.PARTITION_STRFTIME)
            boto3.client("s3").put_object(Bucket=self.bucket, Key=f"{layout.partition_path(day)}stream-1-x",
                                          Body=b"PAR1")
            queue_athena_count(len(published))
            self.delivered = True
        run_ingest_lambda(self.bucket)


@pytest.fixture
def moto_iot_data(monkeypatch):
    """moto serves IoT data only on its default endpoint, not on an account's describe_endpoint address."""
    monkeypatch.setattr(smoke, "iot_data_client", lambda session, endpoint: session.client("iot-data"))


def test_main_passes_against_a_complete_deployment(aws, moto_iot_data, capsys):
    bucket = deploy_stand_ins()

    code = smoke.main(["--project", PROJECT], session=boto3.Session(), clock=FakeClock(FakeCloud(bucket)).clock)

    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["ok", "ok", "ok", "skip", "ok", "ok", "ok"]
    assert lines[0].startswith("ok   resolve") and f"bucket {bucket}, stream {STREAM}" in lines[0]
    assert lines[3].startswith("skip delivery") and smoke.DELIVERY_SKIPPED in lines[3]
    assert "run with --wait-delivery to prove delivery (do this on a first deploy)" in smoke.DELIVERY_SKIPPED
    assert "view device_last_heartbeat" in out and "view mask_compliance_hourly" in out
    assert lines[-1] == "smoke: ok (delivery not checked) — 6 ok, 0 failed, 1 skipped"
    topics = [t for t, _ in iotdata_backends[DEFAULT_ACCOUNT_ID][REGION].published_payloads]
    assert topics[0].startswith("$aws/things/smoke-") and topics[1].startswith("maskcam/smoke-")


def test_main_with_wait_delivery_proves_delivery_through_athena(aws, moto_iot_data, capsys):
    bucket = deploy_stand_ins()

    code = smoke.main(["--project", PROJECT, "--wait-delivery"], session=boto3.Session(),
                      clock=FakeClock(FakeCloud(bucket)).clock)

    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["ok"] * 7
    assert lines[3].startswith("ok   delivery") and "Athena: 2 row(s) of smoke-" in lines[3]
    assert lines[-1] == "smoke: ok — 7 ok, 0 failed, 0 skipped"
    count = [q for q in athena_queries() if q.startswith("SELECT count(*)")]
    assert len(count) == 1 and "device_id = 'smoke-" in count[0]


def test_summary_names_failed_and_unchecked_steps():
    results = [smoke.StepResult("resolve", smoke.OK, ""), smoke.StepResult("delivery", smoke.SKIP, ""),
               smoke.StepResult("wifi", smoke.FAIL, "")]
    assert smoke.summary(results) == "smoke: FAILED: wifi — 1 ok, 1 failed, 1 skipped"
    assert smoke.summary(results[:2]) == "smoke: ok (delivery not checked) — 1 ok, 0 failed, 1 skipped"
    assert smoke.summary(results[:1]) == "smoke: ok — 1 ok, 0 failed, 0 skipped"


def test_main_reports_a_missing_stack_as_a_fail_line(aws, capsys):
    code = smoke.main(["--project", PROJECT], session=boto3.Session(), clock=FakeClock().clock)

    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0].startswith("FAIL resolve")
    assert "DescribeStacks: ValidationError Stack with id maskcam-storage does not exist" in out
    assert "Traceback" not in out


def test_main_without_credentials_exits_2(monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    code = smoke.main(["--project", PROJECT])

    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith("smoke: no AWS credentials") and captured.err.count("\n") == 1


def test_topic_option_needs_a_device_level(capsys):
    with pytest.raises(SystemExit):
        smoke.parse_args(["--topic", "maskcam/infer"])
    assert smoke.parse_args(["--topic", "cams/+/events"]).topic_filters == (smoke.DEEPLENS_TOPIC, "cams/+/events")
