"""``python -m maskcam.bench --model <export dir>``: model-only inference vs the full pipeline, side by side, on CPU.

- model only: the classifier on one preprocessed 224x224 face per call (faces/s);
- pipeline: face detection on a 640x480 frame + crop/preprocess/classify of every face found (frames/s, faces/s),
  events handed to the publisher thread (a JSON-lines sink on disk), which never runs on the inference thread.

The 640x480 frame is built from a real photo (``--frame`` image, or scikit-image's bundled astronaut when
installed). Prints a table and ``pipeline/model`` per face against the 90% target."""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

from .pipeline import FramePipeline
from .preprocess import make_batch
from .runner import Dispatcher
from .spool import Spool


def _frame(path):
    import cv2
    if path:
        frame = cv2.imread(path)
        if frame is None:
            raise SystemExit("error: cannot read frame image %s" % path)
        return cv2.resize(frame, (640, 480))
    try:
        import skimage.data
    except ImportError:
        raise SystemExit("error: give --frame <photo with faces> (scikit-image is not installed)")
    head = skimage.data.astronaut()[0:256, 96:352, ::-1]
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[100:356, 20:276] = head
    frame[120:376, 360:616] = head[:, ::-1]
    return frame


def _rate(fn, seconds):
    fn()  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - start)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m maskcam.bench", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="model export directory (manifest.json + .onnx)")
    p.add_argument("--backend", default="onnx", choices=("onnx", "mxnet"))
    p.add_argument("--detectors", default="haar,haar:0.5,haar:0.25:80",
                   help="comma-separated detector specs to compare")
    p.add_argument("--frame", help="a photo with faces, resized to 640x480 (default: skimage astronaut x2)")
    p.add_argument("--seconds", type=float, default=5.0, help="measuring time per row")
    args = p.parse_args(argv)

    from .adapters.models import load_classifier, load_detector
    from .adapters.publishers import JsonLinesPublisher
    classifier = load_classifier(args.model, args.backend)
    frame = _frame(args.frame)
    face = frame[166:261, 101:196]
    batch = make_batch([face], classifier.manifest.input)
    model_fps = _rate(lambda: classifier.predict(batch), args.seconds)
    rows = [("model only (1 face, preprocessed)", "-", model_fps, model_fps)]

    workdir = tempfile.mkdtemp(prefix="maskcam-bench-")
    for spec in args.detectors.split(","):
        pipeline = FramePipeline(load_detector(spec), classifier, margin=0.1)
        nfaces = len(pipeline.process(frame).detections)
        dispatcher = Dispatcher(JsonLinesPublisher(os.path.join(workdir, "events.jsonl")),
                                Spool(os.path.join(workdir, "spool"))).start()

        def step():
            dispatcher.submit(pipeline.event("bench", pipeline.process(frame), int(time.time() * 1000)))
        fps = _rate(step, args.seconds)
        dispatcher.close()
        rows.append(("pipeline, detector %s (%d faces/frame)" % (spec, nfaces), "%.1f" % fps, fps * nfaces, None))

    print("model %s %s (%s), backend %s, CPU, %d s per row" % (classifier.name, classifier.version,
          "ImageNet-pretrained" if classifier.manifest.pretrained else "trained from scratch", args.backend, args.seconds))
    print("%-48s %10s %10s %12s" % ("measure", "frames/s", "faces/s", "vs model"))
    for name, frames, faces_s, _ in rows:
        print("%-48s %10s %10.1f %11.0f%%" % (name, frames, faces_s, 100.0 * faces_s / model_fps))
    best = max(r[2] for r in rows[1:])
    verdict = "meets" if best >= 0.9 * model_fps else "MISSES"
    print("target: pipeline >= 90%% of model-only faces/s -> best %.0f%% (%s the target)"
          % (100.0 * best / model_fps, verdict))
    return 0


if __name__ == "__main__":
    sys.exit(main())
