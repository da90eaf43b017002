"""The cloud path of greengrassHelloWorld.function_handler against moto: frames put under frames/<device>/ in S3,
the real tiny SqueezeNet export published to the model bucket, events read back from moto's IoT Data backend."""
import importlib
import json
import sys
from types import SimpleNamespace

import boto3
import cv2
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iotdata.models import iotdata_backends

from maskcam import schema
from model.publish import publish
from tests.edge_support import astronaut_bgr, stream_frame

REGION = "us-east-1"
MODEL_BUCKET = f"deeplens-maskcam-models-{DEFAULT_ACCOUNT_ID}-{REGION}"
DATA_BUCKET = "maskcam-data"


def jpeg(frame):
    ok, data = cv2.imencode(".jpg", frame)
    assert ok
    return data.tobytes()


def eventbridge_event(key, version_id=None, time="2026-11-27T10:00:00Z"):
    return {"version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3",
            "account": DEFAULT_ACCOUNT_ID, "time": time, "region": REGION,
            "resources": [f"arn:aws:s3:::{DATA_BUCKET}"],
            "detail": {"version": "0", "bucket": {"name": DATA_BUCKET},
                       "object": {"key": key, "size": 1, "etag": "x", "version-id": version_id, "sequencer": "0"},
                       "request-id": "r", "requester": DEFAULT_ACCOUNT_ID, "reason": "PutObject"}}


def s3_notification(*keys):
    from urllib.parse import quote_plus
    return {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
                         "eventTime": "2026-11-27T10:00:00.000Z", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": DATA_BUCKET, "arn": f"arn:aws:s3:::{DATA_BUCKET}"},
                                "object": {"key": quote_plus(k), "size": 1}}} for k in keys]}


def context():
    return SimpleNamespace(aws_request_id="req-1", function_name="deeplens-mask-classifier")


@pytest.fixture
def cloud(monkeypatch, tmp_path, model_export):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_IOT_THING_NAME", raising=False)
    monkeypatch.delenv("MASKCAM_AUTOSTART", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (MODEL_BUCKET, DATA_BUCKET):
            s3.create_bucket(Bucket=bucket)
        published = publish(model_export, MODEL_BUCKET, s3=s3, progress=lambda _: None)
        env = {"MASKCAM_CLOUD_MODEL_BUCKET": MODEL_BUCKET, "MASKCAM_CLOUD_MODEL_PREFIX": published["prefix"],
               "MASKCAM_CLOUD_TOPIC": "maskcam/+/infer", "MASKCAM_CLOUD_MODEL_DIR": str(tmp_path / "model")}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delitem(sys.modules, "greengrassHelloWorld", raising=False)
        module = importlib.import_module("greengrassHelloWorld")
        cloud_module = importlib.import_module("maskcam.cloud")
        monkeypatch.setattr(cloud_module, "_PIPELINES", {})  # each test starts cold
        monkeypatch.setattr(cloud_module, "_ADAPTERS", {})
        backend = iotdata_backends[DEFAULT_ACCOUNT_ID][REGION]
        backend.published_payloads.clear()

        def events():
            return [(topic, json.loads(payload)) for topic, payload in backend.published_payloads]

        yield SimpleNamespace(s3=s3, handler=module.function_handler, events=events, cloud=cloud_module,
                              model_prefix=published["prefix"])


def put_frame(cloud, key, body, **kwargs):
    cloud.s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body, **kwargs)


def test_frame_under_frames_prefix_publishes_one_inference_event_with_device_id_and_faces(cloud):
    put_frame(cloud, "frames/cam-1/2026/11/27/100000.jpg", jpeg(stream_frame()))
    result = cloud.handler(eventbridge_event("frames/cam-1/2026/11/27/100000.jpg"), context())

    assert (result["status"], result["objects"], result["published"], result["rejected"]) == ("ok", 1, 1, 0)
    (topic, event), = cloud.events()
    assert topic == "maskcam/cam-1/infer"
    assert schema.problems(event) == []
    assert event["event_type"] == "inference" and event["device_id"] == "cam-1"
    assert event["faces"] == 2 == result["results"][0]["faces"]          # the two real faces of the stream frame
    assert event["model_name"] == "mask-classifier" and event["model_version"] == "test-seed0"
    assert event["ts"] == 1795773600000                                   # the notification's time (no metadata)


def test_s3_notification_with_encoded_keys_and_metadata_ts(cloud):
    key = "frames/cam-2/lobby photo+1.png"
    ok, png = cv2.imencode(".png", astronaut_bgr())
    put_frame(cloud, key, png.tobytes(), Metadata={"ts": "1795770000123"})
    result = cloud.handler(s3_notification(key), context())

    assert result["published"] == 1
    (topic, event), = cloud.events()
    assert topic == "maskcam/cam-2/infer" and event["device_id"] == "cam-2"
    assert event["faces"] == 1 and event["ts"] == 1795770000123           # the astronaut photo: one face


def test_unreadable_image_gets_an_error_record_and_an_error_event_not_a_crash(cloud):
    key = "frames/cam-1/broken.jpg"
    put_frame(cloud, key, b"\xff\xd8 this is not really a JPEG")
    result = cloud.handler(eventbridge_event(key), context())

    assert (result["status"], result["published"], result["rejected"], result["failed"]) == ("partial", 0, 1, 0)
    outcome, = result["results"]
    assert outcome["error_record"] == f"s3://{DATA_BUCKET}/errors/frames/cam-1/broken.jpg.json"
    record = json.loads(cloud.s3.get_object(Bucket=DATA_BUCKET, Key="errors/frames/cam-1/broken.jpg.json")["Body"]
                        .read())
    assert record["key"] == key and record["device_id"] == "cam-1" and record["request_id"] == "req-1"
    assert "not an image of an accepted format (JPEG, PNG, BMP, WebP)" in record["reason"]
    (topic, event), = cloud.events()
    assert topic == "maskcam/cam-1/infer" and event["event_type"] == "error" and schema.problems(event) == []
    assert key in event["message"]


def test_batch_with_one_bad_object_still_publishes_the_others(cloud):
    keys = ["frames/cam-1/a.jpg", "frames/cam-1/bad.jpg", "frames/cam-3/c.jpg", "frames/no-device-level.jpg",
            "frames/cam-1/deleted.jpg"]
    put_frame(cloud, keys[0], jpeg(stream_frame()))
    put_frame(cloud, keys[1], b"")
    put_frame(cloud, keys[2], jpeg(astronaut_bgr()))
    result = cloud.handler(s3_notification(*keys), context())

    assert (result["objects"], result["published"], result["rejected"], result["failed"]) == (5, 2, 3, 0)
    assert [r["status"] for r in result["results"]] == ["published", "rejected", "published", "rejected", "rejected"]
    inference = [(t, e) for t, e in cloud.events() if e["event_type"] == "inference"]
    assert [(t, e["device_id"], e["faces"]) for t, e in inference] == [("maskcam/cam-1/infer", "cam-1", 2),
                                                                       ("maskcam/cam-3/infer", "cam-3", 1)]
    errors = [e for _, e in cloud.events() if e["event_type"] == "error"]
    assert len(errors) == 2  # bad.jpg and deleted.jpg (frames/no-device-level.jpg names no device to tell)
    records = sorted(o["Key"] for o in cloud.s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="errors/")["Contents"])
    assert records == ["errors/frames/cam-1/bad.jpg.json", "errors/frames/cam-1/deleted.jpg.json",
                       "errors/frames/no-device-level.jpg.json"]
    assert "no longer exists" in json.loads(cloud.s3.get_object(
        Bucket=DATA_BUCKET, Key="errors/frames/cam-1/deleted.jpg.json")["Body"].read())["reason"]


def test_model_is_downloaded_once_and_reused_by_warm_invocations(cloud, monkeypatch):
    put_frame(cloud, "frames/cam-1/a.jpg", jpeg(stream_frame()))
    put_frame(cloud, "frames/cam-1/b.jpg", jpeg(stream_frame()))
    cloud.handler(eventbridge_event("frames/cam-1/a.jpg"), context())
    # the model bucket's export disappears: a warm invocation must not need it any more
    for obj in cloud.s3.list_objects_v2(Bucket=MODEL_BUCKET)["Contents"]:
        cloud.s3.delete_object(Bucket=MODEL_BUCKET, Key=obj["Key"])
    result = cloud.handler(eventbridge_event("frames/cam-1/b.jpg"), context())
    assert result["published"] == 1 and len(cloud.events()) == 2

    monkeypatch.setattr(cloud.cloud, "_PIPELINES", {})  # a cold start now fails the invocation (Lambda retries it)
    with pytest.raises(Exception, match="404|Not Found|NoSuchKey"):
        cloud.handler(eventbridge_event("frames/cam-1/a.jpg"), context())


def test_publish_failure_fails_the_invocation_after_the_batch_was_tried(cloud, monkeypatch):
    put_frame(cloud, "frames/cam-1/a.jpg", jpeg(stream_frame()))
    put_frame(cloud, "frames/cam-2/b.jpg", jpeg(stream_frame()))
    cloud.handler(eventbridge_event("frames/cam-1/a.jpg"), context())  # builds the cached adapters
    publisher = cloud.cloud._ADAPTERS["publisher"]
    real = publisher.publish

    def flaky(topic, payload):
        if "cam-1" in topic:
            raise ConnectionError("IoT endpoint unreachable")
        real(topic, payload)

    monkeypatch.setattr(publisher, "publish", flaky)
    with pytest.raises(cloud.cloud.FramesFailed, match=r"1 of 2 frame\(s\) failed: frames/cam-1/a.jpg: "
                                                       r"ConnectionError: IoT endpoint unreachable") as err:
        cloud.handler(s3_notification("frames/cam-1/a.jpg", "frames/cam-2/b.jpg"), context())
    assert [r["status"] for r in err.value.result["results"]] == ["failed", "published"]
    assert [t for t, _ in cloud.events()] == ["maskcam/cam-1/infer", "maskcam/cam-2/infer"]


def test_not_a_frames_event_keeps_the_device_answer(cloud):
    assert cloud.handler({"message": "hello"}, context())["status"] == "idle"


def test_pure_helpers_key_layout_topic_and_times():
    from maskcam import cloud as c
    assert c.device_id_of("frames/cam-1/2026/x.jpg") == "cam-1"
    for bad in ("raw/cam-1/x.jpg", "frames/cam-1/", "frames/cam+1/x.jpg", "frames/x.jpg"):
        with pytest.raises(c.FrameRejected):
            c.device_id_of(bad)
    assert c.topic_for("maskcam/+/infer", "cam-1") == "maskcam/cam-1/infer"
    assert c.topic_for("cameras/all", "cam-1") == "cameras/all"
    assert c._iso_ms("2026-11-27T10:00:00.250Z") == 1795773600250 and c._iso_ms("yesterday") is None
    # '.' is no thing-name character: records of keys outside frames/ cannot clash with a device's records
    assert c.error_record_key("raw/x.jpg") == "errors/frames/.outside-frames-prefix/raw/x.jpg.json"
    obj = c.FrameObject("b", "frames/cam-1/x.jpg", None, 1795773600000)
    assert c.capture_ts(obj, {}, 1) == 1795773600000 and c.capture_ts(obj._replace(event_ms=None), {}, 7) == 7
    with pytest.raises(c.FrameRejected, match="metadata ts='soon'"):
        c.capture_ts(obj, {"ts": "soon"}, 1)
    assert not c.is_frames_event({"Records": [{"eventSource": "aws:sqs"}]}) and not c.is_frames_event([])


def test_an_eventbridge_key_is_url_decoded_like_a_notification_key():
    """S3 URL-encodes keys in its events; both forms decode to the same object (as Powertools' event classes do)."""
    from maskcam.cloud import frame_objects
    (obj,) = frame_objects(eventbridge_event("frames/cam-1/front+door%2B1.jpg"))
    assert obj.key == "frames/cam-1/front door+1.jpg"
    assert frame_objects(eventbridge_event("frames/cam-1/a.jpg"))[0].key == "frames/cam-1/a.jpg"


def test_a_min_confidence_of_zero_is_kept_not_replaced_by_the_default():
    from maskcam import cloud as c
    from maskcam.schema import DEFAULT_MIN_CONFIDENCE
    assert c._min_confidence("0") == 0.0 and c._min_confidence(0) == 0.0
    assert c._min_confidence(None) == c._min_confidence(" ") == DEFAULT_MIN_CONFIDENCE
