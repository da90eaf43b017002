"""One frame in, one inference result out: detect faces, crop, classify each crop, build the schema-v1 event.

Pure: the detector and classifier are passed in (adapters in ``maskcam.adapters``), so this imports anywhere.

- detector: ``detect(frame) -> [faces.Box]`` in frame pixels;
- classifier: ``classify(crops) -> N x C probabilities`` with attributes ``name``, ``version``, ``classes``."""
import time

from . import faces, schema


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

    def process(self, frame):
        start = self.timer()
        boxes = self.detector.detect(frame)[:self.max_faces]
        detections = []
        if boxes:
            probs = self.classifier.classify([faces.crop(frame, b, self.margin) for b in boxes])
            for box, row in zip(boxes, probs):
                best = max(range(len(row)), key=lambda i: row[i])
                detections.append({"label": self.classifier.classes[best], "probability": float(row[best]),
                                   "box": [box.xmin, box.ymin, box.xmax, box.ymax]})
        return FrameResult(boxes, detections, (self.timer() - start) * 1000.0)

    def event(self, device_id, result, ts_ms):
        return schema.inference_event(device_id, ts_ms, self.model_name, self.model_version,
                                      result.detections, result.latency_ms)
