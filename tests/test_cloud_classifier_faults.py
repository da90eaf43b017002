"""Fault injection through the real Lambda entry (``greengrassHelloWorld.function_handler``), the real adapters
(boto3 S3 and IoT Data against moto, OpenCV, the tiny SqueezeNet export): a transient S3 read error on one object of
a batch fails the invocation after the others were published; Lambda's retry of the same event publishes only what
was left, so every event reaches IoT exactly once; a decompression bomb and a decode error are rejected, not retried.
"""
import importlib
import json

import pytest
from botocore.exceptions import EndpointConnectionError

from tests.test_cloud_classifier_handler import DATA_BUCKET, REGION, cloud, context, jpeg, put_frame  # noqa: F401
from tests.edge_support import astronaut_bgr, stream_frame
from tests.test_cloud_classifier_hostile import huge_png, png_bomb, png_chunk, png_header


def notification(*keys):
    """An S3 notification as S3 sends it: URL-encoded keys, one sequencer per write."""
    from urllib.parse import quote_plus
    return {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
                         "eventTime": "2026-11-27T10:00:00.000Z", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": DATA_BUCKET, "arn": f"arn:aws:s3:::{DATA_BUCKET}"},
                                "object": {"key": quote_plus(k), "size": 1, "sequencer": f"0066{i:012X}"}}}
                        for i, k in enumerate(keys)]}


def test_a_transient_s3_error_on_one_object_retries_only_that_object_and_publishes_everything_once(
        cloud, monkeypatch):  # noqa: F811
    keys = ["frames/cam-1/a.jpg", "frames/cam-2/b.jpg", "frames/cam-3/bomb.png", "frames/cam-4/d.jpg"]
    put_frame(cloud, keys[0], jpeg(stream_frame()))
    put_frame(cloud, keys[1], jpeg(astronaut_bgr()))
    put_frame(cloud, keys[2], png_bomb())
    put_frame(cloud, keys[3], jpeg(stream_frame()))
    frames_class = importlib.import_module("maskcam.adapters.aws").S3Frames   # the package the handler uses
    real_get, failures = frames_class.get, {keys[1]: 1}

    def flaky_get(self, bucket, key, version_id=None):
        if failures.get(key, 0):
            failures[key] -= 1
            raise EndpointConnectionError(endpoint_url=f"https://{bucket}.s3.amazonaws.com/{key}")
        return real_get(self, bucket, key, version_id)

    monkeypatch.setattr(frames_class, "get", flaky_get)
    event = notification(*keys)

    with pytest.raises(cloud.cloud.FramesFailed, match=r"1 of 4 frame\(s\) failed: frames/cam-2/b.jpg: "
                                                       r"EndpointConnectionError") as first:
        cloud.handler(event, context())
    assert [r["status"] for r in first.value.result["results"]] == ["published", "failed", "rejected", "published"]
    assert "30000x30000" in first.value.result["results"][2]["reason"]

    retry = cloud.handler(event, context())                     # Lambda's retry: the same event
    assert (retry["status"], retry["published"], retry["skipped"], retry["failed"]) == ("ok", 1, 3, 0)
    again = cloud.handler(event, context())                     # and a redrive from the dead-letter queue
    assert again["skipped"] == 4

    sent = [(topic, e["event_type"], e.get("faces")) for topic, e in cloud.events()]
    assert sorted(sent) == [("maskcam/cam-1/infer", "inference", 2), ("maskcam/cam-2/infer", "inference", 1),
                            ("maskcam/cam-3/infer", "error", None), ("maskcam/cam-4/infer", "inference", 2)]
    outcomes = sorted(o["Key"] for o in cloud.s3.list_objects_v2(
        Bucket=DATA_BUCKET, Prefix="errors/frames/.outcomes/")["Contents"])
    assert outcomes == [f"errors/frames/.outcomes/{k[len('frames/'):]}/seq-0066{i:012X}.json"
                        for i, k in enumerate(keys)]
    record = json.loads(cloud.s3.get_object(Bucket=DATA_BUCKET, Key=outcomes[1])["Body"].read())
    assert (record["status"], record["topic"], record["faces"]) == ("published", "maskcam/cam-2/infer", 1)


def test_frames_opencv_cannot_decode_are_rejected_once_and_the_event_is_not_retried(cloud):  # noqa: F811
    """Before: OpenCV's cv2.error (here its own 2**30-pixel assertion) made the frame 'failed': the invocation
    raised, Lambda retried it and published the good frame again on every retry."""
    put_frame(cloud, "frames/cam-1/huge.png", huge_png())
    put_frame(cloud, "frames/cam-1/corrupt.png", png_header(64, 64, 2) + png_chunk(b"IDAT", b"x\x9c garbage")
              + png_chunk(b"IEND", b""))
    put_frame(cloud, "frames/cam-1/ok.jpg", jpeg(stream_frame()))
    event = notification("frames/cam-1/huge.png", "frames/cam-1/corrupt.png", "frames/cam-1/ok.jpg")
    result = cloud.handler(event, context())
    assert [r["status"] for r in result["results"]] == ["rejected", "rejected", "published"]
    assert "over the frame limit" in result["results"][0]["reason"]
    assert "do not decode" in result["results"][1]["reason"]
    assert cloud.handler(event, context())["skipped"] == 3
    assert sorted(e["event_type"] for _, e in cloud.events()) == ["error", "error", "inference"]
