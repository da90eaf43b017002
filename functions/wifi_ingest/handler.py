"""Lambda: a portal CSV uploaded under ``raw/`` becomes table data, rejects and a report.

Triggered by S3 "Object Created" events through EventBridge (direct S3 notifications work too). For
``s3://<bucket>/raw/<path>`` version ``V`` it writes

- ``<TABLE_PREFIX><table_name(path)>.parquet``: the table data. One file per raw path, so a newer upload of the
  same path replaces that file's rows instead of duplicating them. ``table_name`` is injective: ``/`` becomes
  ``__``, and ``_`` itself ``_5F`` (so ``raw/a/b.csv`` -> ``a__b``, ``raw/a__b.csv`` -> ``a_5F_5Fb``), see there;
- ``quarantine/<path>/<V>/rejects.csv`` (only when records were rejected) and ``quarantine/<path>/<V>/report.json``,
  written last.

**Versions.** The table file holds the data of the raw key's *current* version only. An event for a version that
is no longer current (an older upload delivered late, or re-delivered after a newer one) gets a report with
``status: superseded`` and never touches the table file. The check is repeated at the moment of writing, which is a
compare-and-swap (S3 conditional writes): the table file's ETag is read first, then the raw key's current version
is checked, then the file is written with ``If-Match`` on that ETag (``If-None-Match: *`` when there is none); when
another invocation wrote in between, the write fails with 412 and the steps repeat. So of two uploads processed at
the same time the newer one's data always ends up in the table, whatever the order the invocations finish in.
(Reading the ETag needs ``s3:GetObject`` on the table prefix; without it the write is unconditional after the
version check, and a warning says so.)

Re-delivery of the same version finds its report and changes nothing. The raw object is only read, never deleted.
A file that is unusable as a whole gets a report with ``status: failed`` and no table data; so does an object
version that disappeared and a file the normalizer fails on (``internal error``): retrying would not help.
**One event, many objects** (S3 notifications): every object is processed; errors of the service or of this
machine (S3 access, throttling, timeouts, a full disk) are collected and raised at the end, so Lambda retries the
event and finally sends it to the dead-letter queue: the objects already done are skipped then (their reports
exist), exactly the failed ones are tried again.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from collections.abc import Iterable
from urllib.parse import quote, unquote_plus

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event, S3EventBridgeNotificationEvent
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
from botocore.exceptions import ClientError

from functions.wifi_ingest.layout import QUARANTINE_PREFIX, RAW_PREFIX, TABLE_PREFIX
from functions.wifi_ingest.normalize import Report
from functions.wifi_ingest.outputs import LocalOutputs, run

logger = Logger(service="wifi-ingest")

S3_KEY_BYTES = 1024                      # S3's limit on a key (UTF-8 bytes)
_MISSING = ("404", "NoSuchKey", "NotFound")
_GONE = ("NoSuchKey", "NoSuchVersion", "404", "NotFound", "InvalidObjectState")
_CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")
WRITE_ATTEMPTS = 8


class IngestRetry(RuntimeError):
    """Raised after a whole event was processed when some objects failed for a reason a retry may cure."""


@dataclass(frozen=True)
class RawObject:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None

    @property
    def version(self) -> str:
        """What identifies this upload in output keys: the version id, or the ETag on unversioned buckets."""
        return self.version_id or (self.etag or "").strip('"') or "unversioned"


def _hash(text: str, chars: int = 32) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:chars]


def table_name(path: str, room: int = S3_KEY_BYTES) -> str:
    """The table file's name (without ``.parquet``) for a raw path: one name per path, never two paths on one name.

    Read as a prefix code: ``__`` is ``/``; ``_XX`` (hex) is the UTF-8 of ``_`` or ``~``; a final single ``_``
    means the path did not end in ``.csv`` (which is dropped otherwise); a leading ``~`` is only there to keep the
    name from starting with ``_`` or ``.`` (Athena skips such files) or from being empty. Ordinary names stay as
    they were: ``2020/전국무료와이파이표준데이터.csv`` -> ``2020__전국무료와이파이표준데이터``. A name that would
    make the key longer than ``room`` bytes is cut at a token boundary and ends in ``_h`` + 32 hex digits of the
    path's SHA-256 (``h`` is no hex digit: no unhashed name has that token)."""
    tokens = _name_tokens(path)
    name = "".join(tokens)
    if len(name.encode("utf-8", "surrogatepass")) <= room:
        return name
    return _hashed_name(path, tokens, room)


def _name_tokens(path: str) -> list[str]:
    """``table_name``'s prefix code of ``path``, one token per character (and the markers)."""
    csv_suffix = path.endswith(".csv")
    stem = path[:-4] if csv_suffix else path
    tokens = []
    for ch in stem:
        if ch == "/":
            tokens.append("__")
        elif ch in "_~":
            tokens.append("".join(f"_{b:02X}" for b in ch.encode("utf-8")))
        else:
            tokens.append(ch)
    if not csv_suffix:
        tokens.append("_")
    if not tokens or tokens[0][0] in "_.":
        tokens.insert(0, "~")
    return tokens


def _hashed_name(path: str, tokens: list[str], room: int) -> str:
    """The name of a path whose ``tokens`` are too long for ``room`` bytes: cut at a token, and the path's hash."""
    suffix = "_h" + _hash(path)
    budget, size, kept = room - len(suffix), 0, []
    for token in tokens:
        size += len(token.encode("utf-8", "surrogatepass"))
        if size > budget:
            break
        kept.append(token)
    if not kept or kept[0][0] in "_.":
        kept.insert(0, "~")
        while len("".join(kept).encode("utf-8", "surrogatepass")) > budget:
            kept.pop()
    return "".join(kept) + suffix


def _version_segment(version: str) -> str:
    return version.replace("%", "%25").replace("/", "%2F")   # S3 version ids may hold "/" (old style)


@dataclass(frozen=True)
class OutputKeys:
    data: str
    rejects: str
    report: str

    @classmethod
    def for_object(cls, obj: RawObject, *, table_prefix: str = TABLE_PREFIX,
                   raw_prefix: str = RAW_PREFIX, quarantine_prefix: str = QUARANTINE_PREFIX) -> OutputKeys:
        path = obj.key[len(raw_prefix):]
        room = S3_KEY_BYTES - len(table_prefix.encode("utf-8")) - len(".parquet")
        version = _version_segment(obj.version)
        base = f"{quarantine_prefix}{path}/{version}/"
        if len((base + "rejects.csv").encode("utf-8", "surrogatepass")) > S3_KEY_BYTES:
            # "<hash>/" as a path would end in "/": a folder marker, never ingested, so never a real path
            base = f"{quarantine_prefix}{_hash(path, 64)}//{version}/"
        return cls(data=f"{table_prefix}{table_name(path, room)}.parquet", rejects=base + "rejects.csv",
                   report=base + "report.json")


def raw_objects(event: dict) -> list[RawObject]:
    """The objects of an EventBridge "Object Created" event or of an S3 notification, read with Powertools' event
    classes (which URL-decode the key of both forms); records that are not understood are logged and left out:
    retrying cannot make them readable."""
    if event.get("source") == "aws.s3":
        detail = S3EventBridgeNotificationEvent(event).detail
        return [RawObject(detail.bucket.name, detail.object.key, detail.object.get("version-id"),
                          detail.object.etag or None)]
    found = []
    for index, record in enumerate(S3Event(event).get("Records") or []):
        try:
            s3 = S3EventRecord(record).s3
            found.append(RawObject(s3.bucket.name, unquote_plus(s3.get_object.key), s3.get_object.version_id,
                                   s3.get_object.etag or None))
        except (KeyError, TypeError, AttributeError) as err:
            logger.error("event record not understood", extra={"index": index, "error": repr(err)})
    return found


def _code(err: ClientError) -> tuple[str, int]:
    return (err.response.get("Error", {}).get("Code", ""),
            err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as err:
        if _code(err)[0] in _MISSING:
            return False
        raise


def _current_version(s3, obj: RawObject) -> str | None:
    """The raw key's current version (the ETag on unversioned buckets), ``""`` when it has none (deleted)."""
    try:
        head = s3.head_object(Bucket=obj.bucket, Key=obj.key)
    except ClientError as err:
        if _code(err)[0] in _MISSING:
            return ""
        raise
    if obj.version_id:
        return head.get("VersionId") or ""
    return (head.get("ETag") or "").strip('"')


def _newer(s3, obj: RawObject) -> str | None:
    """The version that supersedes ``obj`` (``""``: the key was deleted), or None while ``obj`` is current."""
    if not (obj.version_id or obj.etag):
        return None                                   # nothing to compare with
    current = _current_version(s3, obj)
    return None if current == obj.version else current


def _etag(s3, bucket: str, key: str) -> tuple[bool, str | None]:
    """(readable, ETag or None when there is no such object)."""
    try:
        return True, s3.head_object(Bucket=bucket, Key=key)["ETag"]
    except ClientError as err:
        code, status = _code(err)
        if code in _MISSING:
            return True, None
        if code in ("AccessDenied", "403") or status == 403:
            return False, None
        raise


def _write_table(s3, obj: RawObject, key: str, path: str) -> str | None:
    """Writes the table file unless a newer version of the raw key exists (compare-and-swap, see the module);
    returns None when written, else the version that supersedes ``obj``."""
    condition = {"IfNoneMatch": "*"}                  # first guess: no table file yet
    metadata = {"raw-key": quote(obj.key, safe="/"), "raw-version": quote(obj.version, safe="")}
    for attempt in range(WRITE_ATTEMPTS):
        newer = _newer(s3, obj)
        if newer is not None:
            return newer
        try:
            with open(path, "rb") as body:
                s3.put_object(Bucket=obj.bucket, Key=key, Body=body, Metadata=metadata,
                              ContentType="application/vnd.apache.parquet", **condition)
            return None
        except ClientError as err:
            code, status = _code(err)
            if code not in _CONFLICT and status not in (409, 412) and not ("IfMatch" in condition and
                                                                           code in _MISSING):
                raise
        time.sleep(min(0.05 * 2 ** attempt, 1.0))
        readable, etag = _etag(s3, obj.bucket, key)   # read before the next version check
        if not readable:
            logger.warning("cannot read the table file's ETag (s3:GetObject on the table prefix): writing after "
                           "the version check alone", extra={"key": key})
            condition = {}
        else:
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    raise RuntimeError(f"the table file {key} changed {WRITE_ATTEMPTS} times while being written")


def _download(s3, obj: RawObject, path: str) -> str | None:
    """Copies the raw object version to ``path``; returns why it cannot be read when that is final (gone)."""
    selector = {"VersionId": obj.version_id} if obj.version_id else ({"IfMatch": obj.etag} if obj.etag else {})
    try:
        body = s3.get_object(Bucket=obj.bucket, Key=obj.key, **selector)["Body"]
    except ClientError as err:
        code, status = _code(err)
        if code in _GONE or code == "PreconditionFailed" or status == 412:
            return f"the object version cannot be read any more ({code or status})"
        raise
    with open(path, "wb") as f:
        shutil.copyfileobj(body, f, 1 << 20)
    return None


def _put_report(s3, obj: RawObject, keys: OutputKeys, report: Report, **extra) -> None:
    document = {**report.as_dict(), **extra}
    body = json.dumps(document, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    s3.put_object(Bucket=obj.bucket, Key=keys.report, Body=body, ContentType="application/json")


def _superseded(s3, obj: RawObject, keys: OutputKeys, newer: str, report: Report | None = None) -> dict:
    report = report or Report(source=_source(obj))
    report.status = "superseded"
    report.outputs = {"data": None, "rejects": report.outputs.get("rejects"),
                      "report": f"s3://{obj.bucket}/{keys.report}"}
    by = newer or "(deleted)"
    _put_report(s3, obj, keys, report, superseded_by=by)
    logger.info("superseded", extra={"key": obj.key, "version": obj.version, "superseded_by": by})
    return {"key": obj.key, "status": "superseded", "superseded_by": by, "report": keys.report}


def _source(obj: RawObject) -> str:
    return f"s3://{obj.bucket}/{obj.key}?versionId={obj.version}"


def ingest(s3, obj: RawObject, *, table_prefix: str = TABLE_PREFIX, work_dir: str | None = None) -> dict:
    """Processes one raw object; returns a summary (status ok / failed / superseded / skipped). Raises only for
    errors a retry may cure (the service, this machine)."""
    if not obj.key.startswith(RAW_PREFIX) or obj.key.endswith("/"):
        return {"key": obj.key, "status": "skipped", "why": f"not a file under {RAW_PREFIX}"}
    keys = OutputKeys.for_object(obj, table_prefix=table_prefix)
    if _exists(s3, obj.bucket, keys.report):
        logger.info("already processed", extra={"key": obj.key, "version": obj.version, "report": keys.report})
        return {"key": obj.key, "status": "skipped", "why": "already processed", "report": keys.report}
    newer = _newer(s3, obj)
    if newer is not None:                             # not worth reading: its data would not be kept
        return _superseded(s3, obj, keys, newer)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        local = LocalOutputs.in_dir(tmp, "object")
        report = _normalized(s3, obj, os.path.join(tmp, "raw.csv"), local)
        newer = _upload_outputs(s3, obj, keys, local, report)
        if newer is not None:
            return _superseded(s3, obj, keys, newer, report)
        _put_report(s3, obj, keys, report)
    summary = {k: getattr(report, k) for k in ("status", "rows_in", "rows_ok", "rows_rejected", "encoding")}
    if report.status == "ok":
        logger.info("ingested", extra={"key": obj.key, **summary})
    else:
        logger.error("unusable file", extra={"key": obj.key, "error": report.error, "report": keys.report})
    return {"key": obj.key, **summary, "report": keys.report}


def _normalized(s3, obj: RawObject, raw_path: str, local: LocalOutputs) -> Report:
    """Downloads ``obj`` to ``raw_path`` and normalizes it into ``local``: the report, failed for an unusable file
    (or one gone meanwhile). Raises for errors a retry may cure."""
    gone = _download(s3, obj, raw_path)
    if gone is not None:
        return Report(source=_source(obj), status="failed", error=gone, outputs={"data": None, "rejects": None})
    try:
        with open(raw_path, "rb") as stream:
            return run(stream, local, source=_source(obj))
    except (OSError, MemoryError):
        raise                                 # this machine: a retry (maybe elsewhere) may succeed
    except Exception as err:  # noqa: BLE001 - a defect on this input: retrying gives the same result
        logger.exception("normalizer failed", extra={"key": obj.key})
        return Report(source=_source(obj), status="failed", error=f"internal error: {type(err).__name__}: {err}",
                      outputs={"data": None, "rejects": None})


def _upload_outputs(s3, obj: RawObject, keys: OutputKeys, local: LocalOutputs, report: Report) -> str | None:
    """Uploads the rejects and the table of a good file and sets ``report.outputs`` to their S3 URIs; returns the
    newer version that supersedes ``obj`` when one appeared meanwhile (its table is then not kept)."""
    uploaded = {"data": None, "rejects": None, "report": f"s3://{obj.bucket}/{keys.report}"}
    newer = None
    if report.status == "ok":
        if report.outputs.get("rejects"):
            s3.upload_file(local.rejects, obj.bucket, keys.rejects)
            uploaded["rejects"] = f"s3://{obj.bucket}/{keys.rejects}"
        newer = _write_table(s3, obj, keys.data, local.data)
        if newer is None:
            uploaded["data"] = f"s3://{obj.bucket}/{keys.data}"
    report.outputs = uploaded
    return newer


def _handle(objects: Iterable[RawObject]) -> list[dict]:
    """Every object of the event, whatever happens to the others; raises ``IngestRetry`` at the end when some
    failed for a reason a retry may cure."""
    s3 = boto3.client("s3")
    table_prefix = os.environ.get("TABLE_PREFIX", TABLE_PREFIX)
    results, retry = [], []
    objects = list(objects)
    for obj in objects:
        try:
            results.append(ingest(s3, obj, table_prefix=table_prefix))
        except Exception as err:  # noqa: BLE001 - collected, raised below
            logger.exception("ingest failed, will be retried", extra={"key": obj.key, "version": obj.version})
            results.append({"key": obj.key, "status": "error", "error": f"{type(err).__name__}: {err}"})
            retry.append(obj.key)
    if retry:
        raise IngestRetry(f"{len(retry)} of {len(objects)} raw objects failed with a service or machine error "
                          f"and are retried (the others are done): {', '.join(retry)}")
    return results


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    return {"results": _handle(raw_objects(event))}
