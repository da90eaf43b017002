"""`python -m model publish`: upload a checked export to the model bucket under `<prefix>/<name>/<version>/`.

boto3 + standard library only. Order of work: check the export against the contract (missing file, checksum or class
count mismatch -> refuse), refuse to overwrite an existing version, upload the model files with their SHA-256 (S3
rejects a corrupted body), upload manifest.json last (its presence marks a complete version), then download every
object again and compare checksums. A failed verification removes the version's objects again, so devices never see a
half-published model; the local export is left untouched.
"""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from model import contract

BUCKET_PREFIX = "deeplens-"  # DeepLens reads model artifacts only from buckets named deeplens-...


class PublishError(Exception):
    """The export was not published; the message says why."""


def version_prefix(manifest: dict, prefix: str = "models") -> str:
    return f"{prefix.strip('/')}/{manifest['name']}/{manifest['version']}/".lstrip("/")


def publish(export_dir, bucket: str, prefix: str = "models", s3=None, progress=print) -> dict:
    """Publishes and verifies; returns {"bucket", "prefix", "keys", "manifest_uri"}."""
    if not bucket.startswith(BUCKET_PREFIX):
        raise PublishError(f"bucket {bucket!r}: DeepLens only reads models from buckets whose name starts with "
                           f"{BUCKET_PREFIX!r} (the storage stack's model bucket)")
    try:
        manifest = contract.check_export(export_dir)
    except contract.ExportError as e:
        raise PublishError(f"refusing to publish: {e}") from None
    if s3 is None:
        import boto3

        s3 = boto3.client("s3")
    export_dir = Path(export_dir)
    key_prefix = version_prefix(manifest, prefix)
    existing = s3.list_objects_v2(Bucket=bucket, Prefix=key_prefix, MaxKeys=1)
    if existing.get("KeyCount", 0):
        raise PublishError(f"s3://{bucket}/{key_prefix} already exists; versions are immutable, export with a new "
                           f"--version")

    names = list(manifest["files"].values()) + [contract.MANIFEST]
    expected = {name: contract.sha256_file(export_dir / name) for name in names}
    uploaded: list[str] = []
    try:
        _upload(s3, bucket, key_prefix, export_dir, names, expected, uploaded, progress)
        _verify(s3, bucket, key_prefix, names, expected)
    except Exception:
        for key in uploaded:
            s3.delete_object(Bucket=bucket, Key=key)
        if uploaded:
            progress(f"removed the {len(uploaded)} object(s) uploaded under s3://{bucket}/{key_prefix}")
        raise
    progress(f"verified {len(names)} object(s): sha256 of every upload matches the export")
    return {"bucket": bucket, "prefix": key_prefix, "keys": uploaded,
            "manifest_uri": f"s3://{bucket}/{key_prefix}{contract.MANIFEST}"}


def _upload(s3, bucket: str, key_prefix: str, export_dir: Path, names: list, expected: dict, uploaded: list,
            progress) -> None:
    """Uploads ``names`` in order with their SHA-256; appends each key to ``uploaded`` as soon as S3 has it, so the
    caller can remove a partial version."""
    for name in names:
        digest = bytes.fromhex(expected[name])
        with open(export_dir / name, "rb") as body:
            s3.put_object(Bucket=bucket, Key=key_prefix + name, Body=body,
                          ChecksumSHA256=base64.b64encode(digest).decode(),
                          ContentType="application/json" if name.endswith(".json") else "application/octet-stream",
                          Metadata={"sha256": expected[name]})
        uploaded.append(key_prefix + name)
        progress(f"uploaded s3://{bucket}/{key_prefix}{name}")


def _verify(s3, bucket: str, key_prefix: str, names: list, expected: dict) -> None:
    """Downloads every object again; raises PublishError on the first whose sha256 differs from the export's."""
    for name in names:
        body = s3.get_object(Bucket=bucket, Key=key_prefix + name)["Body"].read()
        got = hashlib.sha256(body).hexdigest()
        if got != expected[name]:
            raise PublishError(f"verification failed: s3://{bucket}/{key_prefix}{name} has sha256 {got}, "
                               f"the export has {expected[name]}")
