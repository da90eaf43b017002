"""One frame in, one inference result out: detect faces, crop, classify each crop, build the schema-v1 event.

Pure: the detector and classifier are passed in (adapters in ``maskcam.adapters``), so this imports anywhere.

- detector: ``detect(frame) -> [faces.Box]`` in frame pixels;
- classifier: ``prepare(crops) -> inputs`` and ``predict(inputs) -> N x C probabilities``, with attributes
  ``name``, ``version``, ``classes``.

A frame is processed in two steps so that the runner can overlap them across frames: ``prepare`` (detection, crops
and their preprocessing, CPU) and ``finish`` (the model, then the result); ``process`` does both."""
import time

from . import faces, schema


class Prepared(object):
    __slots__ = ("frame", "boxes", "inputs", "prepare_s")

    def __init__(self, frame, boxes, inputs, prepare_s):
        self.frame = frame
        self.boxes = boxes
        self.inputs = inputs
        self.prepare_s = prepare_s


class FrameResult(object):
    __slots__ = ("boxes", "detections", "latency_ms")

    def __init__(self, boxes, detections, latency_ms):
        self.boxes = boxes
        self.detections = detections
        self.latency_ms = latency_ms


def check_classes(classes):
    """The classifier's classes must be labels the event schema knows; says which are not."""
    unknown = [c for c in classes if c not in schema.LABELS]
    if unknown:
        raise ValueError("model classes %s are not event labels %s; retrain/export with those class names"
                         % (", ".join(unknown), ", ".join(schema.LABELS)))


class FramePipeline(object):
    def __init__(self, detector, classifier, margin=0.0, max_faces=schema.MAX_DETECTIONS, timer=time.time):
        check_classes(classifier.classes)
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
                best = max(range(len(row)), key=lambda i: row[i])
                detections.append({"label": self.classifier.classes[best], "probability": float(row[best]),
                                   "box": [box.xmin, box.ymin, box.xmax, box.ymax]})
        return FrameResult(prepared.boxes, detections, (prepared.prepare_s + self.timer() - start) * 1000.0)

    def process(self, frame):
        return self.finish(self.prepare(frame))

    def event(self, device_id, result, ts_ms):
        return schema.inference_event(device_id, ts_ms, self.model_name, self.model_version,
                                      result.detections, result.latency_ms)
