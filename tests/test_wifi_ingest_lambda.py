"""The ingest Lambda against moto S3: raw object in, table data + quarantine + report out, idempotent re-delivery."""
from __future__ import annotations

import io
import json
from types import SimpleNamespace

import boto3
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from functions.wifi_ingest import sample
from functions.wifi_ingest.handler import OutputKeys, RawObject, handler, raw_objects

BUCKET = "maskcam-data"
KEY = "raw/2020/전국무료와이파이표준데이터.csv"


def eventbridge_event(bucket: str, key: str, version_id: str, etag: str) -> dict:
    return {
        "version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": "2026-11-27T00:00:00Z", "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {"version": "0", "bucket": {"name": bucket},
                   "object": {"key": key, "size": 1, "etag": etag.strip('"'), "version-id": version_id,
                              "sequencer": "0"},
                   "request-id": "r", "requester": "123456789012", "reason": "PutObject"},
    }


def context():
    return SimpleNamespace(function_name="wifi-ingest", memory_limit_in_mb=1024, aws_request_id="req-1",
                           invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:wifi-ingest")


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("TABLE_PREFIX", "tables/free_wifi_standard_data/")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def all_versions(s3) -> set:
    listing = s3.list_object_versions(Bucket=BUCKET)
    return {(v["Key"], v["VersionId"]) for v in listing.get("Versions", [])}


def test_raw_upload_becomes_table_data_quarantine_and_report_once(s3):
    recs = sample.records(40, seed=11)
    recs[3]["latitude"] = "북위37"
    put = s3.put_object(Bucket=BUCKET, Key=KEY, Body=sample.file_bytes(recs))
    event = eventbridge_event(BUCKET, KEY, put["VersionId"], put["ETag"])

    first = handler(event, context())["results"]
    keys = OutputKeys.for_object(RawObject(BUCKET, KEY, put["VersionId"], put["ETag"]),
                                 table_prefix="tables/free_wifi_standard_data/")
    assert keys.data == "tables/free_wifi_standard_data/2020__전국무료와이파이표준데이터.parquet"
    assert keys.report == f"quarantine/2020/전국무료와이파이표준데이터.csv/{put['VersionId']}/report.json"
    assert first == [{"key": KEY, "status": "ok", "rows_in": 40, "rows_ok": 39, "rows_rejected": 1,
                      "encoding": "cp949", "report": keys.report}]

    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=keys.data)["Body"].read()))
    assert table.num_rows == 39
    assert table.column("name").to_pylist() == [r["name"] for i, r in enumerate(recs) if i != 3]
    rejects = s3.get_object(Bucket=BUCKET, Key=keys.rejects)["Body"].read().decode("utf-8-sig")
    assert "latitude (위도): '북위37' is not a number" in rejects
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=keys.report)["Body"].read())
    assert report["outputs"] == {"data": f"s3://{BUCKET}/{keys.data}", "rejects": f"s3://{BUCKET}/{keys.rejects}",
                                 "report": f"s3://{BUCKET}/{keys.report}"}
    assert (report["rows_in"], report["rows_ok"], report["rows_rejected"]) == (40, 39, 1)

    before = all_versions(s3)
    again = handler(event, context())["results"]
    assert again[0]["status"] == "skipped" and again[0]["why"] == "already processed"
    assert all_versions(s3) == before                       # nothing written again
    assert (KEY, put["VersionId"]) in before                # the raw file is still there


def test_new_version_of_the_same_file_replaces_its_table_data(s3):
    first = s3.put_object(Bucket=BUCKET, Key=KEY, Body=sample.file_bytes(sample.records(10)))
    handler(eventbridge_event(BUCKET, KEY, first["VersionId"], first["ETag"]), context())
    second = s3.put_object(Bucket=BUCKET, Key=KEY, Body=sample.file_bytes(sample.records(4, seed=2), bom=True,
                                                                          encoding="utf-8", newline="\n"))
    result = handler(eventbridge_event(BUCKET, KEY, second["VersionId"], second["ETag"]), context())["results"]
    assert result[0]["rows_ok"] == 4 and result[0]["encoding"] == "utf-8-sig"
    data_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="tables/")["Contents"]]
    assert len(data_keys) == 1
    assert pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=data_keys[0])["Body"].read())).num_rows == 4
    reports = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="quarantine/")["Contents"]]
    assert len(reports) == 2  # one report per version


def test_unusable_file_gets_a_failed_report_and_no_table_data(s3):
    put = s3.put_object(Bucket=BUCKET, Key="raw/notes.csv", Body="메모,내용\r\n1,2\r\n".encode("cp949"))
    result = handler(eventbridge_event(BUCKET, "raw/notes.csv", put["VersionId"], put["ETag"]), context())
    assert result["results"][0]["status"] == "failed"
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="tables/")
    report_key = result["results"][0]["report"]
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=report_key)["Body"].read())
    assert report["status"] == "failed" and "missing 15 of 15 columns" in report["error"]
    # and a re-delivery does not retry it
    again = handler(eventbridge_event(BUCKET, "raw/notes.csv", put["VersionId"], put["ETag"]), context())
    assert again["results"][0]["status"] == "skipped"


def test_s3_notification_records_are_understood_too():
    event = {"Records": [{"s3": {"bucket": {"name": BUCKET},
                                 "object": {"key": "raw/a+b%2Cc.csv", "versionId": "v1", "eTag": "e"}}}]}
    assert raw_objects(event) == [RawObject(BUCKET, "raw/a b,c.csv", "v1", "e")]


def test_an_eventbridge_key_is_url_decoded_as_in_s3_notifications():
    """S3 URL-encodes object keys in its events (https://docs.aws.amazon.com/AmazonS3/latest/userguide/
    notification-content-structure.html); Powertools' S3EventBridgeNotificationEvent decodes the EventBridge form
    the same way, so a Korean file name arrives as itself whichever way S3 wrote it."""
    from urllib.parse import quote_plus
    encoded = eventbridge_event(BUCKET, quote_plus(KEY, safe="/"), "v1", "e")
    plain = eventbridge_event(BUCKET, KEY, "v1", "e")
    assert raw_objects(encoded) == raw_objects(plain) == [RawObject(BUCKET, KEY, "v1", "e")]
    assert raw_objects(eventbridge_event(BUCKET, "raw/free+wifi%2B2020.csv", "v1", "e"))[0].key == \
        "raw/free wifi+2020.csv"


def test_objects_outside_raw_are_ignored(s3):
    s3.put_object(Bucket=BUCKET, Key="tables/x.parquet", Body=b"x")
    result = handler(eventbridge_event(BUCKET, "tables/x.parquet", "v", "e"), context())
    assert result["results"][0]["status"] == "skipped"
