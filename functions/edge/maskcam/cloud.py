"""The cloud path of the ``greengrassHelloWorld`` Lambda: frames uploaded to S3 under ``frames/<device_id>/...``
go through the same pipeline as on a device (face detector + classifier) and become the same schema-v1 inference
event on the same topic (``inference_topic`` with the device id in place of ``+``).

One invocation handles every object of an S3 notification or EventBridge "Object Created" event. Per object:

- **published**: decoded, classified, inference event published;
- **rejected** (the object itself is unusable: key outside ``frames/<device_id>/``, not an image, too large,
  deleted, bad ``ts`` metadata): a JSON record under ``errors/frames/<same path>.json`` in the frame's bucket and,
  when the device id is known, a schema-v1 ``error`` event on the device's topic; the rest of the batch goes on;
- **failed** (a service error that may pass: S3 read, IoT publish): the others are still processed, then the
  invocation raises ``FramesFailed`` so Lambda retries the event and finally hands it to the on-failure queue.

Adapters (S3, IoT Data, image decoding, model download) are passed in or built from ``maskcam.adapters.aws``,
so this module imports anywhere (standard library only; Python 3.7 syntax)."""
import json
import os
import re
import time
from calendar import timegm
from collections import namedtuple

try:
    from urllib.parse import unquote_plus
except ImportError:  # Python 2.7 (an old DeepLens) never takes the cloud path, but must import this module
    from urllib import unquote_plus

from . import schema

FRAMES_PREFIX = "frames/"
ERRORS_PREFIX = "errors/frames/"
MAX_FRAME_BYTES = 20 * 1024 * 1024
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")  # IoT thing name characters: no MQTT wildcards, no '/'
TS_METADATA = "ts"  # optional object metadata x-amz-meta-ts: capture time, epoch milliseconds

# Lambda environment (set by the device stack). MASKCAM_* variables without CLOUD belong to the device loop.
ENV = {
    "model_bucket": ("MASKCAM_CLOUD_MODEL_BUCKET", None),
    "model_prefix": ("MASKCAM_CLOUD_MODEL_PREFIX", None),
    "topic": ("MASKCAM_CLOUD_TOPIC", "maskcam/+/infer"),
    "detector": ("MASKCAM_CLOUD_DETECTOR", "haar"),
    "margin": ("MASKCAM_CLOUD_MARGIN", "0.1"),
    "frames_prefix": ("MASKCAM_CLOUD_FRAMES_PREFIX", FRAMES_PREFIX),
    "errors_prefix": ("MASKCAM_CLOUD_ERRORS_PREFIX", ERRORS_PREFIX),
    "model_dir": ("MASKCAM_CLOUD_MODEL_DIR", "/tmp/maskcam-model"),
    "iot_endpoint": ("MASKCAM_CLOUD_IOT_ENDPOINT", None),
}

FrameObject = namedtuple("FrameObject", "bucket key version_id event_ms")


class FrameRejected(Exception):
    """This object can never be classified (the reason says why); it gets an error record, the batch goes on."""


class FramesFailed(RuntimeError):
    """Some objects hit errors that may pass (service errors); raised after the whole batch was tried so that Lambda
    retries the event and, after its retries, sends it to the on-failure destination. ``result`` holds the per-object
    outcome."""

    def __init__(self, result):
        failed = [r for r in result["results"] if r["status"] == "failed"]
        RuntimeError.__init__(self, "%d of %d frame(s) failed: %s" % (
            len(failed), result["objects"], "; ".join("%s: %s" % (r["key"], r["error"]) for r in failed)))
        self.result = result


def config_from_env(environ):
    config = dict((key, environ.get(name, default)) for key, (name, default) in ENV.items())
    missing = [ENV[k][0] for k in ("model_bucket", "model_prefix") if not config[k]]
    if missing:
        raise ValueError("cloud classifier is not configured: set %s" % ", ".join(missing))
    return config


def is_frames_event(event):
    """An S3 notification or an EventBridge "Object Created" event (as opposed to a Greengrass message)."""
    if not isinstance(event, dict):
        return False
    if event.get("source") == "aws.s3" and isinstance(event.get("detail"), dict):
        return True
    records = event.get("Records")
    return isinstance(records, list) and bool(records) and all(
        isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records)


def _iso_ms(text):
    """'2026-11-27T10:00:00.123Z' -> epoch milliseconds (None when absent or unparsable)."""
    if not text:
        return None
    match = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?Z$", str(text))
    if not match:
        return None
    seconds = timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    fraction = float(match.group(2)) if match.group(2) else 0.0
    return int(seconds * 1000 + round(fraction * 1000))


def frame_objects(event):
    """The objects an event names. EventBridge keys arrive as is, S3 notification keys URL-encoded."""
    if event.get("source") == "aws.s3":
        detail = event["detail"]
        obj = detail["object"]
        return [FrameObject(detail["bucket"]["name"], obj["key"], obj.get("version-id"), _iso_ms(event.get("time")))]
    return [FrameObject(r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"]),
                        r["s3"]["object"].get("versionId"), _iso_ms(r.get("eventTime")))
            for r in event["Records"]]


def device_id_of(key, frames_prefix=FRAMES_PREFIX):
    """``frames/<device_id>/<anything>`` -> device_id; FrameRejected naming the problem otherwise."""
    if not key.startswith(frames_prefix):
        raise FrameRejected("key %r is not under %s<device_id>/" % (key, frames_prefix))
    device_id, sep, rest = key[len(frames_prefix):].partition("/")
    if not sep or not rest:
        raise FrameRejected("key %r has no %s<device_id>/<file> layout" % (key, frames_prefix))
    if not DEVICE_ID_RE.match(device_id):
        raise FrameRejected("device id %r in key %r is not an IoT thing name ([A-Za-z0-9:_-], 1-128 chars)"
                            % (device_id, key))
    return device_id


def topic_for(topic_filter, device_id):
    """The topic filter's ``+`` level replaced by the device id (``maskcam/+/infer`` -> ``maskcam/cam-1/infer``)."""
    return "/".join(device_id if level == "+" else level for level in topic_filter.split("/"))


def error_record_key(key, frames_prefix=FRAMES_PREFIX, errors_prefix=ERRORS_PREFIX):
    """Where the record of a rejected object goes: the same path below the errors prefix (a retry overwrites it)."""
    rest = key[len(frames_prefix):] if key.startswith(frames_prefix) else "_outside-frames-prefix/" + key
    return errors_prefix + rest + ".json"


def capture_ts(obj, metadata, now_ms):
    """Event time: object metadata ``ts`` (epoch ms, set by the uploader) > notification time > now."""
    raw = (metadata or {}).get(TS_METADATA)
    if raw is not None:
        try:
            value = int(str(raw).strip())
        except ValueError:
            value = None
        if value is None or not 946684800000 <= value <= 4102444800000:
            raise FrameRejected("metadata ts=%r is not epoch milliseconds between 2000 and 2100" % raw)
        return value
    return obj.event_ms or now_ms


class CloudClassifier(object):
    """Classifies the frames of one event. Adapters:

    - ``store``: ``get(bucket, key, version_id) -> (bytes, metadata dict)`` (raises FrameRejected for a missing or
      oversized object), ``put_json(bucket, key, record)``;
    - ``publisher``: ``publish(topic, payload_json)``;
    - ``pipeline``: a ``maskcam.pipeline.FramePipeline``;
    - ``decode``: ``bytes -> BGR ndarray or None``."""

    def __init__(self, config, store, publisher, pipeline, decode, clock=time.time):
        self.config = config
        self.store, self.publisher, self.pipeline, self.decode = store, publisher, pipeline, decode
        self.clock = clock

    def handle(self, event, request_id=None):
        objects = frame_objects(event)
        results = [self._one(obj, request_id) for obj in objects]
        result = {
            "status": "ok" if all(r["status"] == "published" for r in results) else "partial",
            "objects": len(results),
            "published": sum(1 for r in results if r["status"] == "published"),
            "rejected": sum(1 for r in results if r["status"] == "rejected"),
            "failed": sum(1 for r in results if r["status"] == "failed"),
            "results": results,
        }
        if result["failed"]:
            raise FramesFailed(result)
        return result

    def _one(self, obj, request_id):
        now_ms = int(self.clock() * 1000)
        device_id = None
        try:
            device_id = device_id_of(obj.key, self.config["frames_prefix"])
            data, metadata = self.store.get(obj.bucket, obj.key, obj.version_id)
            ts_ms = capture_ts(obj, metadata, now_ms)
            frame = self.decode(data)
            if frame is None:
                raise FrameRejected("%d bytes that are not a decodable image (JPEG, PNG, ...)" % len(data))
            result = self.pipeline.process(frame)
            topic = topic_for(self.config["topic"], device_id)
            self.publisher.publish(topic, schema.to_json(self.pipeline.event(device_id, result, ts_ms)))
            return {"key": obj.key, "status": "published", "device_id": device_id, "topic": topic,
                    "faces": len(result.detections)}
        except FrameRejected as err:
            return self._reject(obj, device_id, str(err), now_ms, request_id)
        except Exception as err:  # service errors (S3 read, IoT publish): retried by Lambda, see FramesFailed
            return {"key": obj.key, "status": "failed", "device_id": device_id,
                    "error": "%s: %s" % (type(err).__name__, err)}

    def _reject(self, obj, device_id, reason, now_ms, request_id):
        record_key = error_record_key(obj.key, self.config["frames_prefix"], self.config["errors_prefix"])
        record = {"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id, "device_id": device_id,
                  "reason": reason, "ts": now_ms, "request_id": request_id,
                  "model_name": self.pipeline.model_name, "model_version": self.pipeline.model_version}
        try:
            self.store.put_json(obj.bucket, record_key, record)
            if device_id is not None:
                event = schema.error_event(device_id, now_ms, self.pipeline.model_name, self.pipeline.model_version,
                                           "frame s3://%s/%s rejected: %s" % (obj.bucket, obj.key, reason))
                self.publisher.publish(topic_for(self.config["topic"], device_id), schema.to_json(event))
        except Exception as err:  # the record could not be kept: fail (retry), never drop silently
            return {"key": obj.key, "status": "failed", "device_id": device_id,
                    "error": "rejected (%s) but the error record could not be written: %s: %s"
                             % (reason, type(err).__name__, err)}
        return {"key": obj.key, "status": "rejected", "device_id": device_id, "reason": reason,
                "error_record": "s3://%s/%s" % (obj.bucket, record_key)}


# Warm invocations reuse the model (downloaded to /tmp once per execution environment) and the detector.
_PIPELINES = {}
_ADAPTERS = {}


def load_pipeline(config, s3_client=None):
    """The pipeline for the configured export, built once per (bucket, prefix, detector) and cached."""
    cache_key = (config["model_bucket"], config["model_prefix"], config["detector"])
    pipeline = _PIPELINES.get(cache_key)
    if pipeline is None:
        from .adapters.aws import download_export
        from .adapters.models import OnnxClassifier, load_detector
        from .pipeline import FramePipeline
        directory = os.path.join(config["model_dir"], config["model_prefix"].strip("/"))
        download_export(config["model_bucket"], config["model_prefix"], directory, client=s3_client)
        pipeline = FramePipeline(load_detector(config["detector"]), OnnxClassifier(directory),
                                 margin=float(config["margin"]))
        _PIPELINES[cache_key] = pipeline
    return pipeline


def handler(event, context, environ=None):
    """Lambda entry for frames events (called by ``greengrassHelloWorld.function_handler``)."""
    from .adapters.aws import IotDataPublisher, S3Frames, decode_image
    config = config_from_env(os.environ if environ is None else environ)
    pipeline = load_pipeline(config)  # a model that cannot load fails the invocation: retried, then on-failure queue
    if "store" not in _ADAPTERS:  # boto3 clients are reused by warm invocations too
        _ADAPTERS.update(store=S3Frames(max_bytes=MAX_FRAME_BYTES),
                         publisher=IotDataPublisher(endpoint=config["iot_endpoint"]))
    classifier = CloudClassifier(config, _ADAPTERS["store"], _ADAPTERS["publisher"], pipeline, decode_image)
    result = classifier.handle(event, getattr(context, "aws_request_id", None))
    print(json.dumps(dict((k, v) for k, v in result.items() if k != "results")))
    return result
