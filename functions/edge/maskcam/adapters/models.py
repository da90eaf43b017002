"""Model adapters. Classifiers: ``prepare(crops) -> inputs`` (CPU preprocessing, which the runner overlaps with the
previous frame's inference), ``predict(inputs) -> N x C probabilities``, ``classify(crops)`` (both), with ``name``,
``version``, ``classes``. Detectors: ``detect(frame) -> [faces.Box]``.

- ``OnnxClassifier`` / ``MXNetClassifier`` load a model export directory through its ``manifest.json``;
- ``AwscamClassifier`` / ``AwscamSsdDetector`` run optimized models on the DeepLens GPU;
- ``HaarFaceDetector`` is OpenCV's bundled frontal-face cascade: works offline on any machine."""
import os
import threading

import numpy as np

from .. import faces
from ..manifest import load_manifest
from ..preprocess import make_batch, resize_bilinear

DEEPLENS_FACE_MODEL = "/opt/awscam/artifacts/mxnet_deploy_ssd_FP16_FUSED.xml"
# The runner calls the detector and the classifier from two threads. awscam models share the DeepLens GPU and the
# library is not documented as thread-safe, so their inference calls take turns; the CPU work around them overlaps.
AWSCAM_GPU = threading.Lock()


def fastest_resize():
    """OpenCV's bilinear resize (same sampling as ``resize_bilinear``) where cv2 imports, else the numpy one."""
    try:
        import cv2
    except ImportError:
        return resize_bilinear

    def resize(image, width, height):
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return resize


class OnnxClassifier(object):
    """ONNX Runtime on CPU. Batches all faces of a frame when the graph's batch axis is dynamic. ``threads``: ONNX
    Runtime's intra-op threads (default: one per core)."""

    def __init__(self, export_dir, threads=None):
        import onnxruntime as ort
        self.manifest = load_manifest(export_dir)
        self.name, self.version, self.classes = self.manifest.name, self.manifest.version, self.manifest.classes
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(self.manifest.path("onnx"), options, providers=["CPUExecutionProvider"])
        self.resize = fastest_resize()
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.fixed_batch = isinstance(model_input.shape[0], int) and model_input.shape[0] == 1

    def predict(self, batch):
        """N x C x H x W float32 (already normalized) -> N x classes probabilities."""
        if self.fixed_batch and len(batch) > 1:
            return np.concatenate([self.predict(batch[i:i + 1]) for i in range(len(batch))])
        return self.session.run(None, {self.input_name: batch})[0]

    def prepare(self, crops):
        return make_batch(crops, self.manifest.input, self.resize)

    def classify(self, crops):
        return self.predict(self.prepare(crops))


class MXNetClassifier(object):
    """MXNet Gluon ``SymbolBlock.imports`` of ``<name>-symbol.json`` + ``<name>-0000.params`` (DeepLens-era
    software; needs mxnet 1.9.1, which needs numpy<1.24)."""

    def __init__(self, export_dir, input_name="data"):
        import mxnet as mx
        self._mx = mx
        self.manifest = load_manifest(export_dir)
        self.name, self.version, self.classes = self.manifest.name, self.manifest.version, self.manifest.classes
        self.net = mx.gluon.SymbolBlock.imports(self.manifest.path("symbol"),
                                                [self.manifest.data.get("input_name", input_name)],
                                                self.manifest.path("params"), ctx=mx.cpu())
        self.resize = fastest_resize()

    def predict(self, batch):
        return self.net(self._mx.nd.array(batch)).asnumpy()

    def prepare(self, crops):
        return make_batch(crops, self.manifest.input, self.resize)

    def classify(self, crops):
        return self.predict(self.prepare(crops))


def load_classifier(export_dir, backend="auto", threads=None):
    """``onnx``, ``mxnet`` or ``auto`` (ONNX when the export has it and onnxruntime imports, else MXNet).
    ``threads`` sets ONNX Runtime's intra-op threads (MXNet reads ``OMP_NUM_THREADS``)."""
    if backend == "onnx":
        return OnnxClassifier(export_dir, threads)
    if backend == "mxnet":
        return MXNetClassifier(export_dir)
    if backend != "auto":
        raise ValueError("model backend %r is not onnx, mxnet or auto" % backend)
    manifest = load_manifest(export_dir)
    try:
        import onnxruntime  # noqa: F401
        has_ort = True
    except ImportError:
        has_ort = False
    if has_ort and manifest.files.get("onnx"):
        return OnnxClassifier(export_dir, threads)
    return MXNetClassifier(export_dir)


class AwscamClassifier(object):
    """The classifier optimized for the DeepLens GPU (``mo.optimize``) and run with ``awscam.Model``.

    The optimized graph takes the resized image as is, so normalization (mean/std, scale) must be given to the
    optimizer; ``parseResult("classification", ...)`` gives ``[{"label": index, "prob": p}, ...]``."""

    def __init__(self, model, classes, width=224, height=224, name=None, version="deeplens", color="BGR"):
        import awscam
        if not model.endswith(".xml"):
            import mo
            error, path = mo.optimize(model, width, height)
            if error:
                raise RuntimeError("model optimizer failed for %s (status %r)" % (model, error))
            model = path
        self.model = awscam.Model(model, {"GPU": 1})
        self.classes = list(classes)
        self.width, self.height, self.color = width, height, color
        self.name = name or os.path.splitext(os.path.basename(model))[0]
        self.version = version

    def prepare(self, crops):
        images = []
        for crop in crops:
            image = resize_bilinear(crop, self.width, self.height).astype(np.uint8)
            images.append(image[:, :, ::-1] if self.color == "RGB" else image)
        return images

    def predict(self, images):
        rows = []
        for image in images:
            with AWSCAM_GPU:
                parsed = self.model.parseResult("classification", self.model.doInference(image))
            row = np.zeros(len(self.classes), dtype=np.float32)
            for item in parsed["classification"]:
                index = int(item["label"])
                if 0 <= index < len(row):
                    row[index] = float(item["prob"])
            rows.append(row)
        return np.stack(rows) if rows else np.zeros((0, len(self.classes)), dtype=np.float32)

    def classify(self, crops):
        return self.predict(self.prepare(crops))


class AwscamSsdDetector(object):
    """The DeepLens face-detection sample's SSD (300x300 input, label 1 = face)."""

    def __init__(self, model_path=DEEPLENS_FACE_MODEL, threshold=0.25, size=(300, 300)):
        import awscam
        self.model = awscam.Model(model_path, {"GPU": 1})
        self.threshold, self.size = threshold, size

    def detect(self, frame):
        image = resize_bilinear(frame, self.size[0], self.size[1]).astype(np.uint8)
        with AWSCAM_GPU:
            parsed = self.model.parseResult("ssd", self.model.doInference(image))
        return faces.from_ssd(parsed["ssd"], frame.shape, self.size, self.threshold)


class HaarFaceDetector(object):
    """OpenCV's bundled Haar cascade. ``scale`` < 1 detects on a downscaled grey frame (faster), boxes are mapped
    back to frame pixels. ``step`` is the cascade's scale factor between pyramid levels (OpenCV's 1.1; 1.2 scans
    about half the windows, at some cost in recall for faces between two levels)."""

    def __init__(self, cascade="haarcascade_frontalface_default.xml", scale=1.0, min_size=30, neighbors=5, step=1.1,
                 threads=None):
        import cv2
        self._cv2 = cv2
        if threads:  # process-wide: OpenCV's worker threads would otherwise compete with the model for every core
            cv2.setNumThreads(threads)
        path = cascade if os.path.isfile(cascade) else os.path.join(cv2.data.haarcascades, cascade)
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise ValueError("cannot load face cascade %s" % path)
        if step <= 1.0:
            raise ValueError("face detector step %r must be greater than 1" % step)
        self.scale, self.min_size, self.neighbors, self.step = scale, min_size, neighbors, step

    def detect(self, frame):
        cv2 = self._cv2
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if self.scale != 1.0:
            grey = cv2.resize(grey, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        size = max(8, int(self.min_size * self.scale))
        rects = self.cascade.detectMultiScale(grey, scaleFactor=self.step, minNeighbors=self.neighbors,
                                              minSize=(size, size))
        rects = [tuple(v / self.scale for v in r) for r in rects] if len(rects) else []
        return faces.from_rects(rects, frame.shape)


def load_detector(spec, threads=None):
    """``haar`` (default cascade), ``haar:<scale>[:<min face px>[:<step>]]``, ``deeplens`` / ``deeplens:<model.xml>``.
    ``threads``: OpenCV's threads for the Haar cascade."""
    kind, _, arg = str(spec).partition(":")
    if kind == "haar":
        scale, min_size, step = (arg.split(":") + ["", "", ""])[:3]
        return HaarFaceDetector(scale=float(scale) if scale else 1.0, min_size=int(min_size) if min_size else 30,
                                step=float(step) if step else 1.1, threads=threads)
    if kind in ("deeplens", "ssd"):
        return AwscamSsdDetector(arg or DEEPLENS_FACE_MODEL)
    raise ValueError("detector %r is not haar[:scale] or deeplens[:model.xml]" % spec)
