"""Lambda: a portal CSV uploaded under ``raw/`` becomes table data, rejects and a report.

Triggered by S3 "Object Created" events through EventBridge (direct S3 notifications work too). For
``s3://<bucket>/raw/<path>`` version ``V`` it writes

- ``<TABLE_PREFIX><path with / as __>.parquet``: the table data. One file per raw path, so a newer upload of the
  same path replaces that file's rows instead of duplicating them;
- ``quarantine/<path>/<V>/rejects.csv`` (only when records were rejected) and ``quarantine/<path>/<V>/report.json``,
  written last.

Re-delivery of the same version finds its report and changes nothing. The raw object is only read, never deleted.
A file that is unusable as a whole gets a report with ``status: failed`` and no table data; raising would only make
Lambda retry a file that cannot succeed. Errors of the service itself (S3 access, timeouts) raise, so Lambda
retries and finally sends the event to the dead-letter queue.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Iterable, List, Optional
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from functions.wifi_ingest.layout import QUARANTINE_PREFIX, RAW_PREFIX, TABLE_PREFIX
from functions.wifi_ingest.outputs import LocalOutputs, run

logger = Logger(service="wifi-ingest")



@dataclass(frozen=True)
class RawObject:
    bucket: str
    key: str
    version_id: Optional[str]
    etag: Optional[str]

    @property
    def version(self) -> str:
        """What identifies this upload in output keys: the version id, or the ETag on unversioned buckets."""
        return self.version_id or (self.etag or "").strip('"') or "unversioned"


@dataclass(frozen=True)
class OutputKeys:
    data: str
    rejects: str
    report: str

    @classmethod
    def for_object(cls, obj: RawObject, *, table_prefix: str = TABLE_PREFIX,
                   raw_prefix: str = RAW_PREFIX, quarantine_prefix: str = QUARANTINE_PREFIX) -> "OutputKeys":
        path = obj.key[len(raw_prefix):]
        # Athena skips files whose name starts with "_" or "."; the table location is read without subfolders
        flat = path.replace("/", "__").lstrip("_.") or "file"
        stem = flat.rsplit(".", 1)[0] if flat.lower().endswith(".csv") else flat
        base = f"{quarantine_prefix}{path}/{obj.version}/"
        return cls(data=f"{table_prefix}{stem}.parquet", rejects=base + "rejects.csv", report=base + "report.json")


def raw_objects(event: dict) -> List[RawObject]:
    """The objects of an EventBridge "Object Created" event or of an S3 notification."""
    if event.get("source") == "aws.s3":
        detail = event["detail"]
        obj = detail["object"]
        return [RawObject(detail["bucket"]["name"], obj["key"], obj.get("version-id"), obj.get("etag"))]
    found = []
    for record in event.get("Records", []):
        s3 = record["s3"]
        found.append(RawObject(s3["bucket"]["name"], unquote_plus(s3["object"]["key"]),
                               s3["object"].get("versionId"), s3["object"].get("eTag")))
    return found


def _exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as err:
        if err.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def ingest(s3, obj: RawObject, *, table_prefix: str = TABLE_PREFIX, work_dir: Optional[str] = None) -> dict:
    """Processes one raw object; returns a summary (status ok / failed / skipped)."""
    if not obj.key.startswith(RAW_PREFIX) or obj.key.endswith("/"):
        return {"key": obj.key, "status": "skipped", "why": f"not a file under {RAW_PREFIX}"}
    keys = OutputKeys.for_object(obj, table_prefix=table_prefix)
    if _exists(s3, obj.bucket, keys.report):
        logger.info("already processed", extra={"key": obj.key, "version": obj.version, "report": keys.report})
        return {"key": obj.key, "status": "skipped", "why": "already processed", "report": keys.report}
    selector = {"VersionId": obj.version_id} if obj.version_id else ({"IfMatch": obj.etag} if obj.etag else {})
    body = s3.get_object(Bucket=obj.bucket, Key=obj.key, **selector)["Body"]
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        local = LocalOutputs.in_dir(tmp, "object")
        report = run(body, local, source=f"s3://{obj.bucket}/{obj.key}?versionId={obj.version}")
        uploaded = {"data": None, "rejects": None, "report": f"s3://{obj.bucket}/{keys.report}"}
        if report.status == "ok":
            s3.upload_file(local.data, obj.bucket, keys.data)
            uploaded["data"] = f"s3://{obj.bucket}/{keys.data}"
            if report.outputs.get("rejects"):
                s3.upload_file(local.rejects, obj.bucket, keys.rejects)
                uploaded["rejects"] = f"s3://{obj.bucket}/{keys.rejects}"
        report.outputs = uploaded
        body_json = json.dumps(report.as_dict(), ensure_ascii=False, indent=2, default=str).encode("utf-8")
        s3.put_object(Bucket=obj.bucket, Key=keys.report, Body=body_json, ContentType="application/json")
    summary = {k: getattr(report, k) for k in ("status", "rows_in", "rows_ok", "rows_rejected", "encoding")}
    if report.status == "ok":
        logger.info("ingested", extra={"key": obj.key, **summary})
    else:
        logger.error("unusable file", extra={"key": obj.key, "error": report.error, "report": keys.report})
    return {"key": obj.key, **summary, "report": keys.report}


def _handle(objects: Iterable[RawObject]) -> List[dict]:
    s3 = boto3.client("s3")
    table_prefix = os.environ.get("TABLE_PREFIX", TABLE_PREFIX)
    return [ingest(s3, obj, table_prefix=table_prefix) for obj in objects]


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    return {"results": _handle(raw_objects(event))}
