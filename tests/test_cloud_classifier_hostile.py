"""Hostile input and faults for the cloud classifier (``maskcam.cloud``), with in-memory adapters and the real
OpenCV decoder: decompression bombs (checked on the header, never decoded; a real 890 KB PNG that decodes to 2.7 GB
under Lambda's 1.5 GB), decode errors as permanent rejections, idempotent publishing across Lambda's retries,
anchored validation regexes; and property-based tests whose assertions are the invariants:

- no exception escapes the per-object handling, whatever the bytes (random, truncated, bit-flipped, crafted headers);
- every object is published, rejected with an error record (and an error event when its device is known), skipped
  (handled by an earlier delivery) or reported failed (a transient fault), and the counts add up;
- the decoder only ever sees images whose header is within the pixel limit; the header parser agrees with OpenCV;
- with transient faults on any object, retrying the same event until it succeeds publishes every inference and
  error event exactly once.
"""
import json
import re
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskcam import cloud
from maskcam.adapters.aws import decode_image
from maskcam.pipeline import FramePipeline

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "data"
NOW = 1_795_773_600.0
# The active Hypothesis profile's example count (100); `make fuzz` reruns the `property` tests with new seeds.
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------------------------------------------ adapters

class TransientError(ConnectionError):
    """What a service error looks like to the classifier (botocore's EndpointConnectionError, a 500, ...)."""


class Store:
    """S3 in memory: ``objects[key] = (bytes, metadata)``, ``records[key] = dict``; ``faults[(op, key)]`` = how many
    more calls of ``op`` (get / put) on ``key`` raise a transient error."""

    def __init__(self, objects=None):
        self.objects = dict(objects or {})
        self.records = {}
        self.faults = {}
        self.gets = []

    def _fault(self, op, key):
        if self.faults.get((op, key), 0) > 0:
            self.faults[(op, key)] -= 1
            raise TransientError("injected %s failure on %s" % (op, key))

    def get(self, bucket, key, version_id=None):
        self.gets.append(key)
        self._fault("get", key)
        if key in self.records:
            return json.dumps(self.records[key]).encode(), {}
        if key not in self.objects:
            raise cloud.FrameRejected("object s3://%s/%s no longer exists" % (bucket, key))
        return self.objects[key]

    def put_json(self, bucket, key, record):
        self._fault("put", key)
        self.records[key] = json.loads(json.dumps(record))


class Publisher:
    def __init__(self):
        self.messages = []
        self.faults = {}    # topic -> failures left

    def publish(self, topic, payload):
        if self.faults.get(topic, 0) > 0:
            self.faults[topic] -= 1
            raise TransientError("injected publish failure on %s" % topic)
        self.messages.append((topic, json.loads(payload)))


class NoFaces:
    def __init__(self):
        self.shapes = []

    def detect(self, frame):
        self.shapes.append(frame.shape)
        return []


class Classifier:
    name, version, classes = "mask-classifier", "test", ("mask", "no_mask")


class SpyDecode:
    """The real OpenCV decoder; remembers every image it was given (``seen``) and their headers (``headers``)."""

    def __init__(self, decode=decode_image):
        self.decode, self.seen = decode, []

    def __call__(self, data):
        self.seen.append(bytes(data))
        return self.decode(data)

    @property
    def headers(self):
        return [cloud.image_header(data) for data in self.seen]


def classifier(objects=None, decode=None):
    config = cloud.config_from_env({"MASKCAM_CLOUD_MODEL_BUCKET": "m", "MASKCAM_CLOUD_MODEL_PREFIX": "p/"})
    detector = NoFaces()
    c = cloud.CloudClassifier(config, Store(objects), Publisher(), FramePipeline(detector, Classifier()),
                              decode or SpyDecode(), clock=lambda: NOW)
    c.detector = detector
    return c


def notification(*keys, **versions):
    """An S3 notification naming ``keys`` (sequencer per key, as S3 sends it)."""
    from urllib.parse import quote_plus
    return {"Records": [{"eventSource": "aws:s3", "eventTime": "2026-11-27T10:00:00.000Z",
                         "s3": {"bucket": {"name": BUCKET},
                                "object": {"key": quote_plus(k), "sequencer": "%016X" % i,
                                           "versionId": versions.get("v%d" % i)}}} for i, k in enumerate(keys)]}


def handle(c, event):
    """(result, raised): the handler's result also when it raised FramesFailed."""
    try:
        return c.handle(event, "req"), False
    except cloud.FramesFailed as err:
        return err.result, True


def encode(fmt, width, height, seed=0):
    frame = np.random.RandomState(seed).randint(0, 255, (height, width, 3)).astype(np.uint8)
    ok, data = cv2.imencode("." + fmt, frame)
    assert ok
    return data.tobytes()


def check_invariants(c, event, result):
    """Counts add up; each outcome left the traces it claims."""
    keys = [o.key for o in cloud.frame_objects(event)]
    statuses = [r["status"] for r in result["results"]]
    assert [r["key"] for r in result["results"]] == keys
    assert set(statuses) <= {"published", "rejected", "failed", "skipped"}
    assert result["objects"] == len(keys) == sum(result[s] for s in ("published", "rejected", "failed", "skipped"))
    for s in ("published", "rejected", "failed", "skipped"):
        assert result[s] == statuses.count(s)
    for r in result["results"]:
        if r["status"] == "rejected":
            record = c.store.records[r["error_record"].split("/", 3)[3]]
            assert record["key"] == r["key"] and record["reason"] == r["reason"] and r["reason"]
        elif r["status"] == "failed":
            assert r["error"]


# ----------------------------------------------------------------------------------------------- crafted images

def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def png_header(width, height, color_type=0):
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0))


def png_bomb(width=30000, height=30000):
    """A complete, valid 8-bit grey PNG of zeros: 890 KB that decode to width x height x 3 bytes (2.7 GB).
    Built in milliseconds: after a full flush, deflate emits the same bytes for the same 1 MiB block."""
    total = (1 + width) * height                 # a filter byte per row
    block = b"\0" * (1 << 20)
    z = zlib.compressobj(9)
    head = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    assert head[2:] == again
    blocks, rest = divmod(total, len(block))
    tail = z.compress(b"\0" * rest) + z.flush()
    stream = head + again * (blocks - 1) + tail[:-4] + struct.pack(">I", ((total % 65521) << 16) | 1)  # Adler-32
    return png_header(width, height) + png_chunk(b"IDAT", stream) + png_chunk(b"IEND", b"")


def jpeg_header(width, height):
    return (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
             b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01")


def bmp_header(width, height, dib=40):
    if dib == 12:
        info = struct.pack("<IHHHH", 12, width & 0xFFFF, height & 0xFFFF, 1, 24)
    else:
        info = struct.pack("<IiiHH", dib, width, height, 1, 24) + b"\0" * (dib - 16)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def webp_header(width, height, kind="VP8X"):
    if kind == "VP8X":
        payload = b"\0\0\0\0" + struct.pack("<I", (width - 1) & 0xFFFFFF)[:3] + struct.pack("<I", (height - 1)
                                                                                             & 0xFFFFFF)[:3]
    elif kind == "VP8L":
        payload = b"\x2f" + struct.pack("<I", ((width - 1) & 0x3FFF) | (((height - 1) & 0x3FFF) << 14)) + b"\0" * 5
    else:
        payload = b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width & 0x3FFF, height & 0x3FFF) + b"\0" * 4
    chunk = kind.encode().ljust(4) + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


# ------------------------------------------------------------------------------------------ the named defects

def test_a_decompression_bomb_is_rejected_on_its_header_and_never_decoded():
    bomb = png_bomb()
    assert len(bomb) < 900_000
    c = classifier({"frames/cam-1/bomb.png": (bomb, {}), "frames/cam-1/ok.png": (encode("png", 64, 48), {})})
    result, raised = handle(c, notification("frames/cam-1/bomb.png", "frames/cam-1/ok.png"))

    assert not raised and [r["status"] for r in result["results"]] == ["rejected", "published"]
    assert "PNG of 30000x30000 pixels is over the frame limit of 16777216 pixels" in result["results"][0]["reason"]
    assert [len(d) for d in c.decode.seen] == [len(c.store.objects["frames/cam-1/ok.png"][0])]  # not the bomb
    assert [e["event_type"] for _, e in c.publisher.messages] == ["error", "inference"]
    check_invariants(c, notification("frames/cam-1/bomb.png", "frames/cam-1/ok.png"), result)


@pytest.mark.parametrize("data, fmt", [
    (jpeg_header(65535, 65535), "JPEG"), (jpeg_header(4097, 4097), "JPEG"), (png_header(2 ** 31 - 1, 1), "PNG"),
    (png_header(16385, 1), "PNG"), (bmp_header(30000, -30000), "BMP"), (bmp_header(5000, 5000, dib=12), "BMP"),
    (webp_header(16383, 16383, "VP8 "), "WebP"), (webp_header(16384, 16384, "VP8L"), "WebP"),
    (webp_header(2 ** 24, 2 ** 24), "WebP"),
])
def test_every_accepted_format_is_checked_against_the_pixel_limit_before_decoding(data, fmt):
    c = classifier({"frames/cam-1/x": (data, {})})
    result, raised = handle(c, notification("frames/cam-1/x"))
    assert (result["rejected"], raised, c.decode.seen) == (1, False, [])
    assert "over the frame limit" in result["results"][0]["reason"]
    assert cloud.image_header(data).format == fmt


def test_the_limit_itself_is_accepted():
    for data in (jpeg_header(4096, 4096), png_header(16384, 1024), bmp_header(1024, -16384), webp_header(1, 16384)):
        assert cloud.check_frame_size(cloud.image_header(data))


@pytest.mark.parametrize("data, why", [
    (b"", "not an image of an accepted format"),
    (b"GIF89a" + b"\0" * 20, "not an image of an accepted format"),
    (b"II*\0" + b"\0" * 20, "not an image of an accepted format"),          # TIFF: OpenCV reads it, we do not
    (b"\0\0\0\x1cftypavif" + b"\0" * 20, "not an image of an accepted format"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG header is truncated"),
    (b"\xff\xd8\xff\xda\x00\x08", "no frame header before its image data"),
    (b"\xff\xd8" + b"\xff\xfe\x00\x02" * 1001, "more than 1000 marker segments"),
    (jpeg_header(640, 0), "height 0"),
    (png_header(0, 480), "no pixels"),
    (b"\x89PNG\r\n\x1a\n" + png_chunk(b"tEXt", b"x" * 13), "does not start with its IHDR"),
    (bmp_header(10, 10)[:14] + struct.pack("<I", 20) + b"\0" * 20, "info header size 20"),
    (webp_header(10, 10)[:12] + b"ALPH" + b"\0" * 20, "is not VP8, VP8L or VP8X"),
])
def test_what_is_not_a_frame_header_is_rejected_with_its_reason(data, why):
    c = classifier({"frames/cam-1/x": (data, {})})
    result, raised = handle(c, notification("frames/cam-1/x"))
    assert not raised and result["rejected"] == 1 and why in result["results"][0]["reason"], result
    assert c.decode.seen == []


def test_jpeg_markers_are_read_as_libjpeg_reads_them():
    """Junk before a marker, FF fill bytes and FF00 are skipped; the first frame header counts."""
    real = encode("jpg", 33, 17)
    assert cloud.image_header(real) == ("JPEG", 33, 17)
    assert real[2:4] == b"\xff\xe0" and real[4:6] == b"\x00\x10"     # SOI, then APP0 (JFIF) of 16 bytes
    tricky = real[:2] + b"\xff\xff" + real[2:20] + b"junk\xff\x00 more junk" + real[20:]
    assert cloud.image_header(tricky) == ("JPEG", 33, 17)
    frame = decode_image(tricky)
    assert frame is not None and frame.shape[:2] == (17, 33)


def test_an_opencv_decode_error_is_a_permanent_rejection_not_a_retry():
    """Before: cv2.error (corrupt data, OpenCV's size limits, allocation failures) was 'failed', so Lambda retried
    the whole event, twice, then dead-lettered it."""
    def broken(data):
        raise cv2.error("OpenCV(4.14.0) loadsave.cpp:79: error: (-215:Assertion failed) pixels <= "
                        "CV_IO_MAX_IMAGE_PIXELS in function 'validateInputImageSize'")

    c = classifier({"frames/cam-1/a.jpg": (encode("jpg", 20, 20), {})}, decode=broken)
    result, raised = handle(c, notification("frames/cam-1/a.jpg"))
    assert not raised and result["rejected"] == 1
    assert "could not be decoded: error: OpenCV" in result["results"][0]["reason"]
    assert [e["event_type"] for _, e in c.publisher.messages] == ["error"]


def huge_png(width=40000, height=40000):
    """A PNG OpenCV's decoder raises for (cv2.error: pixels <= CV_IO_MAX_IMAGE_PIXELS, its 2**30 default)."""
    return png_header(width, height) + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + png_chunk(b"IEND", b"")


def test_opencv_s_own_size_assertion_on_a_real_header_is_rejected_not_retried():
    """The real decoder raises (not returns None) for a PNG over its 2**30-pixel default: before, that was a
    transient failure (the event retried, then dead-lettered)."""
    with pytest.raises(cv2.error, match="CV_IO_MAX_IMAGE_PIXELS"):
        decode_image(huge_png())
    c = classifier({"frames/cam-1/huge.png": (huge_png(), {})})
    result, raised = handle(c, notification("frames/cam-1/huge.png"))
    assert not raised and result["rejected"] == 1 and "over the frame limit" in result["results"][0]["reason"]


BOMB_UNDER_LAMBDA_MEMORY = textwrap.dedent("""
    import json, resource
    from tests.test_cloud_classifier_hostile import classifier, handle, notification, png_bomb
    from maskcam.adapters.aws import decode_image
    c = classifier({"frames/cam-1/bomb.png": (png_bomb(), {})}, decode=decode_image)
    limit = 1536 * 2 ** 20                        # the function's memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result, raised = handle(c, notification("frames/cam-1/bomb.png"))
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"raised": raised, "results": result["results"], "peak_growth_mb": grew // 1024}))
""")


def test_the_bomb_under_lambda_s_memory_is_rejected_not_an_oom_or_a_retry():
    """A separate process limited to 1.5 GB of address space, the real OpenCV decoder. Before: OpenCV's 2.7 GB
    allocation failed (cv2.error: Insufficient memory; on Lambda the process is killed), the frame was 'failed'
    and the event retried."""
    # `python -c` puts its working directory first on sys.path: ROOT, so `tests` imports there; `maskcam` is installed
    proc = subprocess.run([sys.executable, "-c", BOMB_UNDER_LAMBDA_MEMORY], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    (outcome,) = report["results"]
    assert (report["raised"], outcome["status"]) == (False, "rejected"), outcome
    assert "30000x30000" in outcome["reason"] and report["peak_growth_mb"] < 50


def test_device_id_with_a_trailing_newline_or_any_other_character_is_rejected():
    for device in ("cam-1\n", "cam-1\r", "\ncam-1", "cam\n1", "cam-1 ", "cam-１", "cam-1\x00", "a" * 129, ""):
        with pytest.raises(cloud.FrameRejected):
            cloud.device_id_of("frames/%s/x.jpg" % device)
    c = classifier({"frames/cam-1\n/x.jpg": (encode("jpg", 8, 8), {})})
    result, _ = handle(c, notification("frames/cam-1\n/x.jpg"))
    assert result["rejected"] == 1 and c.publisher.messages == []     # nothing on a topic with a newline in it


THING_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-"


@pytest.mark.property
@PROPERTY
@given(st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=140),
    st.tuples(st.text(st.sampled_from(THING_NAME_CHARS), max_size=130),
              st.sampled_from(["", "\n", "\r\n", "\r", "\x00", " ", "/", "+", "#", "\u0663", "\uff11", "\u2028"]),
              st.booleans()).map(lambda t: t[0] + t[1] if t[2] else t[1] + t[0])))
def test_device_id_accepts_exactly_thing_names(text):
    expected = 1 <= len(text) <= 128 and set(text) <= set(THING_NAME_CHARS)
    assert bool(cloud.DEVICE_ID_RE.match(text)) == expected
    if not expected and "/" not in text:
        with pytest.raises(cloud.FrameRejected):
            cloud.device_id_of("frames/%s/x.jpg" % text)


def test_every_validation_regex_is_anchored_at_the_very_end():
    """``$`` also matches before a final newline; every pattern that validates must end in ``\\Z``."""
    patterns = {name: v for name, v in vars(cloud).items() if isinstance(v, re.Pattern)}
    assert {"DEVICE_ID_RE", "_TS_RE", "_ISO_RE"} <= set(patterns)
    for name, pattern in patterns.items():
        if name == "_NOT_FF":      # a search, not a validation
            continue
        assert pattern.pattern.endswith("\\Z") and "$" not in pattern.pattern, name


@pytest.mark.parametrize("raw", ["1795770000123\n", "+1795770000123", "1_795_770_000_123", "١٧٩٥٧٧٠٠٠٠١٢٣",
                                 "1795770000123.0", "0x1A1E4A1B27B", "-1795770000123", ""])
def test_ts_metadata_is_ascii_digits_only(raw):
    """Before: ``int(str(raw).strip())`` took a newline, a sign, underscores and digits of any script."""
    obj = cloud.FrameObject("b", "frames/cam-1/x.jpg", None, None)
    assert cloud.capture_ts(obj, {"ts": " 1795770000123 "}, 1) == 1795770000123   # blanks of a header value
    with pytest.raises(cloud.FrameRejected, match="not epoch milliseconds"):
        cloud.capture_ts(obj, {"ts": raw}, 1)


@pytest.mark.parametrize("text", ["2026-11-27T10:00:00Z\n", "٢٠٢٦-11-27T10:00:00Z", "2026-13-45T10:00:00Z",
                                  "2026-02-30T10:00:00Z", "2026-11-27T10:00:00.Z"])
def test_event_times_that_are_not_iso_utc_are_ignored_not_fatal(text):
    assert cloud._iso_ms(text) is None
    c = classifier({"frames/cam-1/a.jpg": (encode("jpg", 8, 8), {})})
    event = notification("frames/cam-1/a.jpg")
    event["Records"][0]["eventTime"] = text        # before: an impossible date raised out of handle()
    result, raised = handle(c, event)
    assert not raised and result["published"] == 1
    assert c.publisher.messages[0][1]["ts"] == int(NOW * 1000)


def test_keys_over_s3_s_limit_get_records_under_a_hashed_name():
    key = "frames/cam-1/" + "é" * 500 + ".jpg"                       # 1,017 bytes: the record key would be longer
    record_key = cloud.error_record_key(key)
    assert len(record_key.encode()) <= 1024 and record_key.startswith("errors/frames/.long-keys/")
    assert record_key == cloud.error_record_key(key)
    obj = cloud.FrameObject(BUCKET, key, "v1", None)
    assert len(cloud.outcome_record_key(obj).encode()) <= 1024


# ------------------------------------------------------------------------------------------------- idempotency

def test_a_retry_after_a_transient_s3_error_publishes_every_event_exactly_once():
    """Fault injection: the second of four objects cannot be read on the first delivery. The first delivery
    publishes the others and raises (Lambda retries); the retry handles only the one left open."""
    keys = ["frames/cam-1/a.jpg", "frames/cam-1/b.jpg", "frames/cam-2/bad.jpg", "frames/cam-3/d.png"]
    c = classifier({keys[0]: (encode("jpg", 32, 24), {}), keys[1]: (encode("jpg", 32, 24, 1), {}),
                    keys[2]: (b"\xff\xd8\xff garbage", {}), keys[3]: (encode("png", 10, 10), {})})
    c.store.faults[("get", keys[1])] = 1
    event = notification(*keys)

    first, raised = handle(c, event)
    assert raised and [r["status"] for r in first["results"]] == ["published", "failed", "rejected", "published"]
    assert first["results"][1]["stage"] == "read" and "injected get failure" in first["results"][1]["error"]
    check_invariants(c, event, first)
    second, raised = handle(c, event)
    assert not raised and second["status"] == "ok"
    assert [r["status"] for r in second["results"]] == ["skipped", "published", "skipped", "skipped"]
    assert [r.get("previous") for r in second["results"]] == ["published", None, "rejected", "published"]
    check_invariants(c, event, second)
    third, _ = handle(c, event)                                     # a third delivery: nothing left to do
    assert [r["status"] for r in third["results"]] == ["skipped"] * 4

    published = [(t, e["event_type"]) for t, e in c.publisher.messages]
    assert sorted(published) == sorted([("maskcam/cam-1/infer", "inference"), ("maskcam/cam-1/infer", "inference"),
                                        ("maskcam/cam-2/infer", "error"), ("maskcam/cam-3/infer", "inference")])
    assert c.store.gets.count(keys[0]) == 1                         # not even read again


def test_each_version_of_a_key_is_its_own_upload():
    c = classifier({"frames/cam-1/a.jpg": (encode("jpg", 8, 8), {})})
    handle(c, notification("frames/cam-1/a.jpg", v0="v1"))
    handle(c, notification("frames/cam-1/a.jpg", v0="v1"))
    handle(c, notification("frames/cam-1/a.jpg", v0="v2"))
    assert len(c.publisher.messages) == 2
    assert sorted(k for k in c.store.records if "/.outcomes/" in k) == [
        "errors/frames/.outcomes/cam-1/a.jpg/v1.json", "errors/frames/.outcomes/cam-1/a.jpg/v2.json"]


def test_an_event_naming_no_version_or_sequencer_is_handled_every_time():
    """Without anything to tell a retry from a new upload, nothing is skipped (events may repeat, never vanish)."""
    c = classifier({"frames/cam-1/a.jpg": (encode("jpg", 8, 8), {})})
    event = notification("frames/cam-1/a.jpg")
    del event["Records"][0]["s3"]["object"]["sequencer"]
    handle(c, event)
    handle(c, event)
    assert len(c.publisher.messages) == 2 and not [k for k in c.store.records if "/.outcomes/" in k]


def test_an_outcome_lookup_that_fails_is_a_transient_failure_and_nothing_is_published():
    c = classifier({"frames/cam-1/a.jpg": (encode("jpg", 8, 8), {})})
    c.store.faults[("get", "errors/frames/.outcomes/cam-1/a.jpg/seq-0000000000000000.json")] = 1
    result, raised = handle(c, notification("frames/cam-1/a.jpg"))
    assert raised and result["results"][0]["stage"] == "outcome-lookup" and c.publisher.messages == []
    result, raised = handle(c, notification("frames/cam-1/a.jpg"))
    assert not raised and len(c.publisher.messages) == 1


def test_an_outcome_record_that_cannot_be_written_keeps_the_outcome_and_says_so():
    c = classifier({"frames/cam-1/a.jpg": (encode("jpg", 8, 8), {})})
    c.store.faults[("put", "errors/frames/.outcomes/cam-1/a.jpg/seq-0000000000000000.json")] = 1
    result, raised = handle(c, notification("frames/cam-1/a.jpg"))
    assert not raised and result["published"] == 1 and "not written" in result["results"][0]["warning"]


def test_a_classifier_result_that_is_not_a_valid_event_is_rejected_not_retried():
    """Whatever the pipeline returns that the schema refuses (here a negative face count) is the frame's fault: the
    same frame would give the same answer on every retry. (A NaN model output no longer gets here: the pipeline
    labels such a face ``unknown``, see test_unknown_label.py.)"""
    class OneFace(NoFaces):
        def detect(self, frame):
            from maskcam.faces import Box
            return [Box(0, 0, 4, 4, 1.0)]

    class BrokenEvents(FramePipeline):
        def event(self, device_id, result, ts_ms):
            event = super().event(device_id, result, ts_ms)
            event["faces"] = -1
            return event

    c = classifier({"frames/cam-1/a.jpg": (encode("jpg", 8, 8), {})})
    class Mask(Classifier):
        def prepare(self, crops):
            return crops

        def predict(self, inputs):
            return [[0.9, 0.1] for _ in inputs]

    c.pipeline = BrokenEvents(OneFace(), Mask())
    result, raised = handle(c, notification("frames/cam-1/a.jpg"))
    assert not raised and result["rejected"] == 1 and "not a valid event" in result["results"][0]["reason"]


# ------------------------------------------------------------------------------------------------ property-based

FORMATS = ("jpg", "png", "bmp", "webp")


@st.composite
def image_bytes(draw):
    """Bytes that are, or look like, or were an image."""
    kind = draw(st.sampled_from(["random", "valid", "truncated", "flipped", "crafted", "crafted"]))
    if kind == "random":
        prefix = draw(st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF\0\0\0\0WEBP"]))
        return kind, prefix + draw(st.binary(max_size=80))
    if kind == "crafted":
        side = st.integers(0, 2 ** 16 - 1) | st.integers(4090, 4100) | st.just(1)
        w, h = draw(side), draw(side)
        maker = draw(st.sampled_from(["jpeg", "png", "bmp", "bmp12", "vp8x", "vp8l", "vp8"]))
        header = {"jpeg": lambda: jpeg_header(w, h), "png": lambda: png_header(w, h, draw(st.sampled_from([0, 2]))),
                  "bmp": lambda: bmp_header(w, draw(st.sampled_from([h, -h]))), "bmp12": lambda: bmp_header(w, h, 12),
                  "vp8x": lambda: webp_header(max(w, 1), max(h, 1)), "vp8l": lambda: webp_header(max(w, 1), max(h, 1),
                                                                                                   "VP8L"),
                  "vp8": lambda: webp_header(w, h, "VP8 ")}[maker]()
        return kind, header + draw(st.binary(max_size=64))
    fmt = draw(st.sampled_from(FORMATS))
    data = encode(fmt, draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.integers(0, 3)))
    if kind == "truncated":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif kind == "flipped":
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        data = bytes(data)
    return kind, data


@pytest.mark.property
@PROPERTY
@given(st.lists(image_bytes(), min_size=1, max_size=5))
def test_no_bytes_escape_the_per_object_handling_and_every_object_is_accounted_for(images):
    keys = ["frames/cam-%d/f%d" % (i % 2, i) for i in range(len(images))]
    c = classifier(dict((k, (data, {})) for k, (_, data) in zip(keys, images, strict=True)))
    event = notification(*keys)
    result, raised = handle(c, event)

    check_invariants(c, event, result)
    assert not raised and result["failed"] == 0                       # no transient faults were injected
    for header in c.decode.headers:                                   # the decoder never saw a bomb
        assert header.width * header.height <= cloud.MAX_FRAME_PIXELS
    for shape in c.detector.shapes:
        assert shape[0] * shape[1] <= cloud.MAX_FRAME_PIXELS and shape[2] == 3
    inference = [e for _, e in c.publisher.messages if e["event_type"] == "inference"]
    errors = [e for _, e in c.publisher.messages if e["event_type"] == "error"]
    assert (len(inference), len(errors)) == (result["published"], result["rejected"])
    for (kind, _), r in zip(images, result["results"], strict=True):
        if kind == "valid":
            assert r["status"] == "published", r


@pytest.mark.property
@PROPERTY
@given(st.sampled_from(FORMATS), st.integers(1, 300), st.integers(1, 300), st.integers(0, 100))
def test_the_header_parser_agrees_with_opencv_and_a_truncated_header_never_lies(fmt, width, height, cut):
    data = encode(fmt, width, height)
    assert cloud.image_header(data)[1:] == (width, height) == decode_image(data).shape[1::-1]
    prefix = data[:cut]
    try:
        header = cloud.image_header(prefix)
    except cloud.FrameRejected:
        return
    assert header[1:] == (width, height)


@st.composite
def faults(draw, keys):
    """Transient faults to inject: (kind, key index, how many times)."""
    return draw(st.lists(st.tuples(st.sampled_from(["get", "lookup", "publish", "record"]),
                                   st.integers(0, len(keys) - 1), st.integers(1, 2)), max_size=4))


@pytest.mark.property
@PROPERTY
@given(st.data())
def test_retrying_after_any_transient_faults_publishes_every_event_exactly_once(data):
    images = data.draw(st.lists(image_bytes(), min_size=1, max_size=4))
    keys = ["frames/cam-%d/f%d" % (i, i) for i in range(len(images))]
    c = classifier(dict((k, (d, {})) for k, (_, d) in zip(keys, images, strict=True)))
    event = notification(*keys)
    objects = cloud.frame_objects(event)
    for kind, i, times in data.draw(faults(keys)):
        if kind == "get":
            c.store.faults[("get", keys[i])] = times
        elif kind == "lookup":
            c.store.faults[("get", cloud.outcome_record_key(objects[i]))] = times
        elif kind == "record":
            c.store.faults[("put", cloud.error_record_key(keys[i]))] = times
        else:
            c.publisher.faults["maskcam/cam-%d/infer" % i] = times

    final = {}
    for _attempt in range(10):                 # Lambda retries twice; the dead-letter queue redrives the rest
        result, raised = handle(c, event)
        check_invariants(c, event, result)
        for r in result["results"]:
            if r["status"] in ("published", "rejected"):
                assert r["key"] not in final, "handled twice: %s" % r["key"]
                final[r["key"]] = r["status"]
        if not raised:
            break
    assert not raised and sorted(final) == sorted(keys)
    for i, key in enumerate(keys):           # exactly one event per object: its inference or its error
        sent = [e for t, e in c.publisher.messages if t == "maskcam/cam-%d/infer" % i]
        assert [e["event_type"] for e in sent] == ["inference" if final[key] == "published" else "error"]
