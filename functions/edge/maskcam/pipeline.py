"""One frame in, one inference result out: detect faces, crop, classify each crop, build the schema-v1 event.

Pure: the detector and classifier are passed in (adapters in ``maskcam.adapters``), so this imports anywhere.

- detector: ``detect(frame) -> [faces.Box]`` in frame pixels;
- classifier: ``prepare(crops) -> inputs`` and ``predict(inputs) -> N x C probabilities``, with attributes
  ``name``, ``version``, ``classes``;
- ``min_confidence``: a face whose top probability is below it is labelled ``unknown`` (schema.label_for).

A frame is processed in two steps so that the runner can overlap them across frames: ``prepare`` (detection, crops
and their preprocessing, CPU) and ``finish`` (the model, then the result); ``process`` does both."""
import time

from . import faces, schema


class Prepared:
    __slots__ = ("frame", "boxes", "inputs", "prepare_s")

    def __init__(self, frame, boxes, inputs, prepare_s):
        self.frame = frame
        self.boxes = boxes
        self.inputs = inputs
        self.prepare_s = prepare_s


class FrameResult:
    __slots__ = ("boxes", "detections", "latency_ms")

    def __init__(self, boxes, detections, latency_ms):
        self.boxes = boxes
        self.detections = detections
        self.latency_ms = latency_ms


def check_classes(classes):
    """The classifier's classes must be class labels the event schema knows (``unknown`` is the pipeline's, not a
    model class); says which are not."""
    bad = [c for c in classes if c not in schema.CLASS_LABELS]
    if bad:
        raise ValueError("model classes %s are not event labels %s; retrain/export with those class names"
                         % (", ".join(bad), ", ".join(schema.CLASS_LABELS)))


class FramePipeline:
    def __init__(self, detector, classifier, margin=0.0, max_faces=schema.MAX_DETECTIONS, timer=time.time,
                 min_confidence=schema.DEFAULT_MIN_CONFIDENCE):
        check_classes(classifier.classes)
        if not 0.0 <= float(min_confidence) <= 1.0:
            raise ValueError("min_confidence %r is not between 0 and 1" % (min_confidence,))
        self.min_confidence = float(min_confidence)
        self.detector = detector
        self.classifier = classifier
        self.margin = margin
        self.max_faces = max_faces
        self.timer = timer

    @property
    def model_name(self):
        return self.classifier.name

    @property
    def model_version(self):
        return self.classifier.version

    def prepare(self, frame):
        """Detection, crops and model inputs of one frame."""
        start = self.timer()
        boxes = self.detector.detect(frame)[:self.max_faces]
        inputs = self.classifier.prepare([faces.crop(frame, b, self.margin) for b in boxes]) if boxes else None
        return Prepared(frame, boxes, inputs, self.timer() - start)

    def finish(self, prepared):
        """The model on a prepared frame. ``latency_ms`` is the frame's own work (preparing + the model), not the
        time it waited between the two steps."""
        start = self.timer()
        detections = []
        if prepared.boxes:
            probs = self.classifier.predict(prepared.inputs)
            for box, row in zip(prepared.boxes, probs):
                label, top = schema.label_for(row, self.classifier.classes, self.min_confidence)
                detections.append({"label": label, "probability": top,
                                   "box": [box.xmin, box.ymin, box.xmax, box.ymax]})
        return FrameResult(prepared.boxes, detections, (prepared.prepare_s + self.timer() - start) * 1000.0)

    def process(self, frame):
        return self.finish(self.prepare(frame))

    def event(self, device_id, result, ts_ms):
        return schema.inference_event(device_id, ts_ms, self.model_name, self.model_version,
                                      result.detections, result.latency_ms)
