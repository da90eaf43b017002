"""Inference event schema, version 1: the single source of truth for the device payload, the Glue table columns,
the Firehose Parquet conversion and the local lake.

An event is one JSON object per message. ``event_type`` says which fields are meaningful:

- ``inference``: one per processed frame: ``faces``, ``masked``, ``unmasked``, ``unknown``, ``detections``,
  ``latency_ms``. A face whose top class probability is below the device's threshold is labelled ``unknown`` and
  counted in ``unknown``, neither masked nor unmasked (as Rekognition's PPE summary does); ``faces = masked +
  unmasked + unknown``. Events of devices older than the ``unknown`` label have no ``unknown`` field: it reads as 0.
  Compliance is ``masked / (masked + unmasked)``: uncertain faces are left out of the rate, not counted as bare.
- ``heartbeat``: periodic health: ``fps``, ``frames``, ``errors``, ``dropped``;
- ``error``: a fault the loop survived (camera, model load, publish): ``message``.

Every event carries ``schema_version``, ``event_type``, ``device_id``, ``ts`` (UTC epoch milliseconds),
``model_name`` and ``model_version``. Fields that do not apply to an event type are null/absent.
Keep this module Python 3.7 compatible and free of third-party imports.
"""
import json

SCHEMA_VERSION = 1
EVENT_TYPES = ("inference", "heartbeat", "error")
CLASS_LABELS = ("mask", "no_mask")     # what a classifier may answer (its manifest's classes)
UNKNOWN = "unknown"                     # what the pipeline reports when the classifier is not sure enough
LABELS = CLASS_LABELS + (UNKNOWN,)      # every label an event's detection may carry
DEFAULT_MIN_CONFIDENCE = 0.7            # top class probability below this -> unknown (maskcam --min-confidence)
MAX_PAYLOAD_BYTES = 128 * 1024          # AWS IoT Core message size limit
MAX_DETECTIONS = 64                     # keeps a worst-case payload far below the limit (~6 KB)

DETECTION_TYPE = "struct<label:string,probability:double,box:array<int>>"

# (column name, Glue/Athena type, description) in table order.
COLUMNS = (
    ("schema_version", "int", "event schema version (this module's SCHEMA_VERSION)"),
    ("event_type", "string", "inference | heartbeat | error"),
    ("device_id", "string", "IoT thing name or camera id"),
    ("ts", "bigint", "event time, UTC epoch milliseconds"),
    ("model_name", "string", "classifier model name"),
    ("model_version", "string", "classifier model version"),
    ("faces", "int", "faces detected in the frame"),
    ("masked", "int", "faces classified as mask"),
    ("unmasked", "int", "faces classified as no_mask"),
    ("unknown", "int", ("faces whose top class probability was below the device's threshold: neither masked nor "
                        "unmasked (null in events from before the label: read as 0)")),
    ("detections", "array<" + DETECTION_TYPE + ">", "per face: label, probability, box [xmin,ymin,xmax,ymax]"),
    ("latency_ms", "double", "frame latency: detection + classification, milliseconds"),
    ("fps", "double", "heartbeat: frames per second since the previous heartbeat"),
    ("frames", "bigint", "heartbeat: frames processed since start"),
    ("errors", "bigint", "heartbeat: faults survived since start"),
    ("dropped", "bigint", "heartbeat: events dropped because the spool was full"),
    ("message", "string", "error: what went wrong"),
)
COLUMN_NAMES = tuple(name for name, _, _ in COLUMNS)
REQUIRED = ("schema_version", "event_type", "device_id", "ts", "model_name", "model_version")
REQUIRED_BY_TYPE = {
    "inference": ("faces", "masked", "unmasked", "detections", "latency_ms"),
    "heartbeat": ("fps", "frames", "errors", "dropped"),
    "error": ("message",),
}
_INT_FIELDS = ("schema_version", "ts", "faces", "masked", "unmasked", "unknown", "frames", "errors", "dropped")
_FLOAT_FIELDS = ("latency_ms", "fps")
_STR_FIELDS = ("event_type", "device_id", "model_name", "model_version", "message")


class SchemaError(ValueError):
    """An event that does not match schema v1; ``problems`` lists every violation found."""

    def __init__(self, problems):
        ValueError.__init__(self, "invalid inference event: " + "; ".join(problems))
        self.problems = list(problems)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, (int, float))) and not isinstance(value, bool)


def is_probability(value):
    """A number (not a bool) in [0, 1]; NaN is not."""
    return _is_number(value) and 0.0 <= value <= 1.0


def problems(event):
    """Returns the list of schema violations of ``event`` (empty when valid)."""
    if not isinstance(event, dict):
        return ["event is %s, not a JSON object" % type(event).__name__]
    found = _field_problems(event)
    found.extend(_type_problems(event))
    found.extend(_value_problems(event))
    found.extend(_detection_problems(event))
    return found


def _field_problems(event):
    """Required fields that are missing, fields the schema does not know."""
    found = ["missing %s" % name for name in REQUIRED if event.get(name) is None]
    unknown = sorted(set(event) - set(COLUMN_NAMES))
    if unknown:
        found.append("unknown field(s) %s" % ", ".join(unknown))
    return found


def _type_problems(event):
    """Fields present (not null) with the wrong JSON type."""
    checks = ((_INT_FIELDS, _is_int, "an integer"), (_FLOAT_FIELDS, _is_number, "a number"),
              (_STR_FIELDS, lambda value: isinstance(value, str), "a string"))
    found = []
    for names, is_valid, kind in checks:
        for name in names:
            if event.get(name) is not None and not is_valid(event[name]):
                found.append("%s must be %s, got %r" % (name, kind, event[name]))
    return found


def _value_problems(event):
    """schema_version, event_type and ts out of range; fields the event type requires that are missing."""
    found = []
    if event.get("schema_version") not in (None, SCHEMA_VERSION):
        found.append("schema_version %r is not %d" % (event.get("schema_version"), SCHEMA_VERSION))
    event_type = event.get("event_type")
    if event_type is not None and event_type not in EVENT_TYPES:
        found.append("event_type %r is not one of %s" % (event_type, ", ".join(EVENT_TYPES)))
    for name in REQUIRED_BY_TYPE.get(event_type, ()) if isinstance(event_type, str) else ():
        if event.get(name) is None:
            found.append("%s event missing %s" % (event_type, name))
    if _is_int(event.get("ts")) and not 946684800000 <= event["ts"] <= 4102444800000:
        found.append("ts %r is not epoch milliseconds between 2000 and 2100" % event["ts"])
    return found


def _detection_problems(event):
    detections = event.get("detections")
    if detections is None:
        return []
    if not isinstance(detections, list):
        return ["detections must be a list"]
    found = []
    if len(detections) > MAX_DETECTIONS:
        found.append("more than %d detections" % MAX_DETECTIONS)
    for i, det in enumerate(detections):
        if not isinstance(det, dict):
            found.append("detections[%d] is not an object" % i)
            continue
        if det.get("label") not in LABELS:
            found.append("detections[%d].label %r is not one of %s" % (i, det.get("label"), ", ".join(LABELS)))
        prob = det.get("probability")
        if not is_probability(prob):
            found.append("detections[%d].probability %r is not in [0, 1]" % (i, prob))
        box = det.get("box")
        if not (isinstance(box, list) and len(box) == 4 and all(_is_int(v) for v in box)):
            found.append("detections[%d].box %r is not [xmin, ymin, xmax, ymax] integers" % (i, box))
    if event.get("event_type") == "inference" and not found:
        found.extend(_count_problems(event, detections))
    return found


def _count_problems(event, detections):
    """The counts must add up: faces = detections, masked/unmasked/unknown = the labels (unknown absent: 0)."""
    counts = label_counts(detections)
    unknown = event.get("unknown")
    found = []
    if unknown is None and counts[UNKNOWN]:
        found.append("detections labelled unknown but no unknown count")
    if (event.get("faces"), event.get("masked"), event.get("unmasked"), unknown or 0) != \
            (len(detections), counts["mask"], counts["no_mask"], counts[UNKNOWN]):
        found.append("faces/masked/unmasked/unknown do not match detections")
    return found


def validate(event):
    """Raises ``SchemaError`` naming every problem; returns the event when valid."""
    found = problems(event)
    if found:
        raise SchemaError(found)
    return event


def _base(event_type, device_id, ts_ms, model_name, model_version):
    return {"schema_version": SCHEMA_VERSION, "event_type": event_type, "device_id": device_id,
            "ts": int(ts_ms), "model_name": model_name, "model_version": model_version}


def label_counts(detections):
    """{label: faces} over ``LABELS`` (every label present, 0 when none)."""
    counts = dict((label, 0) for label in LABELS)
    for d in detections:
        counts[d["label"]] = counts.get(d["label"], 0) + 1
    return counts


def label_for(probabilities, classes, min_confidence=DEFAULT_MIN_CONFIDENCE):
    """(label, top probability) of one face: the top class, or ``unknown`` when its probability is below
    ``min_confidence``."""
    best = max(range(len(probabilities)), key=lambda i: probabilities[i])
    top = float(probabilities[best])
    if not 0.0 <= top <= 1.0:   # NaN or out of range: a broken model output is no answer
        return UNKNOWN, 0.0
    return (classes[best] if top >= min_confidence else UNKNOWN), top


def compliance(masked, unmasked):
    """The masked share of the faces that were classified (``unknown`` ones are left out); None without any."""
    classified = (masked or 0) + (unmasked or 0)
    return float(masked or 0) / classified if classified else None


def inference_event(device_id, ts_ms, model_name, model_version, detections, latency_ms):
    """Builds an inference event; ``detections`` are dicts with label (``LABELS``), probability (the top class's),
    box."""
    detections = [{"label": d["label"], "probability": round(float(d["probability"]), 6),
                   "box": [int(v) for v in d["box"]]} for d in detections[:MAX_DETECTIONS]]
    counts = label_counts(detections)
    event = _base("inference", device_id, ts_ms, model_name, model_version)
    event.update({"faces": len(detections), "masked": counts["mask"], "unmasked": counts["no_mask"],
                  "unknown": counts[UNKNOWN], "detections": detections, "latency_ms": round(float(latency_ms), 3)})
    return event


def heartbeat_event(device_id, ts_ms, model_name, model_version, fps, frames, errors, dropped):
    event = _base("heartbeat", device_id, ts_ms, model_name, model_version)
    event.update({"fps": round(float(fps), 3), "frames": int(frames), "errors": int(errors),
                  "dropped": int(dropped)})
    return event


def error_event(device_id, ts_ms, model_name, model_version, message):
    event = _base("error", device_id, ts_ms, model_name, model_version)
    event["message"] = str(message)[:1024]
    return event


def to_json(event):
    """Serializes a valid event compactly; refuses one over the IoT message size limit."""
    payload = json.dumps(validate(event), separators=(",", ":"), sort_keys=True)
    if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise SchemaError(["payload is %d bytes, over the %d-byte IoT limit" % (len(payload), MAX_PAYLOAD_BYTES)])
    return payload
