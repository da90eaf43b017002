"""AWS adapters of the cloud classifier (``maskcam.cloud``): frames and error records in S3, events through the
IoT Data plane, the model export from the model bucket, image decoding with OpenCV. boto3 (in every Lambda
runtime) and cv2 are imported inside the functions that use them."""
import json
import os
import shutil
import tempfile

from ..rejections import FrameRejected
from ..manifest import MANIFEST_FILE, load_manifest

_MISSING = ("NoSuchKey", "404", "NotFound", "NoSuchVersion")


class S3Frames:
    def __init__(self, client=None, max_bytes=20 * 1024 * 1024):
        if client is None:
            import boto3
            client = boto3.client("s3")
        self.client = client
        self.max_bytes = max_bytes

    def get(self, bucket, key, version_id=None):
        """(body bytes, user metadata); FrameRejected when the object is gone or larger than ``max_bytes``."""
        from botocore.exceptions import ClientError
        kwargs = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            response = self.client.get_object(**kwargs)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in _MISSING:
                raise FrameRejected("object s3://%s/%s no longer exists (deleted before it was classified)"
                                    % (bucket, key)) from err
            raise
        size = int(response.get("ContentLength") or 0)
        if size > self.max_bytes:
            response["Body"].close()
            raise FrameRejected("object is %d bytes, over the %d-byte frame limit" % (size, self.max_bytes))
        return response["Body"].read(), dict(response.get("Metadata") or {})

    def put_json(self, bucket, key, record):
        self.client.put_object(Bucket=bucket, Key=key, ContentType="application/json",
                               Body=json.dumps(record, sort_keys=True).encode("utf-8"))


class IotDataPublisher:
    """``iot-data`` Publish (QoS 1). ``endpoint``: the account's ATS data endpoint, when the SDK default is not it."""

    def __init__(self, client=None, endpoint=None):
        if client is None:
            import boto3
            client = boto3.client("iot-data", endpoint_url=("https://%s" % endpoint if endpoint and "://" not in
                                                            endpoint else endpoint) or None)
        self.client = client

    def publish(self, topic, payload):
        self.client.publish(topic=topic, qos=1, payload=payload.encode("utf-8"))


def decode_image(data):
    """Encoded image bytes (JPEG, PNG, BMP, WebP, ...) -> BGR uint8 array, None when OpenCV cannot decode them."""
    import cv2
    import numpy as np
    if not data:
        return None
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)


def download_export(bucket, prefix, directory, client=None):
    """Downloads ``manifest.json`` and the ONNX file it names from ``s3://bucket/prefix`` into ``directory`` and
    checks the file's SHA-256 against the manifest. Returns the directory. A missing manifest means the version was
    never (completely) published: ``model publish`` uploads it last."""
    if client is None:
        import boto3
        client = boto3.client("s3")
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    staging = tempfile.mkdtemp(prefix="export-", dir=_parent(directory))
    try:
        client.download_file(bucket, prefix + MANIFEST_FILE, os.path.join(staging, MANIFEST_FILE))
        manifest = load_manifest(staging)
        onnx_name = manifest.files.get("onnx")
        if not onnx_name:
            raise ValueError("s3://%s/%s%s lists no onnx file" % (bucket, prefix, MANIFEST_FILE))
        client.download_file(bucket, prefix + onnx_name, os.path.join(staging, onnx_name))
        manifest.path("onnx")  # checksum
        if os.path.isdir(directory):
            shutil.rmtree(directory)
        os.rename(staging, directory)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _parent(directory):
    parent = os.path.dirname(os.path.abspath(directory))
    if not os.path.isdir(parent):
        os.makedirs(parent)
    return parent
