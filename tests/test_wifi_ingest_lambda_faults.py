"""The ingest Lambda under faults (moto S3): colliding raw keys, versions out of order and racing, a batch with a
bad object in the middle. Each test failed on the handler before the fix."""
from __future__ import annotations

import io
import json
import re

import boto3
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from functions.wifi_ingest import handler as handler_module
from functions.wifi_ingest import sample
from functions.wifi_ingest.handler import OutputKeys, RawObject, handler, ingest
from tests.test_wifi_ingest_lambda import BUCKET, context, eventbridge_event

TABLE = "tables/free_wifi_standard_data/"


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("TABLE_PREFIX", TABLE)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def upload(s3, key: str, count: int, seed: int = 1) -> RawObject:
    put = s3.put_object(Bucket=BUCKET, Key=key, Body=sample.file_bytes(sample.records(count, seed=seed)))
    return RawObject(BUCKET, key, put["VersionId"], put["ETag"])


def table_rows(s3, key: str) -> int:
    return pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())).num_rows


def data_keys(s3):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=TABLE).get("Contents", []))


def notification(*objects: RawObject) -> dict:
    return {"Records": [{"s3": {"bucket": {"name": o.bucket},
                                "object": {"key": o.key, "versionId": o.version_id, "eTag": o.etag}}}
                        for o in objects]}


# --- two raw keys, one table file ------------------------------------------------------------------------------

def test_raw_keys_that_flattened_alike_keep_their_own_table_data(s3):
    first, second = upload(s3, "raw/a/b.csv", 3), upload(s3, "raw/a__b.csv", 5, seed=2)
    for obj in (first, second):
        handler(eventbridge_event(BUCKET, obj.key, obj.version_id, obj.etag), context())
    keys = [OutputKeys.for_object(o, table_prefix=TABLE).data for o in (first, second)]
    assert keys[0] != keys[1] and data_keys(s3) == sorted(keys)
    assert (table_rows(s3, keys[0]), table_rows(s3, keys[1])) == (3, 5)


# --- versions ----------------------------------------------------------------------------------------------------

def test_an_older_version_delivered_after_a_newer_one_leaves_the_newer_data(s3):
    key = "raw/2020/wifi.csv"
    old, new = upload(s3, key, 10), upload(s3, key, 4, seed=2)
    handler(eventbridge_event(BUCKET, key, new.version_id, new.etag), context())
    late = handler(eventbridge_event(BUCKET, key, old.version_id, old.etag), context())["results"]
    keys = OutputKeys.for_object(old, table_prefix=TABLE)
    assert late == [{"key": key, "status": "superseded", "superseded_by": new.version_id, "report": keys.report}]
    assert table_rows(s3, keys.data) == 4
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=keys.report)["Body"].read())
    assert (report["status"], report["superseded_by"], report["outputs"]["data"]) == ("superseded", new.version_id,
                                                                                     None)
    again = handler(eventbridge_event(BUCKET, key, old.version_id, old.etag), context())["results"]
    assert again[0]["why"] == "already processed"


class RacingClient:
    """The S3 client, except that the first write of ``key`` lets ``meanwhile`` run to the end first: another
    invocation processing a newer version in the window between this one's version check and its write."""

    def __init__(self, client, key: str, meanwhile):
        self._client, self._key, self._meanwhile = client, key, meanwhile

    def __getattr__(self, name):
        return getattr(self._client, name)

    def _race(self, key):
        if key == self._key and self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()

    def put_object(self, **kwargs):
        self._race(kwargs["Key"])
        return self._client.put_object(**kwargs)

    def upload_file(self, filename, bucket, key, *args, **kwargs):
        self._race(key)
        return self._client.upload_file(filename, bucket, key, *args, **kwargs)


def test_a_newer_version_written_while_an_older_one_is_being_written_is_kept(s3):
    key = "raw/2020/wifi.csv"
    old = upload(s3, key, 10)
    new_holder = {}

    def newer_upload_processed_meanwhile():
        new_holder["obj"] = new = upload(s3, key, 4, seed=2)
        assert ingest(s3, new, table_prefix=TABLE)["status"] == "ok"

    data_key = OutputKeys.for_object(old, table_prefix=TABLE).data
    result = ingest(RacingClient(s3, data_key, newer_upload_processed_meanwhile), old, table_prefix=TABLE)
    assert result["status"] == "superseded" and result["superseded_by"] == new_holder["obj"].version_id
    assert table_rows(s3, data_key) == 4
    head = s3.head_object(Bucket=BUCKET, Key=data_key)
    assert head["Metadata"]["raw-version"] == new_holder["obj"].version_id


# --- a bad object in the middle of a notification ------------------------------------------------------------------

def test_bad_objects_in_the_middle_of_a_batch_do_not_stop_the_others(s3):
    good1, gone, good2 = upload(s3, "raw/a.csv", 3), upload(s3, "raw/b.csv", 3), upload(s3, "raw/c.csv", 3)
    s3.delete_object(Bucket=BUCKET, Key=gone.key, VersionId=gone.version_id)     # the version is gone for good
    junk_put = s3.put_object(Bucket=BUCKET, Key="raw/junk.csv", Body=b"\x89PNG\r\n\x1a\n\x00\x00")
    junk = RawObject(BUCKET, "raw/junk.csv", junk_put["VersionId"], junk_put["ETag"])
    results = handler(notification(good1, gone, junk, good2), context())["results"]   # nothing to retry: no raise
    assert [r["status"] for r in results] == ["ok", "superseded", "failed", "ok"]
    assert results[1]["superseded_by"] == "(deleted)"
    assert len(data_keys(s3)) == 2
    for result in results:                                  # every object has its report: re-delivery skips it
        s3.head_object(Bucket=BUCKET, Key=result["report"])


class FlakyClient:
    """The S3 client with ``get_object`` throttled for some keys (a transient service error)."""

    def __init__(self, client, failing):
        self._client, self.failing = client, set(failing)

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_object(self, **kwargs):
        if kwargs["Key"] in self.failing:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                               "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")
        return self._client.get_object(**kwargs)


def test_a_transient_error_in_the_middle_of_a_batch_retries_exactly_that_object(s3, monkeypatch):
    objs = [upload(s3, f"raw/{name}.csv", 3) for name in "abc"]
    flaky = FlakyClient(s3, {"raw/b.csv"})
    monkeypatch.setattr(handler_module.boto3, "client", lambda *a, **k: flaky)
    event = notification(*objs)
    with pytest.raises(Exception) as raised:
        handler(event, context())
    assert len(data_keys(s3)) == 2, "the objects after the failing one were not processed"   # a and c are done
    assert isinstance(raised.value, handler_module.IngestRetry)
    assert re.search(r"1 of 3 raw objects .* raw/b\.csv$", str(raised.value))
    flaky.failing.clear()                                  # Lambda's retry, the service is back
    again = handler(event, context())["results"]
    assert [r["status"] for r in again] == ["skipped", "ok", "skipped"]
    assert len(data_keys(s3)) == 3


def test_a_normalizer_defect_on_one_object_is_a_failed_report_not_a_retry(s3, monkeypatch):
    objs = [upload(s3, f"raw/{name}.csv", 3) for name in "abc"]
    real_run = handler_module.run

    def run(stream, outputs, *, source, progress=None):
        if "raw/b.csv" in source:
            raise KeyError("a defect")
        return real_run(stream, outputs, source=source, progress=progress)

    monkeypatch.setattr(handler_module, "run", run)
    results = handler(notification(*objs), context())["results"]
    assert [r["status"] for r in results] == ["ok", "failed", "ok"]
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=results[1]["report"])["Body"].read())
    assert report["error"] == "internal error: KeyError: 'a defect'"


class NoTableReads(RacingClient):
    """As deployed before the table prefix was readable: HeadObject there is AccessDenied (403)."""

    def head_object(self, **kwargs):
        if kwargs["Key"].startswith(TABLE):
            raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "HeadObject")
        return self._client.head_object(**kwargs)


def test_without_read_access_to_the_table_prefix_a_new_version_still_replaces_the_data(s3):
    key = "raw/2020/wifi.csv"
    first = upload(s3, key, 10)
    client = NoTableReads(s3, "", None)
    assert ingest(client, first, table_prefix=TABLE)["status"] == "ok"
    second = upload(s3, key, 4, seed=2)
    assert ingest(client, second, table_prefix=TABLE)["status"] == "ok"   # If-None-Match fails, then unconditional
    assert table_rows(s3, OutputKeys.for_object(second, table_prefix=TABLE).data) == 4


def test_a_version_that_disappears_before_it_is_read_gets_a_failed_report(s3):
    obj = upload(s3, "raw/gone.csv", 3)

    class Vanishing(RacingClient):
        def get_object(self, **kwargs):
            self._client.delete_object(Bucket=BUCKET, Key=obj.key, VersionId=obj.version_id)
            return self._client.get_object(**kwargs)

    result = ingest(Vanishing(s3, "", None), obj, table_prefix=TABLE)
    assert result["status"] == "failed"
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=result["report"])["Body"].read())
    assert report["error"].startswith("the object version cannot be read any more") and data_keys(s3) == []
